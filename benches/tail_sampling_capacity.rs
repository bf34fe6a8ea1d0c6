//! How many traces tail_sampling holds per GiB: traces offered (never decided, the
//! wait is an hour) until `max_memory_mib` starts deciding early, with the resident
//! memory they take. Two shapes: 10 spans of 1 KiB, and 10 spans of 100 bytes.
//!   cargo bench --bench tail_sampling_capacity

#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "common/traces.rs"]
mod traces;

use ocelot::config::ComponentId;
use ocelot::pdata::{Batch, Payload};
use ocelot::processors::Processor;
use ocelot::processors::tail_sampling::{TailSamplingProcessor, parse};
use ocelot::telemetry::Telemetry;
use prost::Message;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn measure(span_bytes: usize, memory_mib: u64) {
    let telemetry = Telemetry::new();
    let id = ComponentId::new("tail_sampling");
    let yaml =
        format!("decision_wait: 1h\nnum_traces: 100000000\nmax_memory_mib: {memory_mib}\n{}", traces::FIVE_POLICIES);
    let config = parse(&ocelot::config::node::parse("bench.yaml", &yaml).unwrap()).unwrap();
    let mut processor =
        TailSamplingProcessor::new(&id, &config, telemetry.tail_sampling(&id), telemetry.processor(&id)).unwrap();
    let before = resident_bytes();
    let (mut offered, mut raw) = (0u64, 0u64);
    let started = std::time::Instant::now();
    loop {
        let request = traces::request(offered, 1000, 10, span_bytes);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        raw += spans.iter().map(|s| s.encoded_len() as u64).sum::<u64>();
        let mut out = Vec::new();
        processor.process(Batch::new(Payload::Traces(request)), &mut out);
        offered += 1000;
        // Stop at the first early decision: the store is full.
        if !out.is_empty() || processor.held_bytes() + (2 << 20) >= memory_mib << 20 {
            break;
        }
    }
    let resident = resident_bytes().saturating_sub(before);
    let held = processor.held_bytes();
    let per_trace_raw = raw as f64 / offered as f64;
    let per_trace = resident as f64 / offered as f64;
    println!(
        "10 spans of {span_bytes} B: {offered} traces in {:.0} MiB resident ({:.0} MiB counted, bound {memory_mib} MiB) in {:.1}s; \
         {:.0} traces per GiB; {per_trace:.0} B per trace for {per_trace_raw:.0} B raw = {:.3} × raw ({:.0} B over 1.25 × raw)",
        resident as f64 / 1048576.0,
        held as f64 / 1048576.0,
        started.elapsed().as_secs_f64(),
        offered as f64 * (1u64 << 30) as f64 / resident as f64,
        per_trace / per_trace_raw,
        per_trace - 1.25 * per_trace_raw,
    );
}

/// Each shape in a process of its own, so one's freed memory is not the next's.
fn main() {
    if let Some(bytes) = std::env::args().find_map(|a| a.strip_prefix("--span-bytes=").map(str::to_string)) {
        measure(bytes.parse().unwrap(), 2560);
        return;
    }
    for bytes in [1024, 100] {
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(exe).arg(format!("--span-bytes={bytes}")).status().unwrap();
        assert!(status.success());
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
