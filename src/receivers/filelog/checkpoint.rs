//! Offsets that survive restarts: for each known file, its fingerprint and the offset
//! up to which everything was delivered. Offsets advance only when a batch's
//! acknowledgement arrives, in the order batches were sent, so kill -9 at any moment
//! re-reads at most what was in flight.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::reader::Fingerprint;
use crate::pdata::AckWaiter;

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

    /// The delivered offset of a file that starts with a known fingerprint.
    pub fn offset_for(&self, fingerprint: &Fingerprint) -> Option<u64> {
        self.files
            .iter()
            .filter_map(|known| Some((hex_decode(&known.fingerprint)?, known.offset)))
            .find(|(known, _)| fingerprint.starts_with(&Fingerprint(known.clone())))
            .map(|(_, offset)| offset)
    }
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Batches sent and not yet acknowledged, oldest first, with the offsets each carries.
#[derive(Default)]
pub struct PendingAcks {
    queue: VecDeque<(AckWaiter, Vec<(u64, u64)>)>,
}

impl PendingAcks {
    /// `offsets`: (file key, offset just past the batch's last record of that file).
    pub fn push(&mut self, waiter: AckWaiter, offsets: Vec<(u64, u64)>) {
        self.queue.push_back((waiter, offsets));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Moves the offsets of every batch acknowledged so far, in order, into `committed`.
    /// A batch that failed downstream was counted and logged there; its offsets move
    /// too, as a retry would fail again. Returns how many batches resolved.
    pub fn collect(&mut self, committed: &mut BTreeMap<u64, u64>) -> usize {
        let mut resolved = 0;
        while let Some((waiter, _)) = self.queue.front_mut() {
            if waiter.try_outcome().is_none() {
                break;
            }
            if let Some((_, offsets)) = self.queue.pop_front() {
                for (key, offset) in offsets {
                    let entry = committed.entry(key).or_insert(0);
                    *entry = (*entry).max(offset);
                }
            }
            resolved += 1;
        }
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::Ack;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_decode(&hex_encode(b"\x00\xffab")).unwrap(), b"\x00\xffab");
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn offsets_commit_in_order_only() {
        let mut pending = PendingAcks::default();
        let (a, wa) = Ack::new();
        let (b, wb) = Ack::new();
        pending.push(wa, vec![(1, 100)]);
        pending.push(wb, vec![(1, 200), (2, 50)]);
        let mut committed = BTreeMap::new();
        drop(b);
        // The second batch is done but the first is not: nothing moves.
        assert_eq!(pending.collect(&mut committed), 0);
        assert!(committed.is_empty());
        drop(a);
        assert_eq!(pending.collect(&mut committed), 2);
        assert_eq!(committed, BTreeMap::from([(1, 200), (2, 50)]));
        assert!(pending.is_empty());
    }

    #[test]
    fn known_files_match_by_fingerprint_prefix() {
        let checkpoint = Checkpoint {
            files: vec![KnownFile { fingerprint: hex_encode(b"first line"), offset: 11, path: "a".into() }],
        };
        let decoded = Checkpoint::decode(&checkpoint.encode()).unwrap();
        assert_eq!(decoded.offset_for(&Fingerprint(b"first line\nsecond".to_vec())), Some(11));
        assert_eq!(decoded.offset_for(&Fingerprint(b"other".to_vec())), None);
    }
}
