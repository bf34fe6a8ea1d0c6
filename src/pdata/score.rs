//! Importance scores: a number in [0, 1] the `importance` processor writes on a
//! record (or its resource) and the `memory_limiter` reads to decide what to shed
//! first. One reading rule for both, so they can never disagree: the record's own
//! attribute wins over its resource's.

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};

/// The four tiers scores are counted in, from `critical` (0.9 and up) to `low`
/// (under 0.3), and records that carry no score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Critical,
    Important,
    Standard,
    Low,
    Unscored,
}

impl Tier {
    pub const ALL: [Tier; 5] = [Tier::Critical, Tier::Important, Tier::Standard, Tier::Low, Tier::Unscored];

    pub fn of(score: Option<f64>) -> Tier {
        match score {
            Some(s) if s >= 0.9 => Tier::Critical,
            Some(s) if s >= 0.6 => Tier::Important,
            Some(s) if s >= 0.3 => Tier::Standard,
            Some(_) => Tier::Low,
            None => Tier::Unscored,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Important => "important",
            Tier::Standard => "standard",
            Tier::Low => "low",
            Tier::Unscored => "unscored",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a record says about its importance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Score {
    Scored(f64),
    /// No such attribute on the record or its resource.
    Missing,
    /// The attribute is there but is no number in [0, 1] (nor a string of one).
    Invalid,
}

impl Score {
    pub fn value(self) -> Option<f64> {
        match self {
            Score::Scored(s) => Some(s),
            _ => None,
        }
    }
}

/// The score under `key`: the record's attribute, else its resource's.
pub fn read(key: &str, record: &[KeyValue], resource: &[KeyValue]) -> Score {
    let found = record.iter().find(|kv| kv.key == key).or_else(|| resource.iter().find(|kv| kv.key == key));
    let Some(kv) = found else {
        return Score::Missing;
    };
    let number = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::DoubleValue(d)) => Some(*d),
        Some(any_value::Value::IntValue(i)) => Some(*i as f64),
        Some(any_value::Value::StringValue(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if (0.0..=1.0).contains(&n) => Score::Scored(n),
        _ => Score::Invalid,
    }
}

/// `key = score` as an attribute.
pub fn attribute(key: &str, score: f64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(any_value::Value::DoubleValue(score)),
        }),
        ..Default::default()
    }
}

/// Writes `key = score` into `attributes`, replacing an earlier value.
pub fn write(attributes: &mut Vec<KeyValue>, key: &str, score: f64) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => *kv = attribute(key, score),
        None => attributes.push(attribute(key, score)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    #[test]
    fn record_wins_over_resource() {
        let record = [kv("importance", any_value::Value::DoubleValue(0.95))];
        let resource = [kv("importance", any_value::Value::DoubleValue(0.1))];
        assert_eq!(read("importance", &record, &resource), Score::Scored(0.95));
        assert_eq!(read("importance", &[], &resource), Score::Scored(0.1));
        assert_eq!(read("importance", &[], &[]), Score::Missing);
    }

    #[test]
    fn bad_values_are_invalid() {
        for value in [
            any_value::Value::StringValue("high".into()),
            any_value::Value::DoubleValue(1.5),
            any_value::Value::DoubleValue(f64::NAN),
            any_value::Value::BoolValue(true),
        ] {
            assert_eq!(read("s", &[kv("s", value.clone())], &[]), Score::Invalid, "{value:?}");
        }
        assert_eq!(read("s", &[kv("s", any_value::Value::StringValue(" 0.7".into()))], &[]), Score::Scored(0.7));
        assert_eq!(read("s", &[kv("s", any_value::Value::IntValue(1))], &[]), Score::Scored(1.0));
    }

    #[test]
    fn tiers() {
        assert_eq!(Tier::of(Some(0.9)), Tier::Critical);
        assert_eq!(Tier::of(Some(0.89)), Tier::Important);
        assert_eq!(Tier::of(Some(0.3)), Tier::Standard);
        assert_eq!(Tier::of(Some(0.0)), Tier::Low);
        assert_eq!(Tier::of(None), Tier::Unscored);
    }

    #[test]
    fn write_replaces() {
        let mut attributes = vec![kv("importance", any_value::Value::DoubleValue(0.1))];
        write(&mut attributes, "importance", 0.8);
        assert_eq!(attributes.len(), 1);
        assert_eq!(read("importance", &attributes, &[]), Score::Scored(0.8));
    }
}
