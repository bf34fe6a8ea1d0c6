#!/usr/bin/env bash
# Reload latency of the release binary: a 20-component config (4 receivers, 8
# processors, 6 exporters, 2 connectors), reloaded N times by POST /-/reload, each time
# changing one exporter (so that exporter restarts and the rest is kept). Prints the
# request-to-applied time of each reload's answer: median and slowest.
#
#   benches/reload.sh [reloads]
set -euo pipefail
cd "$(dirname "$0")/.."
reloads=${1:-20}
cargo build --release --quiet --bins
. benches/lib.sh
metrics_port=$(pick_port)
write_config() {
    local path=$1
    cat > "$dir/ocelot.yaml.tmp" <<YAML
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:$(pick_port) }
      http: { endpoint: 127.0.0.1:$(pick_port) }
  otlp/second:
    protocols:
      http: { endpoint: 127.0.0.1:$(pick_port) }
  filelog:
    include: ["$dir/logs/*.log"]
  hostmetrics:
    collection_interval: 10s
    scrapers: { cpu: {}, memory: {} }
processors:
  batch:
  batch/small: { send_batch_size: 100 }
  memory_limiter: { limit_mib: 1024, check_interval: 1s }
  attributes: { actions: [{ key: env, value: bench, action: upsert }] }
  resource: { attributes: [{ key: team, value: core, action: upsert }] }
  filter: { error_mode: ignore, logs: { log_record: ['severity_number < 5'] } }
  transform: { log_statements: ['set(attributes["seen"], true)'] }
  importance: { rules: [{ score: 0.9, match: { resource: { service.name: "api*" } } }] }
exporters:
  file: { path: "$dir/$path" }
  debug:
  otlp: { endpoint: 127.0.0.1:9, tls: { insecure: true } }
  otlp_http: { endpoint: http://127.0.0.1:9 }
  loki: { endpoint: http://127.0.0.1:9/loki/api/v1/push }
  prometheusremotewrite: { endpoint: http://127.0.0.1:9/api/v1/write }
connectors:
  forward:
  routing:
    default_pipelines: [logs/out]
    table:
      - { statement: 'route() where resource.attributes["team"] == "core"', pipelines: [logs/out] }
service:
  pipelines:
    logs:
      receivers: [otlp, filelog]
      processors: [memory_limiter, attributes, resource, filter, transform, importance, batch]
      exporters: [routing, forward]
    logs/out:
      receivers: [routing]
      processors: [batch/small]
      exporters: [file, loki]
    logs/copy:
      receivers: [forward]
      exporters: [otlp_http, debug]
    traces:
      receivers: [otlp, otlp/second]
      processors: [batch]
      exporters: [otlp]
    metrics:
      receivers: [otlp, hostmetrics]
      processors: [batch]
      exporters: [prometheusremotewrite]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML
    mv "$dir/ocelot.yaml.tmp" "$dir/ocelot.yaml"
}
mkdir -p "$dir/logs"
write_config out-0.jsonl
"$ocelot" --config "$dir/ocelot.yaml" --storage-dir "$dir/state" 2> "$dir/ocelot.log" &
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$metrics_port/metrics" >/dev/null && break; sleep 0.1; done
times=()
for i in $(seq "$reloads"); do
    # Same ports each time: only the file exporter's path changes.
    sed -i "s|$dir/out-$((i - 1)).jsonl|$dir/out-$i.jsonl|" "$dir/ocelot.yaml"
    t=$(curl -s -o "$dir/answer.json" -w '%{time_total}' -X POST "http://127.0.0.1:$metrics_port/-/reload")
    grep -q '"result":"success"' "$dir/answer.json" || { cat "$dir/answer.json"; exit 1; }
    times+=("$t")
done
grep -o '"restarted":\[[^]]*\]' "$dir/answer.json"
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "reloads: %d; median %.1f ms, slowest %.1f ms\n", NR, a[int((NR + 1) / 2)] * 1000, a[NR] * 1000 }'
