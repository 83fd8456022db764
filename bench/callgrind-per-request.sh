#!/usr/bin/env bash
# Count the user-space instructions (and, with --locks, the atomic
# operations) a proxy spends per request, deterministically, under
# valgrind's callgrind. Timing on a shared machine cannot tell 2 % from
# noise; this repeats to within about 1 %.
#
#   bench/callgrind-per-request.sh [--locks] BINARY UPSTREAM LISTEN [PATH] [REQUESTS]
#
# BINARY is started as `BINARY UPSTREAM LISTEN` (as the bench_proxy example
# takes them), an origin must already answer on UPSTREAM, and h2load
# (nghttp2-client) sends REQUESTS (default 20000) over 50 HTTP/1.1
# connections after a warm-up of 2000. Counts between the two dumps are
# divided by REQUESTS. Needs valgrind and h2load; with --locks, objdump.
# Example:
#   cargo build --release --example bench_proxy --features proxy
#   bench/callgrind-per-request.sh --locks target/release/examples/bench_proxy \
#       127.0.0.1:8000 127.0.0.1:6199 /hello
set -euo pipefail
locks=0
if [ "${1:-}" = "--locks" ]; then locks=1; shift; fi
[ $# -ge 3 ] || { sed -n '2,20p' "$0"; exit 2; }
bin=$1 upstream=$2 listen=$3 path=${4:-/hello} n=${5:-20000}
dir=$(mktemp -d /tmp/callgrind-per-request.XXXXXX)
opts=(--tool=callgrind --callgrind-out-file="$dir/cg.out")
[ $locks = 1 ] && opts+=(--dump-instr=yes)
valgrind "${opts[@]}" "$bin" "$upstream" "$listen" > "$dir/log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://$listen$path" && break; sleep 0.2; done
h2load --h1 -n 2000 -c 50 "http://$listen$path" > /dev/null
callgrind_control -d $vg > /dev/null
h2load --h1 -n "$n" -c 50 "http://$listen$path" | grep -E '^requests:'
callgrind_control -d $vg > /dev/null
sleep 1
total=$(awk '/^summary:/{print $2}' "$dir/cg.out.2")
echo "user instructions per request: $((total / n))  (profile: $dir/cg.out.2, see callgrind_annotate)"
[ $locks = 1 ] || exit 0
# Every lock-prefixed (or xchg) instruction of the binary, then how often
# each ran in the measured part.
objdump -d --no-show-raw-insn "$bin" | awk '/\tlock |\txchg/{sub(":","",$1); print $1}' > "$dir/locks"
python3 - "$dir/cg.out.2" "$dir/locks" "$n" <<'PY'
import re, sys
f, lockfile, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
locks = {int(a, 16) for a in open(lockfile)}
addr, skip, total = 0, False, 0
for line in open(f):
    if line.startswith('calls='):
        skip = True
        continue
    m = re.match(r'^(0x[0-9a-f]+|[+-]\d+|\*)\s+\S+\s+(\d+)$', line)
    if m:
        a = m.group(1)
        if a.startswith('0x'):
            addr = int(a, 16)
        elif a != '*':
            addr += int(a)
        if not skip and addr in locks:
            total += int(m.group(2))
        skip = False
print(f"atomic (lock-prefixed) instructions per request: {total / n:.1f}")
PY
