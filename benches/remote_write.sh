#!/usr/bin/env bash
# OTLP metrics into a real Prometheus through remote write, release binary:
#   ocelot-loadgen send --(OTLP/gRPC)--> ocelot [otlp -> batch -> prometheusremotewrite] --> prometheus
# Prometheus is Debian's (scripts/test installs it), on 127.0.0.1 with the remote-write
# receiver. Prints samples/s, ocelot's CPU and samples per ocelot CPU-second, peak RSS,
# and what Prometheus stored.
#
#   benches/remote_write.sh [seconds] [extra loadgen args...]
#   benches/remote_write.sh 20 --batch 500 --concurrency 1 --fresh-timestamps --rate 100000
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift $(( $# < 1 ? $# : 1 ))
cargo build --release --quiet --bins
. benches/lib.sh
in_port=$(pick_port); prom_port=$(pick_port); metrics_port=$(pick_port)

printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: [127.0.0.1:%s]\n' "$prom_port" > "$dir/prometheus.yml"
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --web.enable-remote-write-receiver 2> "$dir/prometheus.log" &
until curl -sf "http://127.0.0.1:$prom_port/-/ready" > /dev/null; do sleep 0.2; done

cat > "$dir/ocelot.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$in_port
processors:
  batch:
exporters:
  prometheusremotewrite:
    endpoint: http://127.0.0.1:$prom_port/api/v1/write
service:
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [prometheusremotewrite]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML

"$ocelot" --config "$dir/ocelot.yaml" --storage-dir "$dir/state" 2> "$dir/ocelot.log" &
pid=$!
sleep 1
before=$(cpu_ticks "$pid")
"$bin/ocelot-loadgen" send --endpoint "127.0.0.1:$in_port" --signal metrics --duration "${seconds}s" "$@" | tee "$dir/load.log"
sleep 2
after=$(cpu_ticks "$pid")
items=$(grep -o 'sent [0-9]*' "$dir/load.log" | awk '{print $2}')
cpu=$(echo "($after - $before) / 100" | bc -l)
metric() { curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v n="$1" '$1 ~ "^"n {s+=$2} END {print s+0}'; }
echo "ocelot CPU: $(printf %.2f "$cpu") s over ${seconds}s; samples per ocelot CPU-second: $(printf %.0f "$(echo "$items / $cpu" | bc -l)")"
echo "peak RSS: $(( $(hwm_kib "$pid") / 1024 )) MiB"
echo "exported: $(metric otelcol_exporter_sent_metric_points_total), failed: $(metric otelcol_exporter_send_failed_metric_points_total), dropped: $(metric ocelot_exporter_dropped_items_total)"
echo "prometheus stored: $(curl -s "http://127.0.0.1:$prom_port/api/v1/query?query=prometheus_tsdb_head_samples_appended_total" | python3 -c 'import json,sys; print(sum(float(r["value"][1]) for r in json.load(sys.stdin)["data"]["result"]))') samples appended (its own scraped metrics included, a few hundred a second)"
grep -m2 "Export failed" "$dir/ocelot.log" | cut -c1-400 || true
