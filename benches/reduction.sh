#!/usr/bin/env bash
# Cost reduction of config/examples/process-cost-reduction.yaml on a synthetic host
# of 10,000 processes (a /proc tree read through hostmetrics' root_path): 5
# databases (idle, 2 GiB), 10 APIs, 10 web servers and 25 workers (busy), 2000
# kernel threads, 6000 idle shells and 1948 short-lived jobs (some named *-test or
# *-debug). A helper advances the busy processes' CPU time every second.
#
# Runs the release agent twice for D seconds at a S-second scrape interval, into an
# OTLP sink: the plain process scraper with no limits, then the example. Reports data
# points sent per minute by each, the reduction, and how many scrapes routed each
# database to the critical pipeline.
#
#   benches/reduction.sh [seconds] [interval]
#   benches/reduction.sh 60 10
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
interval=${2:-10}
cargo build --release --quiet --bins
. benches/lib.sh
host="$dir/host"

python3 - "$host" <<'PY' &
import os, sys, time
root = sys.argv[1]
proc = os.path.join(root, "proc")
os.makedirs(proc)
boot = int(time.time()) - 86400
with open(os.path.join(proc, "stat"), "w") as f:
    f.write(f"cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nbtime {boot}\nprocesses 99999\nprocs_running 3\nprocs_blocked 0\n")
with open(os.path.join(proc, "meminfo"), "w") as f:
    f.write("MemTotal: 65536000 kB\nMemFree: 1000 kB\nMemAvailable: 30000000 kB\n")
os.makedirs(os.path.join(root, "etc"))
with open(os.path.join(root, "etc/passwd"), "w") as f:
    f.write("root:x:0:0:root:/root:/bin/bash\n")
page = os.sysconf("SC_PAGE_SIZE")
procs = []  # (pid, comm, ppid, start_ticks, rss_bytes, ticks_per_second)
def add(comm, ppid, age_s, rss, busy):
    procs.append((len(procs) + 1, comm, ppid, (86400 - age_s) * 100, rss, busy))
for name in ["postgres", "postgres", "postgres", "mysqld", "redis-server"]:
    add(name, 1, 3600, 2 << 30, 0)
for i in range(10): add(f"orders-api" if i % 2 else "api-gateway", 1, 3600, 300 << 20, 30)
for i in range(10): add("nginx", 1, 3600, 50 << 20, 10)
for i in range(25): add("celery-worker", 1, 3600, 200 << 20, 5)
for i in range(2000): add(f"kworker/{i % 2}:{i}", 2, 86000, 0, 0)
for i in range(2): add(f"ksoftirqd/{i}", 2, 86000, 0, 0)
for i in range(6000): add(["bash", "sh", "sleep"][i % 3], 1, 7200, 1 << 20, 0)
while len(procs) < 10000:
    n = len(procs)
    add([f"job-{n}", f"job-{n}-test", f"job-{n}-debug"][n % 3], 1, 30, 5 << 20, 0)
utime = {p[0]: 0 for p in procs}
def write_stat(p):
    pid, comm, ppid, start, rss, _ = p
    d = os.path.join(proc, str(pid))
    with open(os.path.join(d, "stat.tmp"), "w") as f:
        f.write(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 {utime[pid]} 0 0 0 20 0 1 0 {start} {rss * 2} {rss // page} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
    os.replace(os.path.join(d, "stat.tmp"), os.path.join(d, "stat"))
for p in procs:
    pid, comm, ppid = p[0], p[1], p[2]
    d = os.path.join(proc, str(pid))
    os.makedirs(d)
    write_stat(p)
    with open(os.path.join(d, "status"), "w") as f:
        f.write(f"Name:\t{comm}\nUid:\t0\t0\t0\t0\nThreads:\t1\n")
    if ppid != 2:
        with open(os.path.join(d, "cmdline"), "w") as f:
            f.write(f"/usr/bin/{comm}\0")
        os.symlink(f"/usr/bin/{comm}", os.path.join(d, "exe"))
    else:
        open(os.path.join(d, "cmdline"), "w").close()
open(os.path.join(root, "ready"), "w").close()
busy = [p for p in procs if p[5] > 0]
while True:
    time.sleep(1)
    for p in busy:
        utime[p[0]] += p[5]
        write_stat(p)
PY
until [ -e "$host/ready" ]; do sleep 0.5; done
echo "synthetic host: $(ls "$host/proc" | grep -c '^[0-9]') processes"

sink_port=$(pick_port)
"$bin/ocelot-loadgen" sink --grpc "127.0.0.1:$sink_port" --report-every 3600s > "$dir/sink.log" &

run() { # name config
    local name=$1 port
    port=$(pick_port)
    sed -e "s|\${env:OCELOT_SCRAPE_INTERVAL:-10s}|${interval}s|" \
        -e "s|\${env:OCELOT_METRICS_PORT:-8888}|$port|" \
        -e "s|\${env:OTLP_ENDPOINT:-localhost:4317}|127.0.0.1:$sink_port|" \
        -e "s|^  hostmetrics:|  hostmetrics:\n    root_path: $host|" "$2" > "$dir/$name.yaml"
    "$ocelot" --config "$dir/$name.yaml" --storage-dir "$dir/state-$name" 2> "$dir/$name.log" &
    local pid=$!
    sleep "$seconds"
    curl -s "http://127.0.0.1:$port/metrics" > "$dir/$name.metrics"
    kill "$pid"; wait "$pid" || true
    local sent
    sent=$(awk '/^otelcol_exporter_sent_metric_points_total/ {s += $2} END {print s + 0}' "$dir/$name.metrics")
    echo "$name: $sent data points sent in ${seconds}s ($(( sent * 60 / seconds )) per minute)"
    eval "${name}_sent=$sent"
}

cat > "$dir/plain-config.yaml" <<YAML
receivers:
  hostmetrics:
    collection_interval: \${env:OCELOT_SCRAPE_INTERVAL:-10s}
    scrapers:
      process:
        max_processes: 100000
        mute_process_all_errors: true
        metrics:
          process.cpu.utilization:
            enabled: true
exporters:
  otlp:
    endpoint: \${env:OTLP_ENDPOINT:-localhost:4317}
    tls:
      insecure: true
service:
  pipelines:
    metrics:
      receivers: [hostmetrics]
      exporters: [otlp]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: \${env:OCELOT_METRICS_PORT:-8888}
YAML
run plain "$dir/plain-config.yaml"
run example config/examples/process-cost-reduction.yaml
critical=$(awk -F' ' '/^ocelot_routing_items_total\{.*route="metrics\/critical"/ {s += $2} END {print s + 0}' "$dir/example.metrics")
scraped=$(awk '/^otelcol_receiver_accepted_metric_points_total/ {s += $2} END {print s + 0}' "$dir/example.metrics")
echo "example: $scraped data points scraped, $critical routed to metrics/critical (the 5 databases; ${seconds}s / ${interval}s scrapes)"
awk -v p="$plain_sent" -v e="$example_sent" 'BEGIN { printf "reduction: %.1f %%\n", (1 - e / p) * 100 }'
