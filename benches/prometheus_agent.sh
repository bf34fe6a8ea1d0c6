#!/usr/bin/env bash
# A node agent's scraping load, release binary: 50 targets every 15 s, each a page of
# about 1,000 series (counters, gauges, a histogram, like an application's or a
# node-exporter's), through batch to OTLP/gRPC (ocelot-loadgen sink). Prints ocelot's
# CPU as a share of a core and its peak RSS over the run, and what was scraped.
#
#   benches/prometheus_agent.sh [seconds] [targets] [series per page]
#   benches/prometheus_agent.sh 120 50 1000
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
targets=${2:-50}
series=${3:-1000}
cargo build --release --quiet --bins
. benches/lib.sh
sink_port=$(pick_port); metrics_port=$(pick_port)

# The targets: one Python process, one port each, the same page shape with its own
# values (counters grow between scrapes).
cat > "$dir/targets.py" <<'PY'
import http.server, socketserver, sys, threading
count, series, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
hits = {}
def page(port):
    n = hits[port] = hits.get(port, 0) + 1
    lines = []
    fams = max(1, series // 20)
    for f in range(fams):
        lines.append(f"# HELP app_requests_{f}_total Requests of kind {f}.\n# TYPE app_requests_{f}_total counter\n")
        for i in range(8):
            lines.append(f'app_requests_{f}_total{{method="GET",code="{200 + i % 4}",route="/api/v1/r{i}"}} {n * (i + 1) * 3}\n')
        lines.append(f"# TYPE app_inflight_{f} gauge\n")
        for i in range(4):
            lines.append(f'app_inflight_{f}{{pool="p{i}"}} {(n + i) % 17}\n')
    lines.append("# TYPE app_latency_seconds histogram\n")
    for route in range(max(1, series // 200)):
        acc = 0
        for le in ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]:
            acc += n
            lines.append(f'app_latency_seconds_bucket{{route="/r{route}",le="{le}"}} {acc}\n')
        lines.append(f'app_latency_seconds_sum{{route="/r{route}"}} {n * 1.5}\napp_latency_seconds_count{{route="/r{route}"}} {acc}\n')
    return "".join(lines).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = page(self.server.server_address[1])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ports = []
for _ in range(count):
    s = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
    ports.append(s.server_address[1])
    threading.Thread(target=s.serve_forever, daemon=True).start()
open(out, "w").write("\n".join(str(p) for p in ports))
threading.Event().wait()
PY
python3 "$dir/targets.py" "$targets" "$series" "$dir/ports" &
until [ -s "$dir/ports" ]; do sleep 0.2; done
list=$(awk '{printf "%s\"127.0.0.1:%s\"", (NR > 1 ? ", " : ""), $1}' "$dir/ports")
samples_per_page=$(curl -s "http://127.0.0.1:$(head -1 "$dir/ports")/metrics" | grep -vc '^#')

cat > "$dir/ocelot.yaml" <<YAML
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: apps
          scrape_interval: 15s
          static_configs:
            - targets: [$list]
processors:
  batch:
exporters:
  otlp:
    endpoint: 127.0.0.1:$sink_port
    tls: { insecure: true }
    compression: none
service:
  pipelines:
    metrics: { receivers: [prometheus], processors: [batch], exporters: [otlp] }
  telemetry:
    metrics:
      readers:
        - pull: { exporter: { prometheus: { host: 127.0.0.1, port: $metrics_port } } }
YAML

"$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$sink_port" --report-every 3600s > "$dir/sink.log" &
"$ocelot" --config "$dir/ocelot.yaml" --storage-dir "$dir/state" 2> "$dir/ocelot.log" &
pid=$!
# The first 15 s: every target scraped once (caches and maps warm).
sleep 16
before=$(cpu_ticks "$pid")
sleep "$seconds"
after=$(cpu_ticks "$pid")
cpu=$(echo "($after - $before) / 100" | bc -l)
echo "targets: $targets, samples per page: $samples_per_page, interval 15s ($(( targets * samples_per_page / 15 )) samples/s)"
echo "ocelot CPU: $(printf %.2f "$cpu") s over ${seconds}s = $(printf %.2f "$(echo "100 * $cpu / $seconds" | bc -l)") % of a core"
echo "RSS now: $(( $(rss_kib "$pid") / 1024 )) MiB, peak: $(( $(hwm_kib "$pid") / 1024 )) MiB"
echo "scrapes: $(metric ocelot_receiver_prometheus_scrapes_total), failures: $(metric ocelot_receiver_prometheus_scrape_failures_total), exported points: $(metric otelcol_exporter_sent_metric_points_total)"
