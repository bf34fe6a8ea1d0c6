#!/usr/bin/env bash
# The hostmetrics receiver on this machine's own /proc with N extra sleeping processes:
#   1. `cargo bench --bench hostmetrics -- this_machine`: one process scrape (and the
#      process table walk alone), wall time per scrape;
#   2. the release agent with every scraper at a 10s interval (process scraper on,
#      max_processes 1000) for D seconds: its CPU share, peak RSS, and the scrape
#      durations it reports in its own metrics.
#
#   benches/hostmetrics.sh [processes] [seconds]
#   benches/hostmetrics.sh 10000 60
set -euo pipefail
cd "$(dirname "$0")/.."
processes=${1:-10000}
seconds=${2:-60}
cargo build --release --quiet --bins
. benches/lib.sh
metrics_port=$(pick_port)

# The sleepers live as long as this script (the EXIT trap kills them).
python3 - "$processes" <<'PY' &
import subprocess, sys, time, signal
children = [subprocess.Popen(["sleep", "3600"]) for _ in range(int(sys.argv[1]))]
print(f"{len(children)} sleeping processes started", file=sys.stderr, flush=True)
def stop(*_):
    for c in children: c.kill()
    for c in children: c.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True: time.sleep(60)
PY
spawner=$!
until [ "$(ls /proc | grep -c '^[0-9]')" -ge "$processes" ]; do sleep 1; done
echo "processes in /proc: $(ls /proc | grep -c '^[0-9]')"

cargo bench --bench hostmetrics -- this_machine 2>&1 | grep -E "this machine|time:|^hostmetrics/"

cat > "$dir/config.yaml" <<YAML
receivers:
  hostmetrics:
    collection_interval: 10s
    scrapers:
      cpu:
      memory:
      load:
      disk:
      filesystem:
      network:
      paging:
      processes:
      process:
        mute_process_exe_error: true
exporters:
  debug:
    verbosity: basic
service:
  pipelines:
    metrics:
      receivers: [hostmetrics]
      exporters: [debug]
  telemetry:
    metrics:
      address: 127.0.0.1:$metrics_port
YAML
"$ocelot" --config "$dir/config.yaml" 2>"$dir/agent.log" &
agent=$!
sleep 2
start=$(cpu_ticks "$agent")
sleep "$seconds"
end=$(cpu_ticks "$agent")
metrics=$(curl -s "127.0.0.1:$metrics_port/metrics")
echo "agent over ${seconds}s with all scrapers at 10s:"
awk -v t=$((end - start)) -v s="$seconds" 'BEGIN { printf "  CPU %.2f s = %.2f %% of one core\n", t / 100, t / s }'
echo "  peak RSS $(( $(hwm_kib "$agent") / 1024 )) MiB"
echo "$metrics" | awk '/^ocelot_hostmetrics_scrape_duration_seconds_(sum|count)/ {
    match($0, /scraper="[a-z]+"/); k = substr($0, RSTART + 9, RLENGTH - 10)
    if ($0 ~ /_sum/) sum[k] = $NF; else count[k] = $NF }
  END { for (k in sum) if (count[k] > 0) printf "  %-10s %7.1f ms per scrape (%d scrapes)\n", k, 1000 * sum[k] / count[k], count[k] }'
echo "$metrics" | grep -E "^ocelot_hostmetrics_processes_(seen|emitted|skipped|tracked)" | sed 's/^/  /'
kill "$agent" "$spawner"
wait "$spawner" 2>/dev/null || true
