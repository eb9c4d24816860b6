//! Reload when the instances folder changes: a `notify` watcher on the folder, debounced, so an
//! editor's save (often several events: a temporary file, a rename, a chmod) or a `cp *.json`
//! of many files becomes one reload after the folder has been quiet for [`QUIET`].
//!
//! Any change counts, not only `*.json` files: deployments that swap a symlinked folder (a
//! Kubernetes ConfigMap) change no `*.json` name. A spurious reload is cheap; an unchanged
//! instance keeps its schedule. Reads are ignored, or the reload's own reading would trigger
//! the next one.

use super::Control;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the folder must stay unchanged before the reload.
const QUIET: Duration = Duration::from_millis(500);

/// Watches `folder` and sends [`Control::Reload`] after each burst of changes. The watch lasts
/// as long as the returned watcher lives.
pub fn watch_folder(
    folder: &Path,
    control: mpsc::Sender<Control>,
) -> notify::Result<RecommendedWatcher> {
    let (changes, mut changed) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match event {
            Ok(event) => !matches!(event.kind, EventKind::Access(_)),
            // An overflowed event queue means changes were missed: reload to be sure.
            Err(_) => true,
        };
        if relevant {
            let _ = changes.send(());
        }
    })?;
    watcher.watch(folder, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while changed.recv().await.is_some() {
            loop {
                match tokio::time::timeout(QUIET, changed.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            tracing::info!("the instances folder changed: reloading");
            if control.send(Control::Reload).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}
