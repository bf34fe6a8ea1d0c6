"""Sends traces with the real OpenTelemetry Python SDK over OTLP/gRPC, for the
tail_sampling test in tests/tail_sampling.rs.

--phase first: --count traces of three spans each (a root and two children), of three
kinds by index: i % 3 == 0 has a child with status ERROR, i % 3 == 1 lasts 800 ms
(timestamps set, no sleeping), the rest last 10 ms. Writes one JSON line per trace to
--ids: {"trace_id": hex, "span_id": hex of the root, "kind": error|slow|ordinary}.

--phase late: one more span per trace in --ids, a child of its root (a remote
parent), sent after the trace was decided.

Span names are <kind>-<i>-<root|child1|child2|late>. The resource is service.name
checkout, with cloud.region when --region is given. Exits non-zero if a flush fails.
"""

import argparse
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags


def provider(endpoint, region):
    attributes = {"service.name": "checkout"}
    if region:
        attributes["cloud.region"] = region
    p = TracerProvider(resource=Resource.create(attributes))
    p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    return p


def first(tracer, count, ids):
    now = time.time_ns()
    with open(ids, "w") as out:
        for i in range(count):
            kind = ["error", "slow", "ordinary"][i % 3]
            length = 800_000_000 if kind == "slow" else 10_000_000
            root = tracer.start_span(f"{kind}-{i}-root", start_time=now)
            ctx = trace.set_span_in_context(root)
            for c in (1, 2):
                child = tracer.start_span(f"{kind}-{i}-child{c}", context=ctx, start_time=now + c * 1000)
                if kind == "error" and c == 2:
                    child.set_status(Status(StatusCode.ERROR, "payment declined"))
                child.end(end_time=now + c * 1000 + 1_000_000)
            root.end(end_time=now + length)
            sc = root.get_span_context()
            out.write(json.dumps({"trace_id": f"{sc.trace_id:032x}", "span_id": f"{sc.span_id:016x}", "kind": kind}) + "\n")


def late(tracer, ids):
    with open(ids) as f:
        traces = [json.loads(line) for line in f if line.strip()]
    for i, t in enumerate(traces):
        parent = SpanContext(
            trace_id=int(t["trace_id"], 16),
            span_id=int(t["span_id"], 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(parent))
        # The kind and index come from the first phase's names.
        span = tracer.start_span(f"{t['kind']}-{i}-late", context=ctx)
        span.end()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True, help="host:port of the OTLP/gRPC receiver")
    parser.add_argument("--phase", choices=["first", "late"], required=True)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--region", help="the resource's cloud.region")
    args = parser.parse_args()
    p = provider(f"http://{args.grpc}", args.region)
    tracer = p.get_tracer("ocelot.tail_sampling.test")
    if args.phase == "first":
        first(tracer, args.count, args.ids)
    else:
        late(tracer, args.ids)
    if not p.force_flush(timeout_millis=20_000):
        print("flush failed", file=sys.stderr)
        sys.exit(1)
    p.shutdown()


if __name__ == "__main__":
    main()
