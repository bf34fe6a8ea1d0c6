# Shared by benches/*.sh: a scratch directory, free ports, and /proc readings of a pid.
# shellcheck shell=bash
bin=target/release
# OCELOT_BIN runs another ocelot binary (an earlier build, for a before/after
# comparison) with this tree's load generator and sink.
ocelot=${OCELOT_BIN:-$bin/ocelot}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# utime + stime in clock ticks (100 per second).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
