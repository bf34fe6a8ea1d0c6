//! `retry_on_failure`: exponential backoff with jitter, bounded by `max_elapsed_time`.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigDuration;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retry retryable failures at all. Default true.
    #[serde(default = "super::default_true")]
    pub enabled: bool,
    /// First wait after a failure. Default 5s.
    #[serde(default = "default_initial_interval")]
    pub initial_interval: ConfigDuration,
    /// Longest wait between attempts. Default 30s.
    #[serde(default = "default_max_interval")]
    pub max_interval: ConfigDuration,
    /// Give up on a batch after this long; 0 retries forever. Default 300s.
    #[serde(default = "default_max_elapsed_time")]
    pub max_elapsed_time: ConfigDuration,
    /// Growth of the wait per attempt. Default 1.5.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Jitter: each wait is spread by ± this share. Default 0.5.
    #[serde(default = "default_randomization_factor")]
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: default_initial_interval(),
            max_interval: default_max_interval(),
            max_elapsed_time: default_max_elapsed_time(),
            multiplier: default_multiplier(),
            randomization_factor: default_randomization_factor(),
        }
    }
}

fn default_initial_interval() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}
fn default_max_interval() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}
fn default_max_elapsed_time() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}
fn default_multiplier() -> f64 {
    1.5
}
fn default_randomization_factor() -> f64 {
    0.5
}

impl RetryConfig {
    /// Checked even when disabled: a value that is wrong now is wrong when enabled.
    pub fn validate(&self) -> Result<(), String> {
        if self.initial_interval.0.is_zero() {
            return Err("retry_on_failure.initial_interval must be more than 0".into());
        }
        if self.max_interval.0 < self.initial_interval.0 {
            return Err("retry_on_failure.max_interval must be at least initial_interval".into());
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err("retry_on_failure.multiplier must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            return Err("retry_on_failure.randomization_factor must be between 0 and 1".into());
        }
        Ok(())
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff { config: self.clone(), interval: self.initial_interval.0 }
    }
}

pub(crate) struct Backoff {
    config: RetryConfig,
    interval: Duration,
}

impl Backoff {
    /// The wait before the next attempt, or `None` once `max_elapsed_time` would pass.
    /// A server's `Retry-After` is a floor: the wait is the longer of the two.
    pub(crate) fn next_delay(&mut self, elapsed: Duration, retry_after: Option<Duration>) -> Option<Duration> {
        let spread = self.config.randomization_factor * self.interval.as_secs_f64();
        let jittered = self.interval.as_secs_f64() - spread + fastrand::f64() * 2.0 * spread;
        let mut delay = Duration::from_secs_f64(jittered.max(0.0));
        if let Some(hint) = retry_after {
            delay = delay.max(hint);
        }
        self.interval = self.interval.mul_f64(self.config.multiplier).min(self.config.max_interval.0);
        let limit = self.config.max_elapsed_time.0;
        if !limit.is_zero() && elapsed + delay > limit {
            return None;
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_and_stops_at_max_elapsed() {
        let config = RetryConfig {
            randomization_factor: 0.0,
            initial_interval: ConfigDuration::from_secs(1),
            max_interval: ConfigDuration::from_secs(3),
            max_elapsed_time: ConfigDuration::from_secs(10),
            multiplier: 2.0,
            ..RetryConfig::default()
        };
        let mut b = config.backoff();
        assert_eq!(b.next_delay(Duration::ZERO, None), Some(Duration::from_secs(1)));
        assert_eq!(b.next_delay(Duration::from_secs(1), None), Some(Duration::from_secs(2)));
        assert_eq!(b.next_delay(Duration::from_secs(3), None), Some(Duration::from_secs(3)));
        assert_eq!(b.next_delay(Duration::from_secs(6), None), Some(Duration::from_secs(3)));
        assert_eq!(b.next_delay(Duration::from_secs(9), None), None);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let config = RetryConfig { randomization_factor: 0.0, ..RetryConfig::default() };
        let mut b = config.backoff();
        assert_eq!(b.next_delay(Duration::ZERO, Some(Duration::from_secs(7))), Some(Duration::from_secs(7)));
        assert_eq!(b.next_delay(Duration::ZERO, Some(Duration::ZERO)), Some(Duration::from_millis(7500)));
    }

    #[test]
    fn bad_values_are_rejected_even_when_disabled() {
        let config = RetryConfig { enabled: false, multiplier: f64::NAN, ..RetryConfig::default() };
        assert!(config.validate().unwrap_err().contains("multiplier"));
    }

    #[test]
    fn jitter_stays_within_the_factor() {
        let config = RetryConfig { max_elapsed_time: ConfigDuration(Duration::ZERO), ..RetryConfig::default() };
        for _ in 0..100 {
            let mut b = config.backoff();
            let d = b.next_delay(Duration::ZERO, None).unwrap();
            assert!(d >= Duration::from_millis(2500) && d <= Duration::from_millis(7500), "{d:?}");
        }
    }
}
