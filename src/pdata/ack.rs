//! Acknowledgement tokens: reference-counted finalizers carried with each batch.
//!
//! A source that needs to know when its data is safe (the `filelog` receiver commits
//! offsets only then) makes an [`Ack`] and keeps the [`AckWaiter`]. Every copy of the
//! batch (fan-out, split) clones the token; a merged batch carries the tokens of all its
//! parts. When the last clone is dropped the waiter learns the outcome: `Delivered`,
//! or `Failed` if any holder called [`Ack::fail`] (a refusal or a permanent export
//! failure). Dropping a record on purpose (filtered, sampled out) is a plain drop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Delivered,
    Failed,
}

#[derive(Clone, Debug)]
pub struct Ack(Arc<AckInner>);

#[derive(Debug)]
struct AckInner {
    failed: AtomicBool,
    notify: Mutex<Option<oneshot::Sender<AckOutcome>>>,
}

/// The source's end: resolves once every holder of the token has let go.
#[derive(Debug)]
pub struct AckWaiter(oneshot::Receiver<AckOutcome>);

impl Ack {
    pub fn new() -> (Ack, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        let inner = AckInner { failed: AtomicBool::new(false), notify: Mutex::new(Some(tx)) };
        (Ack(Arc::new(inner)), AckWaiter(rx))
    }

    /// Marks the data this token covers as not delivered.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Release);
    }
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let outcome = if self.failed.load(Ordering::Acquire) { AckOutcome::Failed } else { AckOutcome::Delivered };
        let sender = match self.notify.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(sender) = sender {
            // The source may have stopped waiting; then nobody needs the outcome.
            let _ = sender.send(outcome);
        }
    }
}

impl AckWaiter {
    /// Waits for the outcome. A token that vanished without an outcome counts as failed.
    pub async fn wait(self) -> AckOutcome {
        self.0.await.unwrap_or(AckOutcome::Failed)
    }

    /// The outcome if it is already known.
    pub fn try_outcome(&mut self) -> Option<AckOutcome> {
        self.0.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivered_when_last_clone_drops() {
        let (ack, mut waiter) = Ack::new();
        let copy = ack.clone();
        drop(ack);
        assert_eq!(waiter.try_outcome(), None);
        drop(copy);
        assert_eq!(waiter.wait().await, AckOutcome::Delivered);
    }

    #[tokio::test]
    async fn any_failure_fails_the_whole() {
        let (ack, waiter) = Ack::new();
        let copy = ack.clone();
        copy.fail();
        drop(copy);
        drop(ack);
        assert_eq!(waiter.wait().await, AckOutcome::Failed);
    }
}
