"""Sends traces, metrics and logs with the real OpenTelemetry Python SDK and its OTLP
exporters, over gRPC and over HTTP, to one ocelot. Used by tests/e2e_python.rs.

Everything sent is derived from --run and --count, so the test knows what to expect:
  spans    span-<proto>-<i>          attributes run, proto, index (int), ok (bool), ratio (double), tags (array)
  logs     log-<proto>-<i>           attributes run, proto, index
  metrics  ocelot.test.requests      counter, 5 per proto
           ocelot.test.latency       histogram, values 1, 2, 3 ms per proto
Exits non-zero if any flush fails.
"""

import argparse
import logging
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor


def exporters(proto, endpoint):
    if proto == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPMetricExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    base = f"http://{endpoint}"
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
        OTLPLogExporter(endpoint=f"{base}/v1/logs"),
    )


def send(proto, endpoint, run, count):
    resource = Resource.create({"service.name": f"e2e-{proto}", "run": run})
    span_exporter, metric_exporter, log_exporter = exporters(proto, endpoint)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("ocelot-e2e", "1.0")
    for i in range(count):
        with tracer.start_as_current_span(f"span-{proto}-{i}") as span:
            span.set_attribute("run", run)
            span.set_attribute("proto", proto)
            span.set_attribute("index", i)
            span.set_attribute("ok", True)
            span.set_attribute("ratio", 0.5)
            span.set_attribute("tags", ["a", "b"])
            span.add_event("checkpoint", {"step": i})

    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("ocelot-e2e", "1.0")
    counter = meter.create_counter("ocelot.test.requests", unit="1")
    histogram = meter.create_histogram("ocelot.test.latency", unit="ms")
    for _ in range(5):
        counter.add(1, {"run": run, "proto": proto})
    for value in (1, 2, 3):
        histogram.record(value, {"run": run, "proto": proto})

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    logger = logging.getLogger(f"ocelot-e2e-{proto}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    for i in range(count):
        logger.info(f"log-{proto}-{i}", extra={"run": run, "proto": proto, "index": i})

    ok = tracer_provider.force_flush(10_000)
    ok = meter_provider.force_flush(10_000) and ok
    ok = logger_provider.force_flush(10_000) and ok
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()
    logger.removeHandler(handler)
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True, help="host:port of the OTLP/gRPC receiver")
    parser.add_argument("--http", required=True, help="host:port of the OTLP/HTTP receiver")
    parser.add_argument("--run", required=True)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    ok = send("grpc", args.grpc, args.run, args.count)
    ok = send("http", args.http, args.run, args.count) and ok
    if not ok:
        print("a flush failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
