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

/// A batch sent: its acknowledgement, (file key, offset) pairs, file bytes and records.
struct InFlight {
    waiter: AckWaiter,
    offsets: Vec<(u64, u64)>,
    bytes: u64,
    records: u64,
}

/// Batches sent and not yet acknowledged, oldest first, with the offsets each carries.
#[derive(Default)]
pub struct PendingAcks {
    queue: VecDeque<InFlight>,
    /// File bytes behind the batches in `queue`.
    bytes: u64,
}

/// What [`PendingAcks::collect`] found besides the offsets it committed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Files with a batch that failed for now (retryable): each is read again from its
    /// committed offset, the start of the failed range.
    pub failed: Vec<u64>,
    /// Files with a delivered batch (their failure streak is over).
    pub delivered: BTreeSet<u64>,
    /// Records downstream refused for good: dropped, and the offsets moved past them.
    pub rejected_records: u64,
}

impl PendingAcks {
    /// `offsets`: (file key, offset just past the batch's last record of that file);
    /// `bytes`: the file bytes the batch was read from; `records`: how many it holds.
    pub fn push(&mut self, waiter: AckWaiter, offsets: Vec<(u64, u64)>, bytes: u64, records: u64) {
        self.bytes += bytes;
        self.queue.push_back(InFlight { waiter, offsets, bytes, records });
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

    /// Moves the offsets of every batch resolved so far, in order, into `committed`:
    /// delivered and rejected batches (a 4xx: re-sending cannot help) move them; a
    /// failed one stops its files where they are, and later batches of those files
    /// (read past the failure) are ignored: the caller reads them again from there.
    /// Only files with an entry in `committed` move.
    pub fn collect(&mut self, committed: &mut BTreeMap<u64, u64>) -> Collected {
        let mut collected = Collected::default();
        while let Some(front) = self.queue.front_mut() {
            let Some(outcome) = front.waiter.try_outcome() else { break };
            let Some(batch) = self.queue.pop_front() else { break };
            self.bytes -= batch.bytes;
            if outcome == AckOutcome::Rejected {
                collected.rejected_records += batch.records;
            }
            for (key, offset) in batch.offsets {
                if collected.failed.contains(&key) {
                    continue;
                }
                let Some(entry) = committed.get_mut(&key) else { continue };
                if outcome == AckOutcome::Failed {
                    collected.failed.push(key);
                    continue;
                }
                if outcome == AckOutcome::Delivered && batch.records > 0 {
                    collected.delivered.insert(key);
                }
                *entry = (*entry).max(offset);
            }
        }
        collected
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
        pending.push(wa, vec![(1, 100)], 100, 1);
        pending.push(wb, vec![(1, 200), (2, 50)], 150, 2);
        let mut committed = BTreeMap::from([(1, 0), (2, 0)]);
        drop(b);
        // The second batch is done but the first is not: nothing moves.
        pending.collect(&mut committed);
        assert_eq!(committed, BTreeMap::from([(1, 0), (2, 0)]));
        drop(a);
        pending.collect(&mut committed);
        assert_eq!(committed, BTreeMap::from([(1, 200), (2, 50)]));
        assert!(pending.is_empty());
    }

    #[test]
    fn a_failed_batch_stops_its_files_and_a_rejected_one_moves_on() {
        let mut pending = PendingAcks::default();
        let (a, wa) = Ack::new();
        let (b, wb) = Ack::new();
        let (c, wc) = Ack::new();
        pending.push(wa, vec![(1, 100), (2, 10)], 110, 3);
        pending.push(wb, vec![(1, 200), (3, 5)], 105, 2);
        pending.push(wc, vec![(4, 70)], 70, 7);
        a.fail();
        c.reject(None, "400");
        drop((a, b, c));
        let mut committed = BTreeMap::from([(1, 0), (2, 0), (3, 0), (4, 0)]);
        let collected = pending.collect(&mut committed);
        assert_eq!(collected.failed, vec![1, 2]);
        assert_eq!(collected.rejected_records, 7);
        // Files 1 and 2 stay before the failed batch (file 1's later batch is read
        // again); file 3 was not in it; file 4's refused batch is passed.
        assert_eq!(committed, BTreeMap::from([(1, 0), (2, 0), (3, 5), (4, 70)]));
        assert_eq!(collected.delivered, BTreeSet::from([3]));
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
