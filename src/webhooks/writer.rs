//! The receipts' writer (docs/design.md#webhooks): one thread that owns the commits of received
//! webhooks. Handlers send it their receipt and wait for its answer; it takes every receipt
//! waiting (up to [`MAX_BATCH`]) and commits them in one durable transaction, so under load many
//! receipts share one disk sync (group commit) while each stays whole. After a commit that
//! enqueued something it wakes the delivery worker.
//!
//! It writes through the daemon's shared store (the same connection polls and delivery use), so
//! its transactions queue behind theirs on a mutex rather than on SQLite's busy handler, whose
//! sleeps would show in the accept latency. A failed commit fails every receipt of the batch:
//! their handlers answer 503 and the providers retry.

use crate::state::{ReceiptOutcome, ReceiptWrite, Store};
use chrono::Utc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

/// The most receipts committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// How many receipts may wait for the writer before handlers wait to hand theirs over.
const QUEUE: usize = 4096;
/// How often kept receipts past their time are forgotten.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Why a receipt was not committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("the state did not take the receipt: {0}")]
    State(String),
    #[error("the receipts' writer has stopped")]
    Stopped,
}

struct Job {
    receipt: ReceiptWrite,
    reply: oneshot::Sender<Result<ReceiptOutcome, CommitError>>,
}

/// The handle handlers share; the thread stops when the last one is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `store`; `wake` is the delivery worker's.
    pub fn start(store: Arc<Mutex<Store>>, wake: Arc<Notify>) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("ocpoll-webhook-writer".to_owned())
            .spawn(move || run(queue, &store, &wake))?;
        Ok(Writer { jobs })
    }

    /// Commits `receipt` (with whatever else is waiting) and says what became of it. Dropping
    /// the future does not undo it: a receipt handed over is committed or failed whole.
    pub async fn commit(&self, receipt: ReceiptWrite) -> Result<ReceiptOutcome, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { receipt, reply })
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.unwrap_or(Err(CommitError::Stopped))
    }
}

fn run(mut queue: mpsc::Receiver<Job>, store: &Mutex<Store>, wake: &Notify) {
    let mut trimmed = Instant::now();
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (receipts, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|job| (job.receipt, job.reply)).unzip();
        let result = {
            let mut store = Store::locked(store);
            if trimmed.elapsed() >= TRIM_EVERY {
                trimmed = Instant::now();
                if let Err(error) = store.trim_webhook_receipts(Utc::now()) {
                    tracing::warn!(%error, "cannot forget old webhook receipts");
                }
            }
            store.commit_receipts(&receipts)
        };
        match result {
            Ok(outcomes) => {
                if outcomes.contains(&ReceiptOutcome::Enqueued) {
                    wake.notify_one();
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A handler that gave up (its commit timeout) is answered by the retry.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, receipts = receipts.len(), "webhook receipts not committed; answering 503");
                let error = CommitError::State(error.to_string());
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
