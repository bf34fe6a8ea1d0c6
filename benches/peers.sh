#!/usr/bin/env bash
# ocelot against its peers on the same workloads, one after the other, in one run:
#
#   file   one file of key=value lines (1M lines, ~153 MiB) tailed from the start and
#          pushed to Loki: Fluent Bit (tail → loki) and ocelot (filelog → loki)
#   files  200 files in 20 directories, each appended 10 lines/s for 20 s, the same
#          two pipelines: the shape a DaemonSet sees
#   otlp   OTLP/gRPC traces pass-through (4 senders × 500 spans, 15 s): rotel and
#          ocelot (otlp → batch → otlp), no compression on either side
#
# Prints each agent's figures and ocelot's ratio to the peer: MiB of log per
# CPU-second and peak RSS (file), CPU over the run (files), spans per CPU-second
# (otlp). CPU is the whole process' utime + stime from /proc/<pid>/stat, peak RSS its
# VmHWM. The sink is `ocelot-loadgen sink`: HTTP answered 204 once the body is read,
# OTLP/gRPC answered at once, so its cost stays out of the agents' figures (it
# shares the cores).
#
#   benches/peers.sh [file|files|otlp|all] [runs]
#   FLUENT_BIT=/path/to/fluent-bit ROTEL=/path/to/rotel benches/peers.sh all 3
#
# The peers are found by FLUENT_BIT and ROTEL, else on PATH (`fluent-bit`, `rotel`).
# A peer that is missing is said so, and ocelot runs alone.
set -euo pipefail
cd "$(dirname "$0")/.."
workloads=${1:-all}
runs=${2:-1}
cargo build --release --quiet --bins
. benches/lib.sh

fluent_bit=${FLUENT_BIT:-$(command -v fluent-bit || true)}
rotel=${ROTEL:-$(command -v rotel || true)}
[ -x "$fluent_bit" ] || { echo "Fluent Bit not found (set FLUENT_BIT): file and files run ocelot alone"; fluent_bit=""; }
[ -x "$rotel" ] || { echo "rotel not found (set ROTEL): otlp runs ocelot alone"; rotel=""; }

sink_port=$(pick_port)
"$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$(pick_port)" --http "127.0.0.1:$sink_port" --report-every 3600s \
    > "$dir/http-sink.log" &
otlp_sink_port=$(pick_port)
"$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$otlp_sink_port" --report-every 3600s > "$dir/otlp-sink.log" &

# Fluent Bit's count of records its loki output delivered, from its HTTP server.
fb_delivered() {
    curl -s "http://127.0.0.1:$1/api/v1/metrics/prometheus" |
        awk '/^fluentbit_output_proc_records_total\{name="loki.0"\}/ { print $2 }'
}
# ocelot's count of records its exporters sent.
ocelot_delivered() { metric otelcol_exporter_sent_log_records_total; }
ratio() { echo "$1 / $2" | bc -l | xargs printf %.2f; }

# Runs an agent until it has delivered $2 records; sets cpu (s) and peak (MiB).
# $1: fluent-bit|ocelot; $3: config; $4: a command to run once the agent is up
# (the writer), empty for none.
run_agent() {
    local kind=$1 want=$2 config=$3 writer=$4 pid before
    if [ "$kind" = fluent-bit ]; then
        "$fluent_bit" -c "$config" > "$dir/fluent-bit.log" 2>&1 &
        pid=$!
        until curl -s "http://127.0.0.1:$fb_port/" > /dev/null; do sleep 0.1; done
    else
        rm -rf "$dir/state"
        "$ocelot" --config "$config" --storage-dir "$dir/state" 2> "$dir/ocelot.log" &
        pid=$!
        until curl -s "http://127.0.0.1:$metrics_port/metrics" > /dev/null; do sleep 0.1; done
    fi
    # A file read from the start: the whole process' CPU; a writer: from when it starts.
    before=0
    if [ -n "$writer" ]; then before=$(cpu_ticks "$pid"); eval "$writer"; fi
    local delivered
    while :; do
        if [ "$kind" = fluent-bit ]; then delivered=$(fb_delivered "$fb_port"); else delivered=$(ocelot_delivered); fi
        [ "${delivered:-0}" -ge "$want" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "$kind exited early" >&2; tail -20 "$dir/$kind.log" >&2; exit 1; }
        sleep 0.2
    done
    cpu=$(echo "($(cpu_ticks "$pid") - $before) / 100" | bc -l)
    peak=$(( $(hwm_kib "$pid") / 1024 ))
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

fb_config() { # $1: path glob
    fb_port=$(pick_port)
    cat > "$dir/fluent-bit.yaml" <<YAML
service:
  flush: 1
  log_level: warn
  http_server: on
  http_listen: 127.0.0.1
  http_port: $fb_port
pipeline:
  inputs:
    - name: tail
      path: $1
      read_from_head: true
  outputs:
    - name: loki
      match: '*'
      host: 127.0.0.1
      port: $sink_port
YAML
}

ocelot_config() { # $1: path glob
    metrics_port=$(pick_port)
    cat > "$dir/ocelot.yaml" <<YAML
receivers:
  filelog:
    include: ["$1"]
    start_at: beginning
exporters:
  loki:
    endpoint: http://127.0.0.1:$sink_port/loki/api/v1/push
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [loki]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML
}

file_workload() {
    mkdir -p "$dir/big"
    if [ ! -f "$dir/big/app.log" ]; then
        python3 - "$dir/big/app.log" <<'PY'
import sys
methods = ["GET", "POST", "PUT", "DELETE"]
with open(sys.argv[1], "w") as f:
    for i in range(1_000_000):
        f.write(f"ts=2026-12-04T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z level={'info' if i % 10 else 'warn'} "
                f"service=checkout method={methods[i % 4]} path=/api/v1/orders/{i * 7919 % 1000000} status={200 if i % 17 else 500} "
                f"duration_ms={i * 31 % 997} msg=\"request handled\" pad={'x' * (i * 7 % 30)}\n")
PY
    fi
    local lines mib
    lines=$(wc -l < "$dir/big/app.log")
    mib=$(echo "$(stat -c %s "$dir/big/app.log") / 1048576" | bc -l)
    echo "== file: $lines lines, $(printf %.0f "$mib") MiB, tail → Loki"
    local fb_rate="" fb_peak=""
    if [ -n "$fluent_bit" ]; then
        fb_config "$dir/big/*.log"
        run_agent fluent-bit "$lines" "$dir/fluent-bit.yaml" ""
        fb_rate=$(echo "$mib / $cpu" | bc -l); fb_peak=$peak
        echo "fluent-bit: CPU $(printf %.2f "$cpu") s, $(printf %.0f "$fb_rate") MiB per CPU-second, peak RSS $peak MiB"
    fi
    ocelot_config "$dir/big/*.log"
    run_agent ocelot "$lines" "$dir/ocelot.yaml" ""
    local rate
    rate=$(echo "$mib / $cpu" | bc -l)
    echo "ocelot:     CPU $(printf %.2f "$cpu") s, $(printf %.0f "$rate") MiB per CPU-second, peak RSS $peak MiB"
    [ -n "$fb_rate" ] && echo "ratio (ocelot / fluent-bit): MiB per CPU-second $(ratio "$rate" "$fb_rate")× (target ≥ 1.5), peak RSS $(ratio "$peak" "$fb_peak")× (target: ocelot ≤ 45 MiB)"
    return 0
}

files_workload() {
    local root="$dir/many" lines=$(( 200 * 10 * 20 ))
    echo "== files: 200 files in 20 directories, 10 lines/s each for 20 s ($lines lines), tail → Loki"
    writer="python3 - '$root' <<'PY'
import os, sys, time
root = sys.argv[1]
files = [open(os.path.join(root, f'd{d}', f'f{i}.log'), 'a') for d in range(20) for i in range(10)]
start = time.monotonic()
for tick in range(200):
    for n, f in enumerate(files):
        f.write(f'ts=2026-12-04T10:00:00.000Z level=info file={n} tick={tick} msg=\"background job step done\" duration_ms={tick * 7 % 300}\n')
        f.flush()
    time.sleep(max(0, start + (tick + 1) / 10 - time.monotonic()))
PY"
    local fb_cpu=""
    for kind in fluent-bit ocelot; do
        [ "$kind" = fluent-bit ] && [ -z "$fluent_bit" ] && continue
        rm -rf "$root"; mkdir -p "$root"
        for d in $(seq 0 19); do mkdir -p "$root/d$d"; for i in $(seq 0 9); do : > "$root/d$d/f$i.log"; done; done
        if [ "$kind" = fluent-bit ]; then
            fb_config "$root/*/*.log"; run_agent fluent-bit "$lines" "$dir/fluent-bit.yaml" "$writer"; fb_cpu=$cpu
        else
            ocelot_config "$root/*/*.log"; run_agent ocelot "$lines" "$dir/ocelot.yaml" "$writer"
        fi
        echo "$kind: CPU $(printf %.2f "$cpu") s over the run ($(printf %.1f "$(echo "100 * $cpu / 20" | bc -l)")% of a core over the 20 s), peak RSS $peak MiB"
    done
    [ -n "$fb_cpu" ] && echo "ratio (ocelot / fluent-bit): CPU $(ratio "$cpu" "$fb_cpu")× (target ≤ 0.67)"
    return 0
}

otlp_workload() {
    echo "== otlp: OTLP/gRPC traces pass-through, 4 senders × 500 spans, 15 s, no compression"
    local in_port rotel_rate="" rate pid before items
    for kind in rotel ocelot; do
        [ "$kind" = rotel ] && [ -z "$rotel" ] && continue
        in_port=$(pick_port)
        if [ "$kind" = rotel ]; then
            "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$in_port" --otlp-http-endpoint "127.0.0.1:$(pick_port)" \
                --exporter otlp --otlp-exporter-endpoint "http://127.0.0.1:$otlp_sink_port" \
                --otlp-exporter-compression none > "$dir/rotel.log" 2>&1 &
        else
            metrics_port=$(pick_port)
            cat > "$dir/ocelot-otlp.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$in_port
processors:
  batch:
exporters:
  otlp:
    endpoint: 127.0.0.1:$otlp_sink_port
    compression: none
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML
            "$ocelot" --config "$dir/ocelot-otlp.yaml" 2> "$dir/ocelot.log" &
        fi
        pid=$!
        until (echo > "/dev/tcp/127.0.0.1/$in_port") 2>/dev/null; do sleep 0.1; done
        before=$(cpu_ticks "$pid")
        "$bin/ocelot-loadgen" send --endpoint "127.0.0.1:$in_port" --signal traces --duration 15s \
            --concurrency 4 --batch 500 > "$dir/load.log"
        sleep 1
        cpu=$(echo "($(cpu_ticks "$pid") - $before) / 100" | bc -l)
        items=$(grep -o 'sent [0-9]*' "$dir/load.log" | awk '{print $2}')
        rate=$(echo "$items / $cpu" | bc -l)
        echo "$kind: $items spans, CPU $(printf %.2f "$cpu") s, $(printf %.0f "$rate") spans per CPU-second, peak RSS $(( $(hwm_kib "$pid") / 1024 )) MiB"
        [ "$kind" = rotel ] && rotel_rate=$rate
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
    [ -n "$rotel_rate" ] && echo "ratio (ocelot / rotel): spans per CPU-second $(ratio "$rate" "$rotel_rate")×"
    return 0
}

for run in $(seq 1 "$runs"); do
    [ "$runs" -gt 1 ] && echo "# run $run of $runs"
    case "$workloads" in
        file) file_workload ;;
        files) files_workload ;;
        otlp) otlp_workload ;;
        all) file_workload; files_workload; otlp_workload ;;
        *) echo "workloads: file, files, otlp or all" >&2; exit 2 ;;
    esac
done
