//! The consistent hash ring, position for position upstream's: 36,000 positions, 100
//! per backend (CRC-32 of the backend's name and the position's number), a key at the
//! first position at or after its own CRC-32. Adding a backend moves only the keys
//! that land on its positions, and agents running upstream's exporter and ocelot's
//! send a key to the same backend.

const MAX_POSITIONS: u32 = 36_000;
const POSITIONS_PER_BACKEND: u8 = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ring {
    /// (position, index into `backends`), by position.
    positions: Vec<(u32, usize)>,
    backends: Vec<String>,
}

impl Ring {
    /// A ring of `backends` as the resolver names them (sorted, as upstream's
    /// resolvers hand them over). A position two backends hash to is the first's.
    pub(crate) fn new(backends: Vec<String>) -> Ring {
        let mut taken = std::collections::HashSet::new();
        let mut positions = Vec::with_capacity(backends.len() * usize::from(POSITIONS_PER_BACKEND));
        for (index, backend) in backends.iter().enumerate() {
            for i in 0..POSITIONS_PER_BACKEND {
                let mut hasher = crc32fast::Hasher::new();
                hasher.update(backend.as_bytes());
                hasher.update(&[i]);
                let position = hasher.finalize() % MAX_POSITIONS;
                if taken.insert(position) {
                    positions.push((position, index));
                }
            }
        }
        positions.sort_unstable();
        Ring { positions, backends }
    }

    pub(crate) fn backends(&self) -> &[String] {
        &self.backends
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The index of the backend `key` goes to; `None` on an empty ring.
    pub(crate) fn find(&self, key: &[u8]) -> Option<usize> {
        if self.backends.len() == 1 {
            return Some(0);
        }
        let position = crc32fast::hash(key) % MAX_POSITIONS;
        let at = self.positions.partition_point(|(p, _)| *p < position);
        let (_, backend) = self.positions.get(at).or_else(|| self.positions.first())?;
        Some(*backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> impl Iterator<Item = [u8; 16]> {
        (0u64..20_000).map(|i| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            id[8..].copy_from_slice(&i.to_be_bytes());
            id
        })
    }

    #[test]
    fn keys_spread_and_a_new_backend_takes_only_its_share() {
        let three = Ring::new(vec!["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into()]);
        let four = Ring::new(vec!["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into(), "10.0.0.4".into()]);
        let mut per = [0usize; 4];
        let mut moved = 0;
        for key in keys() {
            let before = three.backends()[three.find(&key).unwrap()].clone();
            let after = four.backends()[four.find(&key).unwrap()].clone();
            per[four.find(&key).unwrap()] += 1;
            if before != after {
                assert_eq!(after, "10.0.0.4", "a key moved between old backends");
                moved += 1;
            }
        }
        // Each of four backends has about a quarter; only the new one's share moved.
        for n in per {
            assert!((2_500..=7_500).contains(&n), "{per:?}");
        }
        assert_eq!(moved, per[3]);
    }

    #[test]
    fn positions_are_upstreams() {
        // The first position, recomputed: CRC-32 (IEEE) of the name and the byte 0.
        let ring = Ring::new(vec!["backend-1".into()]);
        let first = crc32fast::hash(&[b"backend-1".as_slice(), &[0]].concat()) % MAX_POSITIONS;
        assert!(ring.positions.iter().any(|(p, _)| *p == first));
        assert_eq!(ring.positions.len(), 100);
        assert_eq!(Ring::new(Vec::new()).find(b"x"), None);
    }
}
