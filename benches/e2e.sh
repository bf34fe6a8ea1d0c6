#!/usr/bin/env bash
# End-to-end OTLP throughput and memory of the release binary:
#   ocelot-loadgen send --(OTLP/gRPC)--> ocelot [otlp -> batch -> otlp] --(OTLP/gRPC)--> ocelot-loadgen sink
# Prints ocelot's idle RSS, then for the load: items/s, ocelot's CPU seconds, items per
# ocelot CPU-second (items/s per core) and peak RSS. All on 127.0.0.1.
#
#   benches/e2e.sh [signal] [seconds] [compression] [extra loadgen args...]
#   benches/e2e.sh traces 20 gzip
#   benches/e2e.sh logs 20 none --rate 10000 --batch 100 --concurrency 1
#
# OCELOT_PROCESSORS lists the pipeline's processors (default `batch`); `importance`
# and `memory_limiter` are defined too, to measure the governor's cost:
#   OCELOT_PROCESSORS=importance,memory_limiter,batch benches/e2e.sh logs 20 none
#
# OCELOT_QUEUE=disk puts the exporter's sending queue on disk (file_storage in the
# run's temp dir, fsync_interval 1s); OCELOT_QUEUE=fsync fsyncs every batch:
#   OCELOT_QUEUE=disk benches/e2e.sh logs 20 none --concurrency 4 --batch 500
#
# OCELOT_EXPORTER=loadbalancing sends through the loadbalancing exporter to two
# sinks instead (traceID key for traces, each sink a backend with its own queue):
#   OCELOT_EXPORTER=loadbalancing benches/e2e.sh traces 20 none --concurrency 4 --batch 500
set -euo pipefail
cd "$(dirname "$0")/.."
signal=${1:-traces}
seconds=${2:-20}
compression=${3:-gzip}
shift $(( $# < 3 ? $# : 3 ))
cargo build --release --quiet --bins
. benches/lib.sh
in_port=$(pick_port); sink_port=$(pick_port); sink2_port=$(pick_port); metrics_port=$(pick_port)
exporter=${OCELOT_EXPORTER:-otlp}
case "$exporter" in
  otlp|loadbalancing) ;;
  *) echo "OCELOT_EXPORTER is otlp or loadbalancing" >&2; exit 2 ;;
esac

queue=""
storage_ext=""
case "${OCELOT_QUEUE:-memory}" in
  memory) ;;
  disk|fsync)
    fsync=false
    [ "$OCELOT_QUEUE" = fsync ] && fsync=true
    queue="    sending_queue: { storage: file_storage/queue }"
    storage_ext="extensions:
  file_storage/queue:
    directory: $dir
    fsync: $fsync"
    ;;
  *) echo "OCELOT_QUEUE is memory, disk or fsync" >&2; exit 2 ;;
esac

cat > "$dir/ocelot.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$in_port
processors:
  batch:
  importance:
    rules:
      - score: 0.9
        match: { resource: { service.name: "loadgen*" } }
  memory_limiter:
    limit_mib: 1024
    drop_levels:
      - { threshold_percent: 50, drop_below: 0.3 }
      - { threshold_percent: 60, sample: { below: 0.6, rate: 0.5 } }
      - { threshold_percent: 70, keep_only_above: 0.9 }
exporters:
  otlp:
    endpoint: 127.0.0.1:$sink_port
    compression: $compression
    tls:
      insecure: true
$queue
  loadbalancing:
    protocol:
      otlp:
        compression: $compression
        tls:
          insecure: true
    resolver:
      static:
        hostnames: ["127.0.0.1:$sink_port", "127.0.0.1:$sink2_port"]
$storage_ext
service:
  extensions: [$( [ -n "$storage_ext" ] && echo file_storage/queue )]
  pipelines:
    $signal:
      receivers: [otlp]
      processors: [${OCELOT_PROCESSORS:-batch}]
      exporters: [$exporter]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML

"$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$sink_port" --report-every 3600s > "$dir/sink.log" &
if [ "$exporter" = loadbalancing ]; then
  "$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$sink2_port" --report-every 3600s > "$dir/sink2.log" &
fi
"$ocelot" --config "$dir/ocelot.yaml" 2> "$dir/ocelot.log" &
pid=$!
sleep 2
echo "idle RSS: $(( $(rss_kib "$pid") / 1024 )) MiB ($(rss_kib "$pid") KiB)"

before=$(cpu_ticks "$pid")
"$bin/ocelot-loadgen" send --endpoint "127.0.0.1:$in_port" --signal "$signal" --duration "${seconds}s" "$@" | tee "$dir/load.log"
sleep 1
after=$(cpu_ticks "$pid")
items=$(grep -o 'sent [0-9]*' "$dir/load.log" | awk '{print $2}')
cpu=$(echo "($after - $before) / 100" | bc -l)
echo "ocelot CPU: $(printf %.2f "$cpu") s over ${seconds}s ($(printf %.1f "$(echo "100 * $cpu / $seconds" | bc -l)")% of one core)"
echo "items per ocelot CPU-second: $(printf %.0f "$(echo "$items / $cpu" | bc -l)")"
echo "peak RSS: $(( $(hwm_kib "$pid") / 1024 )) MiB; RSS now: $(( $(rss_kib "$pid") / 1024 )) MiB"
