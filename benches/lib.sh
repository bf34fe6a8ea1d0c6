# Shared by benches/*.sh: a scratch directory, free ports, and /proc readings of a pid.
# shellcheck shell=bash
bin=target/release
# OCELOT_BIN runs another ocelot binary (an earlier build, for a before/after
# comparison) with this tree's load generator and sink.
ocelot=${OCELOT_BIN:-$bin/ocelot}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# ocelot's self-metrics, served on $metrics_port.
metrics() { curl -s "http://127.0.0.1:$metrics_port/metrics"; }
# The sum of a family's samples whose labels contain every label given after the name.
metric() {
    local name=$1; shift
    metrics | awk -v name="$name" -v labels="$*" '
        $1 ~ "^"name"({|$)" { ok = 1; n = split(labels, want, " "); for (i = 1; i <= n; i++) if (index($1, want[i]) == 0) ok = 0; if (ok) sum += $NF }
        END { printf "%.0f\n", sum }'
}
# utime + stime in clock ticks (100 per second).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
