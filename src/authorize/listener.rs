//! Waiting for the provider's redirect on 127.0.0.1 (RFC 8252 section 7.3).
//!
//! The listener binds the loopback address only, answers one redirect on its path (a code, a
//! refusal, or a wrong `state`: each ends the wait, so a second, forged redirect finds
//! nothing listening) and stops then or at the timeout. Other paths (a browser's
//! `/favicon.ico`) get a 404 and the wait goes on. The page the browser shows says what
//! happened, never the code.

use super::{AuthorizeError, read_redirect};
use crate::instance::Secret;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Binds 127.0.0.1:`port` (0 for a free one).
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

struct Expecting {
    path: String,
    state: String,
    outcome: mpsc::Sender<Result<Secret, AuthorizeError>>,
    /// Set once a redirect arrived: later ones are not taken.
    answered: Mutex<bool>,
}

/// Serves `listener` until a redirect arrives on `path` (checked against `state`) or
/// `timeout` passes, then stops listening.
pub async fn wait_for_redirect(
    listener: TcpListener,
    path: &str,
    state: &str,
    timeout: Duration,
) -> Result<Secret, AuthorizeError> {
    let (outcome_tx, mut outcome_rx) = mpsc::channel(1);
    let expecting = Arc::new(Expecting {
        path: path.to_owned(),
        state: state.to_owned(),
        outcome: outcome_tx,
        answered: Mutex::new(false),
    });
    let app = axum::Router::new().fallback(redirect).with_state(expecting);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let outcome = tokio::time::timeout(timeout, outcome_rx.recv()).await;
    let _ = stop_tx.send(());
    // The browser's page is sent before the server stops; an idle keep-alive connection
    // must not hold the command, hence the bound.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    match outcome {
        Ok(Some(outcome)) => outcome,
        Ok(None) | Err(_) => Err(AuthorizeError::Timeout {
            seconds: timeout.as_secs(),
        }),
    }
}

async fn redirect(State(expecting): State<Arc<Expecting>>, uri: Uri) -> Response {
    if uri.path() != expecting.path {
        return (StatusCode::NOT_FOUND, "not the OAuth redirect").into_response();
    }
    {
        let mut answered = expecting
            .answered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *answered {
            return (
                StatusCode::GONE,
                page("This authorization is already over."),
            )
                .into_response();
        }
        *answered = true;
    }
    let outcome = read_redirect(uri.query().unwrap_or(""), &expecting.state);
    let response = match &outcome {
        Ok(_) => (
            StatusCode::OK,
            page("ocpoll received the authorization. You can close this tab."),
        ),
        Err(error) => (StatusCode::BAD_REQUEST, page(&format!("ocpoll: {error}"))),
    };
    let _ = expecting.outcome.send(outcome).await;
    response.into_response()
}

fn page(text: &str) -> Html<String> {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>ocpoll auth</title><p>{escaped}</p>\n"
    ))
}
