//! Acknowledgement tokens: reference-counted finalizers carried with each batch.
//!
//! A source that needs to know what became of its data makes an [`Ack`] and keeps the
//! [`AckWaiter`]. Every copy of the batch (fan-out, split) clones the token; a merged
//! batch carries the tokens of all its parts. When the last clone is dropped the waiter
//! learns the [`Resolution`]: `Delivered`, `Rejected` if a holder dropped the data for
//! good ([`Ack::reject`]: a 4xx, invalid data; re-sending cannot help), or `Failed` if a
//! holder could not deliver it for now ([`Ack::fail`]: a full queue, retries given up,
//! the shutdown deadline; re-sending may help). Dropping a record on purpose (filtered,
//! sampled out) is a plain drop: done.
//!
//! Two levels, as DESIGN.md's "accepted" and "delivered": a *delivery* token (filelog)
//! is held until every exporter has delivered; a *reply* token (an OTLP client waiting
//! for its answer) is let go, as kept, by whatever takes the data over with its own
//! safety: an exporter's queue, the batch processor. With no queue in the way the reply
//! waits for the export and carries its outcome back to the client.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Every holder let go without a failure.
    Delivered,
    /// Some holder dropped the data for good; none failed in a way worth a retry.
    Rejected,
    /// Some holder could not deliver it for now: the source should send it again.
    Failed,
}

/// A backend's status for data it refused, passed back to a client that waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendStatus {
    Http(u16),
    /// A gRPC status code.
    Grpc(i32),
}

/// What became of the data behind a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub outcome: AckOutcome,
    /// Some holder kept the data (delivered it, or took it into a queue): sending it
    /// again would duplicate it there.
    pub kept: bool,
    /// The first permanent failure's backend status, if the backend gave one.
    pub status: Option<BackendStatus>,
    /// The first failure's message.
    pub message: String,
}

impl Resolution {
    fn failed(message: &str) -> Resolution {
        Resolution { outcome: AckOutcome::Failed, kept: false, status: None, message: message.into() }
    }
}

const FAILED: u8 = 1;
const REJECTED: u8 = 2;
const KEPT: u8 = 4;

#[derive(Clone, Debug)]
pub struct Ack(Arc<AckInner>);

#[derive(Debug)]
struct AckInner {
    flags: AtomicU8,
    /// A reply token: let go (as kept) by the first stage that takes the data over.
    reply: bool,
    /// The first failure: its backend status and message.
    first: Mutex<Option<(Option<BackendStatus>, String)>>,
    notify: Mutex<Option<oneshot::Sender<Resolution>>>,
    /// Nudged once the outcome is known, for a source that waits on a thread.
    wake: Option<std::sync::mpsc::SyncSender<()>>,
}

/// The source's end: resolves once every holder of the token has let go.
#[derive(Debug)]
pub struct AckWaiter(oneshot::Receiver<Resolution>);

impl Ack {
    /// A delivery token: resolved once every holder has delivered or given up.
    pub fn new() -> (Ack, AckWaiter) {
        Self::make(false, None)
    }

    /// A delivery token that also nudges `wake` when it resolves (a full channel means
    /// a nudge is already pending).
    pub fn with_wake(wake: std::sync::mpsc::SyncSender<()>) -> (Ack, AckWaiter) {
        Self::make(false, Some(wake))
    }

    /// A reply token: resolved once the data is delivered or taken over by a queue.
    pub fn reply() -> (Ack, AckWaiter) {
        Self::make(true, None)
    }

    fn make(reply: bool, wake: Option<std::sync::mpsc::SyncSender<()>>) -> (Ack, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        let inner =
            AckInner { flags: AtomicU8::new(0), reply, first: Mutex::new(None), notify: Mutex::new(Some(tx)), wake };
        (Ack(Arc::new(inner)), AckWaiter(rx))
    }

    pub fn is_reply(&self) -> bool {
        self.0.reply
    }

    /// The same for every clone of one token, and different between tokens.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// Marks the data as not delivered for now: the source should send it again.
    pub fn fail(&self) {
        self.0.flags.fetch_or(FAILED, Ordering::AcqRel);
    }

    /// Like [`Ack::fail`], with the reason for a client that waits.
    pub fn fail_with(&self, message: &str) {
        self.note(None, message);
        self.fail();
    }

    /// Marks the data as dropped for good (`status`: the backend's, if it gave one).
    pub fn reject(&self, status: Option<BackendStatus>, message: &str) {
        self.note(status, message);
        self.0.flags.fetch_or(REJECTED, Ordering::AcqRel);
    }

    /// Marks the data as kept somewhere (delivered, or queued).
    pub fn keep(&self) {
        self.0.flags.fetch_or(KEPT, Ordering::AcqRel);
    }

    fn note(&self, status: Option<BackendStatus>, message: &str) {
        let mut first = self.0.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some((status, message.to_string()));
        }
    }
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let flags = *self.flags.get_mut();
        let outcome = if flags & FAILED != 0 {
            AckOutcome::Failed
        } else if flags & REJECTED != 0 {
            AckOutcome::Rejected
        } else {
            AckOutcome::Delivered
        };
        let (status, message) =
            self.first.get_mut().unwrap_or_else(PoisonError::into_inner).take().unwrap_or((None, String::new()));
        let resolution = Resolution { outcome, kept: flags & KEPT != 0, status, message };
        let sender = self.notify.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(sender) = sender {
            // The source may have stopped waiting; then nobody needs the outcome.
            let _ = sender.send(resolution);
        }
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

impl AckWaiter {
    /// Waits for the outcome. A token that vanished without an outcome counts as failed.
    pub async fn wait(self) -> Resolution {
        self.0.await.unwrap_or_else(|_| Resolution::failed("the acknowledgement was lost"))
    }

    /// The outcome if it is already known.
    pub fn try_outcome(&mut self) -> Option<AckOutcome> {
        self.0.try_recv().ok().map(|r| r.outcome)
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
        assert_eq!(waiter.wait().await.outcome, AckOutcome::Delivered);
    }

    #[tokio::test]
    async fn a_retryable_failure_wins_over_a_rejection() {
        let (ack, waiter) = Ack::new();
        let copy = ack.clone();
        copy.reject(Some(BackendStatus::Http(400)), "bad");
        ack.fail();
        drop(copy);
        drop(ack);
        let resolution = waiter.wait().await;
        assert_eq!(resolution.outcome, AckOutcome::Failed);
        assert_eq!(resolution.status, Some(BackendStatus::Http(400)));
    }

    #[tokio::test]
    async fn a_rejection_keeps_the_first_status_and_kept() {
        let (ack, waiter) = Ack::reply();
        let copy = ack.clone();
        copy.keep();
        ack.reject(Some(BackendStatus::Grpc(3)), "first");
        copy.reject(Some(BackendStatus::Http(413)), "second");
        drop((ack, copy));
        let r = waiter.wait().await;
        assert_eq!(
            (r.outcome, r.kept, r.status, r.message.as_str()),
            (AckOutcome::Rejected, true, Some(BackendStatus::Grpc(3)), "first")
        );
    }

    #[test]
    fn wake_is_nudged_on_resolution() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (ack, mut waiter) = Ack::with_wake(tx);
        assert!(rx.try_recv().is_err());
        drop(ack);
        assert!(rx.try_recv().is_ok());
        assert_eq!(waiter.try_outcome(), Some(AckOutcome::Delivered));
    }
}
