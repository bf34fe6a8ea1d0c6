#!/usr/bin/env bash
# Progressive degradation under overload, with the release binary:
#   ocelot-loadgen send --tiers --(OTLP/gRPC, R logs/s)--> ocelot [otlp -> importance
#     -> memory_limiter -> batch -> otlp] --(OTLP/gRPC)--> ocelot-loadgen sink
# The sink drains R/10 records/s for the first D seconds (a backend that fell
# behind), then answers at full speed. Records carry a realistic score mix: 10 %
# critical (0.95), 20 % important (0.7), 30 % standard (0.4), 40 % low (0.1).
#
# Reports ocelot's peak RSS against limit_mib, a timeline (RSS, the memory_limiter
# level, records shed, delivered), records shed per level and tier, and the
# accounting once the sink has caught up: accepted = delivered + shed, and every
# critical record accepted was delivered.
#
#   benches/degradation.sh [seconds] [rate] [limit_mib]
#   benches/degradation.sh 60 20000 128
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
rate=${2:-20000}
limit=${3:-128}
drain=$(( rate / 10 ))
cargo build --release --quiet --bins
. benches/lib.sh
in_port=$(pick_port); sink_port=$(pick_port); metrics_port=$(pick_port)

cat > "$dir/ocelot.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$in_port
processors:
  importance:
    default_score: 0.1
    rules:
      - { score: 0.95, match: { attributes: { tier: critical } } }
      - { score: 0.7, match: { attributes: { tier: important } } }
      - { score: 0.4, match: { attributes: { tier: standard } } }
  memory_limiter:
    check_interval: 100ms
    limit_mib: $limit
    drop_levels:
      - { threshold_percent: 45, drop_below: 0.3 }
      - { threshold_percent: 55, sample: { below: 0.6, rate: 0.5 } }
      - { threshold_percent: 65, keep_only_above: 0.9 }
  batch:
    send_batch_size: 1000
    send_batch_max_size: 1000
exporters:
  otlp:
    endpoint: 127.0.0.1:$sink_port
    compression: none
    timeout: 60s
    tls:
      insecure: true
    sending_queue:
      sizer: bytes
      queue_size: 4000000000
      num_consumers: 2
    retry_on_failure:
      max_elapsed_time: 0
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [importance, memory_limiter, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML

"$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$sink_port" --report-every 1s --count-attribute tier \
    --drain-rate "$drain" --slow-for "${seconds}s" > "$dir/sink.log" &
"$ocelot" --config "$dir/ocelot.yaml" 2> "$dir/ocelot.log" &
pid=$!
sleep 2
echo "limit_mib $limit; load $rate logs/s for ${seconds}s; the sink drains $drain/s for ${seconds}s, then at full speed"
echo "idle RSS: $(( $(rss_kib "$pid") / 1024 )) MiB"

shed() { echo $(( $(metric ocelot_memory_limiter_dropped_total) + $(metric ocelot_memory_limiter_sampled_total) )); }
delivered() { tail -n 1 "$dir/sink.log" | grep -o ' [0-9]* items' | awk '{print $1}'; }

"$bin/ocelot-loadgen" send --endpoint "127.0.0.1:$in_port" --signal logs --tiers --rate "$rate" \
    --duration "${seconds}s" --batch 100 --concurrency 2 > "$dir/load.log" &
load=$!
echo "time  RSS MiB  level  shed  delivered"
t=0
while kill -0 "$load" 2>/dev/null; do
    sleep 5; t=$(( t + 5 ))
    printf '%4ss  %7s  %5s  %8s  %9s\n' "$t" "$(( $(rss_kib "$pid") / 1024 ))" "$(metric ocelot_memory_limiter_level)" \
        "$(shed)" "$(delivered || echo 0)"
done
cat "$dir/load.log"
accepted=$(metric otelcol_receiver_accepted_log_records_total)
# The sink now answers at full speed: wait until the exporter has sent or failed all.
for _ in $(seq 600); do
    done_items=$(( $(metric otelcol_exporter_sent_log_records_total) + $(metric otelcol_exporter_send_failed_log_records_total) + $(shed) ))
    [ "$done_items" -ge "$accepted" ] && [ "$(metric otelcol_exporter_queue_size)" = 0 ] && break
    sleep 1
done
for wait in 0 5 10 15 20 25 30; do
    sleep $(( wait == 0 ? 0 : 5 ))
    echo "drained +${wait}s: $(( $(rss_kib "$pid") / 1024 )) MiB RSS, level $(metric ocelot_memory_limiter_level)"
done
grep -E 'Rss|Anonymous|LazyFree' "/proc/$pid/smaps_rollup" || true
echo
echo "peak RSS: $(( $(hwm_kib "$pid") / 1024 )) MiB ($(hwm_kib "$pid") KiB) against limit_mib $limit"
echo "order of levels reached:"
{ grep 'Memory rises' "$dir/ocelot.log" || true; } | head -20
echo "records shed, by level and tier (dropped / sampled):"
for level in 1 2 3; do
    line="  level $level:"
    for tier in low standard important critical; do
        d=$(metric ocelot_memory_limiter_dropped_total "level=\"$level\"" "tier=\"$tier\"")
        s=$(metric ocelot_memory_limiter_sampled_total "level=\"$level\"" "tier=\"$tier\"")
        line="$line $tier $d/$s"
    done
    echo "$line"
done
echo "seconds per level: $(metrics | awk '/^ocelot_memory_limiter_level_seconds_total/ { match($1, /level="[0-9]+"/); printf "%s %.1f  ", substr($1, RSTART, RLENGTH), $NF }')"
echo "refused for memory: $(metric otelcol_processor_memory_limiter_refused_log_records_total) records"
sent=$(metric otelcol_exporter_sent_log_records_total)
failed=$(metric otelcol_exporter_send_failed_log_records_total)
total_shed=$(shed)
echo "accounting: accepted $accepted = sent $sent + shed $total_shed + failed $failed ($(( accepted - sent - total_shed - failed )) unaccounted)"
echo "load generator, $(grep 'accepted by tier' "$dir/load.log")"
echo "sink, $(tail -n 1 "$dir/sink.log")"
