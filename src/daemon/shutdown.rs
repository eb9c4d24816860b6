//! The "shut down now" signal every daemon task listens to: triggered once, seen by all, and
//! never missed by a task that starts listening late (a `watch` channel keeps the value).

use tokio::sync::watch;

/// Held by whoever decides to stop (the signal handler).
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// Held by each task; clone it per task.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    /// Returns once shutdown is triggered (or the trigger is gone, which means the same).
    pub async fn wait(&mut self) {
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }

    #[cfg(test)]
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_listener_still_sees_the_trigger() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.is_triggered());
        trigger.trigger();
        let mut late = shutdown.clone();
        late.wait().await;
        assert!(late.is_triggered());
    }

    #[tokio::test]
    async fn a_dropped_trigger_means_shut_down() {
        let (trigger, mut shutdown) = channel();
        drop(trigger);
        shutdown.wait().await;
    }
}
