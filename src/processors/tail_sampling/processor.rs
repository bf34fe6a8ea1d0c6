//! The store of undecided traces and the decisions over it.
//!
//! Spans are held encoded: each batch's spans of one trace become one fragment, a
//! `TracesData` message holding just them under their resource and scope, so the
//! fragments of the traces kept in one round concatenate into one message that is
//! decoded once. Per trace, beside the fragments, only a [`Summary`] is kept. What is
//! held is counted in bytes against `max_memory_mib`; past it, or past `num_traces`,
//! the oldest traces are decided early. A trace is never let go undecided, except by
//! `drop_pending_traces_on_shutdown`.
//!
//! Acknowledgements: a fragment holds its batch's tokens, so a source learns of its
//! batch when every trace in it is decided: not sampled is done; sampled goes on
//! with the kept spans to the exporters.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tokio::time::Instant;
use tracing::error;

use super::config::{SamplingStrategy, TailSamplingConfig};
use super::policy::{Decision, Leaves, Policy, Summary, decide};
use crate::config::ComponentId;
use crate::pdata::{Ack, Batch, Payload, Signal};
use crate::processors::Processor;
use crate::telemetry::ProcessorMetrics;
use crate::telemetry::sampling::{EarlyReason, PolicyCounters, TailSamplingMetrics};

type TraceId = [u8; 16];
type Hasher = foldhash::fast::RandomState;

/// Bookkeeping bytes counted per held trace beyond its fragments: the table entry (at
/// the table's worst load), the trace and its place in the decision queue.
const TRACE_OVERHEAD: u64 = (2 * (size_of::<TraceId>() + size_of::<Trace>()) + size_of::<Due>() + 16) as u64;
/// Per fragment: the fragment and the allocator's share of its bytes.
const FRAGMENT_OVERHEAD: u64 = (size_of::<Fragment>() + 16) as u64;

/// What a fragment of `len` bytes is counted as: the allocator rounds a block up to
/// its size class (mimalloc's are up to 1/8 apart), so that share is counted too.
fn fragment_cost(len: usize) -> u64 {
    (len + len / 8) as u64 + FRAGMENT_OVERHEAD
}
/// Kept spans are sent on in messages of about this size at most.
const OUTPUT_BYTES: usize = 4 << 20;

struct Fragment {
    /// A `TracesData` message of this trace's spans from one batch.
    data: Box<[u8]>,
    acks: Arc<[Ack]>,
}

/// Most traces arrive in one batch: the first fragment is held inline, so such a
/// trace makes no allocation beyond its bytes.
struct Trace {
    seq: u32,
    root_seen: bool,
    /// Milliseconds since the processor's epoch.
    arrived: u64,
    summary: Summary,
    first: Fragment,
    // Boxed: 8 bytes in every held trace instead of 24, and the extra allocation only
    // for traces that arrive in several batches.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<Fragment>>>,
}

impl Trace {
    fn fragments(&self) -> impl Iterator<Item = &Fragment> {
        std::iter::once(&self.first).chain(self.more.iter().flat_map(|m| m.iter()))
    }

    fn into_fragments(self) -> impl Iterator<Item = Fragment> {
        std::iter::once(self.first).chain(self.more.into_iter().flat_map(|m| m.into_iter()))
    }
}

/// When a trace is due. Entries of traces decided before stay until they are
/// reached, and are known by their `seq`.
struct Due {
    /// Milliseconds since the processor's epoch.
    at: u64,
    id: TraceId,
    seq: u32,
}

/// Decided trace ids, the oldest forgotten first.
struct DecisionCache {
    capacity: usize,
    decided: HashMap<TraceId, Instant, Hasher>,
    order: VecDeque<TraceId>,
}

impl DecisionCache {
    fn new(capacity: usize) -> DecisionCache {
        DecisionCache { capacity, decided: HashMap::default(), order: VecDeque::new() }
    }

    fn insert(&mut self, id: TraceId, at: Instant) {
        if self.capacity == 0 || self.decided.insert(id, at).is_some() {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.decided.remove(&old);
        }
    }

    fn get(&self, id: &TraceId) -> Option<Instant> {
        self.decided.get(id).copied()
    }
}

/// The spans of one trace in one incoming batch, as indices into it.
struct Group {
    id: TraceId,
    /// (resource, scope, span) indices, in the batch's order.
    spans: Vec<(u32, u32, u32)>,
    matched: u64,
    errors: u64,
    min_start: u64,
    max_end: u64,
    root: bool,
}

/// Kept fragments gathering into outgoing batches.
#[derive(Default)]
struct Emit {
    data: Vec<u8>,
    acks: Vec<Arc<[Ack]>>,
    ready: Vec<Batch>,
}

impl Emit {
    fn push(&mut self, fragment: Fragment) {
        self.data.extend_from_slice(&fragment.data);
        if !self.acks.last().is_some_and(|a| Arc::ptr_eq(a, &fragment.acks)) {
            self.acks.push(fragment.acks);
        }
        if self.data.len() >= OUTPUT_BYTES {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.data);
        let mut acks: Vec<Ack> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for shared in self.acks.drain(..) {
            for ack in shared.iter() {
                if seen.insert(ack.id()) {
                    acks.push(ack.clone());
                }
            }
        }
        match ExportTraceServiceRequest::decode(data.as_slice()) {
            Ok(mut request) => {
                merge_adjacent(&mut request.resource_spans);
                let mut batch = Batch::new(Payload::Traces(request));
                batch.acks = acks;
                self.ready.push(batch);
            }
            Err(e) => {
                // The bytes were encoded here: this is a bug, and the spans are lost.
                error!(error = %e, "tail_sampling could not read back spans it held; they are lost.");
                for ack in acks {
                    ack.fail_with("tail_sampling could not read back held spans");
                }
            }
        }
    }
}

/// Folds neighbouring resources (and scopes) that are equal, as the traces of one
/// incoming batch are when they are decided together.
fn merge_adjacent(resources: &mut Vec<ResourceSpans>) {
    let mut merged: Vec<ResourceSpans> = Vec::with_capacity(resources.len());
    for rs in resources.drain(..) {
        match merged.last_mut() {
            Some(last) if last.resource == rs.resource && last.schema_url == rs.schema_url => {
                for ss in rs.scope_spans {
                    match last.scope_spans.last_mut() {
                        Some(l) if l.scope == ss.scope && l.schema_url == ss.schema_url => l.spans.extend(ss.spans),
                        _ => last.scope_spans.push(ss),
                    }
                }
            }
            _ => merged.push(rs),
        }
    }
    *resources = merged;
}

fn len_delimited(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_len(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// Encodes the spans at `indices` of `request` as a `TracesData` message.
fn encode_fragment(request: &ExportTraceServiceRequest, indices: &[(u32, u32, u32)], lens: &mut Vec<usize>) -> Vec<u8> {
    // Two passes over runs of one resource (and within, of one scope): lengths, then
    // bytes. `lens` keeps each span's and scope's length from the first pass.
    let mut out = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let r = indices[i].0;
        let end = indices[i..].iter().position(|x| x.0 != r).map_or(indices.len(), |n| i + n);
        let run = &indices[i..end];
        let Some(rs) = request.resource_spans.get(r as usize) else {
            i = end;
            continue;
        };
        lens.clear();
        let mut body = rs.resource.as_ref().map_or(0, |res| len_delimited(1, res.encoded_len()));
        if !rs.schema_url.is_empty() {
            body += len_delimited(3, rs.schema_url.len());
        }
        let mut j = 0;
        while j < run.len() {
            let s = run[j].1;
            let send = run[j..].iter().position(|x| x.1 != s).map_or(run.len(), |n| j + n);
            let ss = &rs.scope_spans[s as usize];
            let scope_at = lens.len();
            lens.push(0);
            let mut scope_len = ss.scope.as_ref().map_or(0, |sc| len_delimited(1, sc.encoded_len()));
            if !ss.schema_url.is_empty() {
                scope_len += len_delimited(3, ss.schema_url.len());
            }
            for &(_, _, p) in &run[j..send] {
                let len = ss.spans[p as usize].encoded_len();
                lens.push(len);
                scope_len += len_delimited(2, len);
            }
            lens[scope_at] = scope_len;
            body += len_delimited(2, scope_len);
            j = send;
        }
        out.reserve(len_delimited(1, body));
        put_len(1, body, &mut out);
        if let Some(res) = &rs.resource {
            put_len(1, res.encoded_len(), &mut out);
            res.encode_raw(&mut out);
        }
        let mut at = 0;
        let mut j = 0;
        while j < run.len() {
            let s = run[j].1;
            let send = run[j..].iter().position(|x| x.1 != s).map_or(run.len(), |n| j + n);
            let ss = &rs.scope_spans[s as usize];
            put_len(2, lens[at], &mut out);
            at += 1;
            if let Some(sc) = &ss.scope {
                put_len(1, sc.encoded_len(), &mut out);
                sc.encode_raw(&mut out);
            }
            for &(_, _, p) in &run[j..send] {
                put_len(2, lens[at], &mut out);
                at += 1;
                ss.spans[p as usize].encode_raw(&mut out);
            }
            if !ss.schema_url.is_empty() {
                prost::encoding::string::encode(3, &ss.schema_url, &mut out);
            }
            j = send;
        }
        if !rs.schema_url.is_empty() {
            prost::encoding::string::encode(3, &rs.schema_url, &mut out);
        }
        i = end;
    }
    out
}

pub struct TailSamplingProcessor {
    /// Drop policies first, as upstream evaluates them.
    policies: Vec<Policy>,
    counters: Vec<PolicyCounters>,
    has_drop: bool,
    leaves: Leaves,
    first_match: bool,
    span_ingest: bool,
    wait: Duration,
    wait_after_root: Option<Duration>,
    /// Decisions due within this of each other are made in one round.
    tick: Duration,
    num_traces: usize,
    block_on_overflow: bool,
    max_trace_bytes: u64,
    max_bytes: u64,
    drop_on_shutdown: bool,
    traces: HashMap<TraceId, Trace, Hasher>,
    order: VecDeque<Due>,
    roots: VecDeque<Due>,
    seq: u32,
    /// What `Due::at` and `Trace::arrived` count from.
    epoch: Instant,
    held: u64,
    sampled: DecisionCache,
    not_sampled: DecisionCache,
    metrics: TailSamplingMetrics,
    early: [Counter; 3],
    processor: ProcessorMetrics,
    decisions: Vec<(usize, Decision)>,
    lens: Vec<usize>,
    emit: Emit,
}

impl TailSamplingProcessor {
    /// Builds from a validated config; `Err` only for what validation cannot see.
    pub fn new(
        id: &ComponentId,
        config: &TailSamplingConfig,
        metrics: TailSamplingMetrics,
        processor: ProcessorMetrics,
    ) -> Result<TailSamplingProcessor, String> {
        let mut leaves = Leaves::default();
        let mut compiled = Vec::new();
        for policy in &config.policies {
            compiled.push((Policy::compile(policy, &mut leaves)?, metrics.policy(id, &policy.name)));
        }
        // A stable sort: drop policies first, the others in their order.
        compiled.sort_by_key(|(p, _)| !p.is_drop());
        let has_drop = compiled.iter().any(|(p, _)| p.is_drop());
        let (policies, counters) = compiled.into_iter().unzip();
        let wait = config.decision_wait.0;
        let num_traces = usize::try_from(config.num_traces).unwrap_or(usize::MAX);
        let expected = config.expected_new_traces_per_sec.saturating_mul(wait.as_secs().max(1));
        let capacity = usize::try_from(expected).unwrap_or(usize::MAX).min(num_traces);
        let cache = |size: usize| DecisionCache::new(if size == 0 { num_traces } else { size });
        let early = [EarlyReason::Memory, EarlyReason::NumTraces, EarlyReason::TooLarge].map(|r| metrics.early(r));
        Ok(TailSamplingProcessor {
            policies,
            counters,
            has_drop,
            leaves,
            first_match: config.sample_on_first_match,
            span_ingest: config.sampling_strategy == SamplingStrategy::SpanIngest,
            wait,
            wait_after_root: (!config.decision_wait_after_root_received.0.is_zero())
                .then_some(config.decision_wait_after_root_received.0),
            tick: (wait / 10).min(Duration::from_millis(100)),
            num_traces,
            block_on_overflow: config.block_on_overflow,
            max_trace_bytes: config.maximum_trace_size_bytes,
            max_bytes: config.max_memory_mib.saturating_mul(1 << 20),
            drop_on_shutdown: config.drop_pending_traces_on_shutdown,
            traces: HashMap::with_capacity_and_hasher(capacity, Hasher::default()),
            order: VecDeque::new(),
            roots: VecDeque::new(),
            seq: 0,
            epoch: Instant::now(),
            held: 0,
            sampled: cache(config.decision_cache.sampled_cache_size),
            not_sampled: cache(config.decision_cache.non_sampled_cache_size),
            metrics,
            early,
            processor,
            decisions: Vec::new(),
            lens: Vec::new(),
            emit: Emit::default(),
        })
    }

    /// Groups a batch's spans by trace, running every leaf test on each span once.
    /// Returns the groups and how many spans had no valid trace id.
    fn group(&mut self, request: &ExportTraceServiceRequest) -> (Vec<Group>, u64) {
        let empty_resource = Resource::default();
        let empty_scope = InstrumentationScope::default();
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<TraceId, usize, Hasher> = HashMap::default();
        let mut invalid = 0;
        for (r, rs) in request.resource_spans.iter().enumerate() {
            let resource = rs.resource.as_ref().unwrap_or(&empty_resource);
            let resource_bits = self.leaves.resource_bits(resource);
            for (s, ss) in rs.scope_spans.iter().enumerate() {
                let scope = ss.scope.as_ref().unwrap_or(&empty_scope);
                for (p, span) in ss.spans.iter().enumerate() {
                    let Ok(id) = TraceId::try_from(span.trace_id.as_slice()) else {
                        invalid += 1;
                        continue;
                    };
                    if id == [0; 16] {
                        invalid += 1;
                        continue;
                    }
                    let g = *index.entry(id).or_insert_with(|| {
                        groups.push(Group {
                            id,
                            spans: Vec::new(),
                            matched: 0,
                            errors: 0,
                            min_start: u64::MAX,
                            max_end: 0,
                            root: false,
                        });
                        groups.len() - 1
                    });
                    let (hits, failed) = self.leaves.span_bits(resource, scope, span);
                    let group = &mut groups[g];
                    group.spans.push((r as u32, s as u32, p as u32));
                    group.matched |= hits | resource_bits;
                    group.errors |= failed;
                    group.min_start = group.min_start.min(span.start_time_unix_nano);
                    group.max_end = group.max_end.max(span.end_time_unix_nano);
                    group.root |= span.parent_span_id.is_empty();
                }
            }
        }
        (groups, invalid)
    }

    fn ingest(&mut self, group: Group, fragment: Fragment, now: Instant) {
        let bytes = fragment.data.len() as u64;
        let id = group.id;
        let at = self.ms(now);
        let fragment = if self.traces.contains_key(&id) {
            Some(fragment)
        } else {
            self.metrics.new_traces.inc();
            while self.traces.len() >= self.num_traces && self.decide_oldest(now, 1) {}
            self.seq = self.seq.wrapping_add(1);
            let trace = Trace {
                seq: self.seq,
                root_seen: false,
                arrived: at,
                summary: Summary::default(),
                first: fragment,
                more: None,
            };
            self.traces.insert(id, trace);
            self.order.push_back(Due { at: at + self.wait.as_millis() as u64, id, seq: self.seq });
            self.held += TRACE_OVERHEAD;
            None
        };
        let Some(trace) = self.traces.get_mut(&id) else {
            return;
        };
        if let Some(fragment) = fragment {
            trace.more.get_or_insert_default().push(fragment);
        }
        let s = &mut trace.summary;
        s.matched |= group.matched;
        s.errors |= group.errors;
        s.min_start = s.min_start.min(group.min_start);
        s.max_end = s.max_end.max(group.max_end);
        s.spans += group.spans.len() as u64;
        s.bytes += bytes;
        self.held += fragment_cost(bytes as usize);
        if group.root
            && !trace.root_seen
            && let Some(after) = self.wait_after_root
        {
            trace.root_seen = true;
            self.roots.push_back(Due { at: at + after.as_millis() as u64, id, seq: trace.seq });
        }
        if self.max_trace_bytes > 0 && trace.summary.bytes > self.max_trace_bytes {
            self.metrics.too_large.inc();
            self.early[2].inc();
            self.finish(&id, now, false);
        } else if self.span_ingest {
            let (policies, first_match) = (&mut self.policies, self.first_match);
            let sampled = decide(policies, first_match, &id, &trace.summary, now, &mut self.decisions);
            let dropped = self.decisions.iter().any(|(_, d)| *d == Decision::Dropped);
            if dropped || (sampled && !self.has_drop) {
                self.finish(&id, now, false);
            }
        }
    }

    /// Decides the oldest undecided trace before its time; false if there is none.
    fn decide_oldest(&mut self, now: Instant, reason: usize) -> bool {
        while let Some(due) = self.order.pop_front() {
            if self.traces.get(&due.id).is_some_and(|t| t.seq == due.seq) {
                self.early[reason].inc();
                self.finish(&due.id, now, false);
                return true;
            }
        }
        false
    }

    /// Decides a held trace (or, with `drop`, lets it go undecided) and forgets it.
    fn finish(&mut self, id: &TraceId, now: Instant, drop: bool) {
        let Some(trace) = self.traces.remove(id) else {
            return;
        };
        let fragment_bytes: u64 = trace.fragments().map(|f| fragment_cost(f.data.len())).sum();
        self.held = self.held.saturating_sub(TRACE_OVERHEAD + fragment_bytes);
        self.metrics.removal_age.observe(self.ms(now).saturating_sub(trace.arrived) as f64 / 1000.0);
        if drop {
            self.metrics.dropped_too_early.inc();
            return;
        }
        let sampled = decide(&mut self.policies, self.first_match, id, &trace.summary, now, &mut self.decisions);
        for &(i, decision) in &self.decisions {
            let slot = match decision {
                Decision::Sampled | Decision::InvertSampled => 0,
                Decision::NotSampled | Decision::InvertNotSampled => 1,
                Decision::Dropped => 2,
                Decision::Error => {
                    self.metrics.evaluation_errors.inc();
                    continue;
                }
            };
            if let Some(counters) = self.counters.get(i) {
                counters.0[slot].inc();
            }
        }
        if sampled {
            self.metrics.global[0].inc();
            self.sampled.insert(*id, now);
            self.processor.outgoing[Signal::Traces.index()].inc_by(trace.summary.spans);
            for fragment in trace.into_fragments() {
                self.emit.push(fragment);
            }
        } else {
            // Dropping the fragments lets their tokens go as done.
            self.metrics.global[1].inc();
            self.not_sampled.insert(*id, now);
        }
    }

    fn publish(&mut self, out: &mut Vec<Batch>) {
        self.emit.cut();
        out.append(&mut self.emit.ready);
        self.metrics.on_memory.set(self.traces.len() as i64);
        self.metrics.held_bytes.set(i64::try_from(self.held).unwrap_or(i64::MAX));
        if self.leaves.errors > 0 {
            self.processor.ottl_errors.inc_by(self.leaves.errors);
            self.leaves.errors = 0;
        }
    }

    /// Bytes held, as counted against `max_memory_mib`.
    pub fn held_bytes(&self) -> u64 {
        self.held
    }

    /// Whether `due` is a live entry whose time has come.
    fn due(&self, due: Option<&Due>, now: Instant) -> bool {
        let now = self.ms(now);
        due.is_some_and(|d| d.at <= now)
    }

    /// Milliseconds from the epoch to `at`.
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

impl Processor for TailSamplingProcessor {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let Payload::Traces(request) = &*batch.payload else {
            out.push(batch);
            return;
        };
        let now = Instant::now();
        self.processor.incoming[Signal::Traces.index()].inc_by(batch.payload.item_count() as u64);
        let (groups, invalid) = self.group(request);
        if self.block_on_overflow {
            let new = groups
                .iter()
                .filter(|g| {
                    !self.traces.contains_key(&g.id)
                        && self.sampled.get(&g.id).is_none()
                        && self.not_sampled.get(&g.id).is_none()
                })
                .count();
            // A batch with more new traces than there is room for at all is taken
            // (deciding early); otherwise it waits for room, as upstream blocks.
            if new > 0 && self.traces.len() + new > self.num_traces && new <= self.num_traces {
                self.metrics.refused.inc();
                batch.fail_with("tail_sampling holds num_traces traces (block_on_overflow); retry later");
                self.publish(out);
                return;
            }
        }
        if invalid > 0 {
            self.metrics.invalid_trace_id.inc_by(invalid);
        }
        // The spans are held over time: a waiting client has its answer now, as from
        // upstream's tail sampler; delivery tokens stay with the spans.
        batch.release_replies();
        let acks: Arc<[Ack]> = std::mem::take(&mut batch.acks).into();
        let Payload::Traces(request) = &*batch.payload else {
            return;
        };
        for group in groups {
            let spans = group.spans.len() as u64;
            // Late spans of a trace not sampled are let go without being encoded.
            if let Some(at) = self.not_sampled.get(&group.id) {
                self.metrics.early_releases[1].inc_by(spans);
                self.metrics.late_span_age.observe(now.saturating_duration_since(at).as_secs_f64());
                continue;
            }
            let data = encode_fragment(request, &group.spans, &mut self.lens).into_boxed_slice();
            let fragment = Fragment { data, acks: acks.clone() };
            if let Some(at) = self.sampled.get(&group.id) {
                self.metrics.early_releases[0].inc_by(spans);
                self.metrics.late_span_age.observe(now.saturating_duration_since(at).as_secs_f64());
                self.processor.outgoing[Signal::Traces.index()].inc_by(spans);
                self.emit.push(fragment);
            } else {
                self.ingest(group, fragment, now);
            }
        }
        while self.held > self.max_bytes && self.decide_oldest(now, 0) {}
        self.publish(out);
    }

    fn deadline(&self) -> Option<Instant> {
        let first = [self.order.front(), self.roots.front()].into_iter().flatten().map(|d| d.at).min()?;
        Some(self.epoch + Duration::from_millis(first) + self.tick)
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Vec<Batch>) {
        let started = std::time::Instant::now();
        loop {
            let queue = if self.due(self.order.front(), now) {
                &mut self.order
            } else if self.due(self.roots.front(), now) {
                &mut self.roots
            } else {
                break;
            };
            let Some(due) = queue.pop_front() else {
                break;
            };
            if self.traces.get(&due.id).is_some_and(|t| t.seq == due.seq) {
                self.finish(&due.id, now, false);
            }
        }
        self.metrics.timer_latency.observe(started.elapsed().as_secs_f64() * 1000.0);
        self.publish(out);
    }

    fn flush(&mut self, out: &mut Vec<Batch>) {
        let now = Instant::now();
        while let Some(due) = self.order.pop_front() {
            if self.traces.get(&due.id).is_some_and(|t| t.seq == due.seq) {
                self.finish(&due.id, now, self.drop_on_shutdown);
            }
        }
        self.roots.clear();
        self.publish(out);
    }
}
