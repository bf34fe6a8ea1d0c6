#!/usr/bin/env bash
# File tail throughput and memory of the release binary:
#   a log file of N MiB ──► ocelot [filelog ─► otlp exporter] ──OTLP/gRPC──► ocelot-loadgen sink
#   or, with `file`:       ──► ocelot [filelog ─► file exporter] ──► OTLP JSON lines on disk
# Reports MiB of log per ocelot CPU-second, lines/s and ocelot's peak RSS.
#
#   benches/filelog.sh [MiB] [compression] [otlp|file]
#   benches/filelog.sh 150 none
#   benches/filelog.sh 150 none file
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-150}
compression=${2:-none}
exporter=${3:-otlp}
cargo build --release --quiet --bins
. benches/lib.sh
sink_port=$(pick_port); metrics_port=$(pick_port)

# Lines of 60 to 260 bytes, like application logs.
mkdir -p "$dir/logs"
python3 - "$dir/logs/app.log" "$mib" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
target = mib << 20
with open(path, "w") as f:
    written, i = 0, 0
    while written < target:
        line = f"2026-11-22T05:00:00.{i % 1000000:06d}Z INFO request {i} " + "x" * (60 + (i * 7919) % 200) + "\n"
        f.write(line); written += len(line); i += 1
print(f"{i} lines", file=sys.stderr)
PY
lines=$(wc -l < "$dir/logs/app.log")

if [ "$exporter" = file ]; then
  exporter_config="  file:
    path: $dir/out.jsonl"
else
  exporter_config="  otlp:
    endpoint: 127.0.0.1:$sink_port
    compression: $compression
    tls:
      insecure: true"
  "$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$sink_port" --report-every 3600s > "$dir/sink.log" &
fi
cat > "$dir/ocelot.yaml" <<YAML
receivers:
  filelog:
    include: ["$dir/logs/*.log"]
    start_at: beginning
exporters:
$exporter_config
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [$exporter]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML

start=$(date +%s.%N)
"$ocelot" --config "$dir/ocelot.yaml" --storage-dir "$dir/state" 2> "$dir/ocelot.log" &
pid=$!
until [ "$(metric otelcol_exporter_sent_log_records_total)" = "$lines" ] 2>/dev/null; do sleep 0.2; done
end=$(date +%s.%N)
ticks=$(cpu_ticks "$pid")
hwm=$(hwm_kib "$pid")
cpu=$(echo "$ticks / 100" | bc -l)
wall=$(echo "$end - $start" | bc -l)
echo "$mib MiB, $lines lines in $(printf %.1f "$wall") s wall; ocelot CPU $(printf %.2f "$cpu") s"
echo "MiB per ocelot CPU-second: $(printf %.0f "$(echo "$mib / $cpu" | bc -l)"); lines/s per core: $(printf %.0f "$(echo "$lines / $cpu" | bc -l)")"
echo "peak RSS: $(( hwm / 1024 )) MiB"
