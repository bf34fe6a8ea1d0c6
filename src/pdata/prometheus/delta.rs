//! Delta sums and histograms made cumulative, as Prometheus needs them (the upstream
//! exporters drop them). State is kept per series, bounded in number, and forgotten
//! once a series has not been seen for `delta_expiry`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Series accumulated at most; past it, new delta series are dropped (and counted).
pub const MAX_DELTA_SERIES: usize = 100_000;

type Labels = Vec<(String, String)>;

/// The running totals, per series (by its labels).
#[derive(Debug)]
pub struct DeltaState {
    series: HashMap<Labels, Accumulated>,
    expiry: Duration,
    limit: usize,
    last_expiry: Instant,
}

/// Windows remembered per series, so a retried batch does not add its deltas twice.
const RECENT_WINDOWS: usize = 16;

#[derive(Debug)]
struct Accumulated {
    last_seen: Instant,
    /// (start, time) of the deltas added last.
    recent: std::collections::VecDeque<(u64, u64)>,
    /// Timestamp of the last sample written (ms): later ones never go before it.
    last_ms: i64,
    value: Total,
}

#[derive(Debug)]
enum Total {
    Sum(f64),
    Histogram(HistogramTotal),
}

/// A histogram's cumulative state: per-bucket counts (not yet cumulative over `le`).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramTotal {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl DeltaState {
    pub fn new(expiry: Duration) -> DeltaState {
        DeltaState::with_limit(expiry, MAX_DELTA_SERIES)
    }

    pub fn with_limit(expiry: Duration, limit: usize) -> DeltaState {
        DeltaState { series: HashMap::new(), expiry, limit, last_expiry: Instant::now() }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Forgets series unseen for the expiry (checked at most once a second).
    pub fn expire(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_expiry) < Duration::from_secs(1) {
            return;
        }
        self.last_expiry = now;
        let expiry = self.expiry;
        self.series.retain(|_, a| now.duration_since(a.last_seen) < expiry);
    }

    /// The entry for `labels`, made with `first` if new; `None` at the series limit.
    /// The bool is false when this window was added already (a retry): nothing to add.
    fn entry(
        &mut self,
        labels: &Labels,
        window: (u64, u64),
        t: i64,
        first: impl FnOnce() -> Total,
    ) -> Option<(&mut Accumulated, i64, bool)> {
        if !self.series.contains_key(labels) {
            if self.series.len() >= self.limit {
                return None;
            }
            self.series.insert(
                labels.clone(),
                Accumulated {
                    last_seen: Instant::now(),
                    recent: Default::default(),
                    last_ms: i64::MIN,
                    value: first(),
                },
            );
        }
        let entry = self.series.get_mut(labels)?;
        entry.last_seen = Instant::now();
        if entry.recent.contains(&window) {
            let last = entry.last_ms;
            return Some((entry, last, false));
        }
        if entry.recent.len() == RECENT_WINDOWS {
            entry.recent.pop_front();
        }
        entry.recent.push_back(window);
        // A delta that arrives late still moves the series forward in time.
        let t = if t <= entry.last_ms { entry.last_ms + 1 } else { t };
        entry.last_ms = t;
        Some((entry, t, true))
    }

    /// Adds a delta (its `window` is (start, time) in ns) to a sum; the running total
    /// and the timestamp to write it at. A window added before is not added again.
    pub fn sum(&mut self, labels: &Labels, window: (u64, u64), delta: f64, t: i64) -> Option<(f64, i64)> {
        let (entry, t, new) = self.entry(labels, window, t, || Total::Sum(0.0))?;
        match &mut entry.value {
            Total::Sum(total) => {
                if new {
                    *total += delta;
                }
                Some((*total, t))
            }
            other => {
                *other = Total::Sum(delta);
                Some((delta, t))
            }
        }
    }

    /// Adds a delta histogram. Different bounds start the series over, as a reset.
    pub fn histogram(
        &mut self,
        labels: &Labels,
        window: (u64, u64),
        delta: &HistogramTotal,
        t: i64,
    ) -> Option<(HistogramTotal, i64)> {
        let (entry, t, new) = self.entry(labels, window, t, || Total::Histogram(empty(&delta.bounds)))?;
        if !new {
            return match &entry.value {
                Total::Histogram(total) => Some((total.clone(), t)),
                Total::Sum(_) => None,
            };
        }
        let total = match &mut entry.value {
            Total::Histogram(total) if total.bounds == delta.bounds => total,
            other => {
                *other = Total::Histogram(empty(&delta.bounds));
                match other {
                    Total::Histogram(total) => total,
                    Total::Sum(_) => return None,
                }
            }
        };
        for (i, n) in delta.counts.iter().enumerate() {
            if let Some(c) = total.counts.get_mut(i) {
                *c = c.saturating_add(*n);
            }
        }
        total.count = total.count.saturating_add(delta.count);
        total.sum += delta.sum;
        Some((total.clone(), t))
    }
}

fn empty(bounds: &[f64]) -> HistogramTotal {
    HistogramTotal { bounds: bounds.to_vec(), counts: vec![0; bounds.len() + 1], count: 0, sum: 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        vec![("__name__".into(), name.into())]
    }

    #[test]
    fn sums_accumulate_and_late_deltas_move_forward() {
        let mut state = DeltaState::new(Duration::from_secs(300));
        assert_eq!(state.sum(&labels("a"), (0, 1), 5.0, 1000), Some((5.0, 1000)));
        assert_eq!(state.sum(&labels("a"), (1, 2), 2.0, 2000), Some((7.0, 2000)));
        assert_eq!(state.sum(&labels("a"), (2, 3), 1.0, 1500), Some((8.0, 2001)));
        assert_eq!(state.sum(&labels("b"), (0, 1), 1.0, 1500), Some((1.0, 1500)));
        // A retried batch brings windows already added: the total does not move.
        assert_eq!(state.sum(&labels("a"), (1, 2), 2.0, 2000), Some((8.0, 2001)));
    }

    #[test]
    fn histograms_accumulate_and_reset_on_new_bounds() {
        let mut state = DeltaState::new(Duration::from_secs(300));
        let h = |counts: Vec<u64>, bounds: Vec<f64>| HistogramTotal {
            count: counts.iter().sum(),
            sum: 1.0,
            counts,
            bounds,
        };
        state.histogram(&labels("h"), (0, 1), &h(vec![1, 2, 3], vec![1.0, 2.0]), 10).unwrap();
        let (total, _) = state.histogram(&labels("h"), (1, 2), &h(vec![1, 0, 1], vec![1.0, 2.0]), 20).unwrap();
        assert_eq!((total.counts.clone(), total.count, total.sum), (vec![2, 2, 4], 8, 2.0));
        let (again, _) = state.histogram(&labels("h"), (1, 2), &h(vec![1, 0, 1], vec![1.0, 2.0]), 20).unwrap();
        assert_eq!(again, total, "a retry adds nothing");
        let (total, _) = state.histogram(&labels("h"), (2, 3), &h(vec![4, 4], vec![5.0]), 30).unwrap();
        assert_eq!(total.counts, vec![4, 4]);
    }

    #[test]
    fn state_is_bounded_and_expires() {
        let mut state = DeltaState::with_limit(Duration::from_millis(0), 2);
        assert!(state.sum(&labels("a"), (0, 1), 1.0, 1).is_some());
        assert!(state.sum(&labels("b"), (0, 1), 1.0, 1).is_some());
        assert!(state.sum(&labels("c"), (0, 1), 1.0, 1).is_none());
        // Known series still accumulate at the limit.
        assert_eq!(state.sum(&labels("a"), (1, 2), 1.0, 2).map(|r| r.0), Some(2.0));
        state.last_expiry = Instant::now() - Duration::from_secs(2);
        state.expire();
        assert!(state.is_empty());
    }
}
