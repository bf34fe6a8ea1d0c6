//! Exponential histograms as Prometheus native histograms: the scale is the schema
//! (above 8, buckets are merged down to 8; below -4 there is no native form), and
//! buckets become spans and delta-encoded counts, Prometheus' bucket index being
//! OpenTelemetry's plus one.

use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;

/// Used when the point has no zero threshold, as upstream.
const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// A native histogram sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeHistogram {
    pub count: u64,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    /// (offset, length) spans and the delta-encoded counts of their buckets.
    pub positive_spans: Vec<(i32, u32)>,
    pub positive_deltas: Vec<i64>,
    pub negative_spans: Vec<(i32, u32)>,
    pub negative_deltas: Vec<i64>,
    pub timestamp_ms: i64,
}

/// The native form of a point, or why there is none.
pub fn convert(point: &ExponentialHistogramDataPoint, timestamp_ms: i64) -> Result<NativeHistogram, String> {
    if point.scale < -4 {
        return Err(format!("scale {} is below -4, the smallest native histogram schema", point.scale));
    }
    // OpenTelemetry's largest scale is 20; beyond 8+62 merging would shift out everything.
    if point.scale > 70 {
        return Err(format!("scale {} is beyond any exponential histogram", point.scale));
    }
    let shift = (point.scale - 8).max(0) as u32;
    let (positive_spans, positive_deltas) = spans(point.positive.as_ref(), shift)?;
    let (negative_spans, negative_deltas) = spans(point.negative.as_ref(), shift)?;
    Ok(NativeHistogram {
        count: point.count,
        sum: point.sum.unwrap_or(0.0),
        schema: point.scale.min(8),
        zero_threshold: if point.zero_threshold > 0.0 { point.zero_threshold } else { DEFAULT_ZERO_THRESHOLD },
        zero_count: point.zero_count,
        positive_spans,
        positive_deltas,
        negative_spans,
        negative_deltas,
        timestamp_ms,
    })
}

/// Spans and deltas for one side: buckets merged `shift` scales down; gaps of up to
/// two empty buckets are kept inside a span, longer ones start a new span.
/// One side's spans and deltas.
type Side = (Vec<(i32, u32)>, Vec<i64>);

fn spans(buckets: Option<&Buckets>, shift: u32) -> Result<Side, String> {
    let Some(buckets) = buckets else { return Ok((Vec::new(), Vec::new())) };
    // (Prometheus index, count), merged by the downscale.
    let mut merged: Vec<(i64, u64)> = Vec::with_capacity(buckets.bucket_counts.len());
    for (i, count) in buckets.bucket_counts.iter().enumerate() {
        let index = ((i64::from(buckets.offset) + i as i64) >> shift) + 1;
        match merged.last_mut() {
            Some((last, total)) if *last == index => *total = total.saturating_add(*count),
            _ => merged.push((index, *count)),
        }
    }
    let mut spans: Vec<(i32, u32)> = Vec::new();
    let mut deltas = Vec::new();
    let (mut previous_count, mut next_index) = (0i64, None::<i64>);
    let too_far = || "a bucket index beyond what a native histogram can hold".to_string();
    for (index, count) in merged.into_iter().filter(|(_, c)| *c > 0) {
        let count = i64::try_from(count).map_err(|_| "a bucket count beyond 2^63".to_string())?;
        match next_index {
            Some(next) if index - next <= 2 => {
                // Fill a short gap with empty buckets in the current span.
                for _ in next..index {
                    deltas.push(-previous_count);
                    previous_count = 0;
                }
                if let Some(span) = spans.last_mut() {
                    span.1 += (index - next) as u32 + 1;
                }
            }
            Some(next) => spans.push((i32::try_from(index - next).map_err(|_| too_far())?, 1)),
            None => spans.push((i32::try_from(index).map_err(|_| too_far())?, 1)),
        }
        deltas.push(count - previous_count);
        previous_count = count;
        next_index = Some(index + 1);
    }
    Ok((spans, deltas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(scale: i32, offset: i32, counts: Vec<u64>) -> ExponentialHistogramDataPoint {
        ExponentialHistogramDataPoint {
            scale,
            count: counts.iter().sum(),
            sum: Some(10.0),
            positive: Some(Buckets { offset, bucket_counts: counts }),
            ..Default::default()
        }
    }

    /// The absolute counts per Prometheus index, decoded back from spans and deltas.
    fn decode(spans: &[(i32, u32)], deltas: &[i64]) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let (mut index, mut count, mut d) = (0i64, 0i64, deltas.iter());
        // The first offset is the start index, later ones the gap after the last span.
        for (offset, length) in spans {
            index += i64::from(*offset);
            for _ in 0..*length {
                count += d.next().copied().unwrap_or(0);
                out.push((index, count));
                index += 1;
            }
        }
        out
    }

    #[test]
    fn buckets_become_spans_and_deltas() {
        let h = convert(&point(3, -2, vec![1, 2, 0, 0, 4, 0, 0, 0, 5]), 7).unwrap();
        assert_eq!((h.schema, h.count, h.timestamp_ms), (3, 12, 7));
        // OTel index -2 is Prometheus index -1; the 2-bucket gap stays in the span, the
        // 3-bucket gap starts a new one.
        assert_eq!(h.positive_spans, vec![(-1, 5), (3, 1)]);
        assert_eq!(
            decode(&h.positive_spans, &h.positive_deltas),
            vec![(-1, 1), (0, 2), (1, 0), (2, 0), (3, 4), (7, 5)]
        );
    }

    #[test]
    fn scales_above_8_are_merged_down_and_below_minus_4_refused() {
        let h = convert(&point(9, 0, vec![1, 1, 1, 1]), 0).unwrap();
        assert_eq!(h.schema, 8);
        // Indexes 0..3 at scale 9 are 0, 0, 1, 1 at scale 8: Prometheus 1 and 2.
        assert_eq!(decode(&h.positive_spans, &h.positive_deltas), vec![(1, 2), (2, 2)]);
        assert!(convert(&point(-5, 0, vec![1]), 0).is_err());
        assert_eq!(convert(&point(0, 0, vec![]), 0).unwrap().positive_spans, vec![]);
    }
}
