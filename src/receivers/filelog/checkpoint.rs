//! Offsets that survive restarts: for each known file, its fingerprint and the offset
//! up to which everything was delivered. Offsets advance only when a batch's
//! acknowledgement arrives, in the order batches were sent, so kill -9 at any moment
//! re-reads at most what was in flight.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::reader::Fingerprint;
use crate::pdata::{AckOutcome, AckWaiter};

/// One file in the persisted checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownFile {
    /// Hex of the file's first bytes.
    pub fingerprint: String,
    pub offset: u64,
    /// For people reading the file; matching is by fingerprint.
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub files: Vec<KnownFile>,
}

impl Checkpoint {
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The delivered offset of a file that starts with a known fingerprint: the longest
    /// such fingerprint wins, and the entry is used up, so two files never share one.
    pub fn take_offset_for(&mut self, fingerprint: &Fingerprint) -> Option<u64> {
        let (index, _) = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, known)| Some((i, hex_decode(&known.fingerprint)?)))
            .filter(|(_, known)| fingerprint.starts_with(&Fingerprint(known.clone())))
            .max_by_key(|(_, known)| known.len())?;
        Some(self.files.remove(index).offset)
    }
}

pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// A batch sent: its acknowledgement, (file key, offset) pairs, and file bytes.
type InFlight = (AckWaiter, Vec<(u64, u64)>, u64);

/// Batches sent and not yet acknowledged, oldest first, with the offsets each carries.
#[derive(Default)]
pub struct PendingAcks {
    queue: VecDeque<InFlight>,
    /// File bytes behind the batches in `queue`.
    bytes: u64,
}

impl PendingAcks {
    /// `offsets`: (file key, offset just past the batch's last record of that file);
    /// `bytes`: the file bytes the batch was read from.
    pub fn push(&mut self, waiter: AckWaiter, offsets: Vec<(u64, u64)>, bytes: u64) {
        self.bytes += bytes;
        self.queue.push_back((waiter, offsets, bytes));
    }

    /// File bytes read into batches not yet collected.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Moves the offsets of every batch acknowledged so far, in order, into `committed`.
    /// A batch that failed (dropped downstream, or given up at shutdown) blocks its
    /// files: their offsets stay before it, so a restart reads those lines again.
    /// Returns the keys newly blocked.
    pub fn collect(&mut self, committed: &mut BTreeMap<u64, u64>, blocked: &mut BTreeSet<u64>) -> Vec<u64> {
        let mut newly_blocked = Vec::new();
        while let Some((waiter, _, _)) = self.queue.front_mut() {
            let Some(outcome) = waiter.try_outcome() else { break };
            let Some((_, offsets, bytes)) = self.queue.pop_front() else { break };
            self.bytes -= bytes;
            for (key, offset) in offsets {
                if blocked.contains(&key) {
                    continue;
                }
                if outcome == AckOutcome::Failed {
                    blocked.insert(key);
                    newly_blocked.push(key);
                    continue;
                }
                let entry = committed.entry(key).or_insert(0);
                *entry = (*entry).max(offset);
            }
        }
        newly_blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::Ack;
    use crate::pdata::json::hex;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_decode(&hex(b"\x00\xffab")).unwrap(), b"\x00\xffab");
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn offsets_commit_in_order_only() {
        let mut pending = PendingAcks::default();
        let (a, wa) = Ack::new();
        let (b, wb) = Ack::new();
        pending.push(wa, vec![(1, 100)], 100);
        pending.push(wb, vec![(1, 200), (2, 50)], 150);
        let mut committed = BTreeMap::new();
        let mut blocked = BTreeSet::new();
        drop(b);
        // The second batch is done but the first is not: nothing moves.
        pending.collect(&mut committed, &mut blocked);
        assert!(committed.is_empty());
        drop(a);
        pending.collect(&mut committed, &mut blocked);
        assert_eq!(committed, BTreeMap::from([(1, 200), (2, 50)]));
        assert!(pending.is_empty());
    }

    #[test]
    fn a_failed_batch_blocks_its_files() {
        let mut pending = PendingAcks::default();
        let (a, wa) = Ack::new();
        let (b, wb) = Ack::new();
        pending.push(wa, vec![(1, 100), (2, 10)], 110);
        pending.push(wb, vec![(1, 200), (3, 5)], 105);
        a.fail();
        drop(a);
        drop(b);
        let mut committed = BTreeMap::new();
        let mut blocked = BTreeSet::new();
        assert_eq!(pending.collect(&mut committed, &mut blocked), vec![1, 2]);
        // File 1 stays before the failed batch; file 3 was not in it.
        assert_eq!(committed, BTreeMap::from([(3, 5)]));
    }

    #[test]
    fn known_files_match_by_fingerprint_prefix() {
        let checkpoint =
            Checkpoint { files: vec![KnownFile { fingerprint: hex(b"first line"), offset: 11, path: "a".into() }] };
        let mut decoded = Checkpoint::decode(&checkpoint.encode()).unwrap();
        decoded.files.push(KnownFile { fingerprint: hex(b"first"), offset: 3, path: "b".into() });
        assert_eq!(decoded.take_offset_for(&Fingerprint(b"other".to_vec())), None);
        // The longest match wins and is used up.
        assert_eq!(decoded.take_offset_for(&Fingerprint(b"first line\nsecond".to_vec())), Some(11));
        assert_eq!(decoded.take_offset_for(&Fingerprint(b"first line\nsecond".to_vec())), Some(3));
        assert_eq!(decoded.take_offset_for(&Fingerprint(b"first line\nsecond".to_vec())), None);
    }
}
