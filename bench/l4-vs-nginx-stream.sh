#!/usr/bin/env bash
# l4-vs-nginx-stream.sh: the TCP proxy (example bench_tcp_proxy, splice on) against
# nginx `stream` (proxy_pass, one worker), in the same run, through
# proxy-bench.sh (wrk over HTTP/1.1 keep-alive: each client connection is
# one relayed TCP session). Both proxies are pinned to the same CPU.
#
# Usage: bench/l4-vs-nginx-stream.sh [PROXY_BENCH] [extra proxy-bench.sh options]
#   PROXY_BENCH defaults to /work/shared/bench/proxy-bench.sh.
#   Env: SCENARIOS (default "/hello:50 /100k:50 /1m:50"), REPS (3),
#        DURATION (10), PROXY_CPUS (0), LOAD_CPUS (1), BIN (a release
#        bench_tcp_proxy; built with `cargo build --release` when unset),
#        BENCH_SPLICE=0 to measure the copy loop instead.
# Ports: origin 8000 (an nginx this script starts, serving /hello (6 B),
# /1k, /100k and /1m (1 MiB), pinned to LOAD_CPUS), nginx http proxy
# 8081/8443 (proxy-bench's own baseline), ours 8090, nginx stream 8091.
#
# Prints proxy-bench's table, then ours / nginx-stream ratios of the
# medians: requests/s and requests per proxy CPU-second. The bodies are
# the same through both, so the ratio of requests per CPU-second is the
# ratio of bytes per CPU-second.
#
# A run on 2026-12-03 (2 vCPU AMD EPYC VM, proxies pinned to CPU 0, wrk and
# origin to CPU 1, 50 connections, 10 s x 3 interleaved reps, release
# build, splice on), medians, ours / nginx stream:
#   body     requests/s            requests (= bytes) per proxy CPU-second
#   6 B      56894 / 42900 = 1.33   58450 / 67442 = 0.87
#   100 KiB  11547 /  7537 = 1.53   29713 / 11966 = 2.48
#   1 MiB     2480 /  1043 = 2.38    5819 /  1049 = 5.55
# Syscalls per 6 B request then (perf stat -e raw_syscalls:sys_enter -p PID
# over a wrk run): ours 6.05 (6 splice: in, out and an EAGAIN probe per
# message), nginx stream 4.5 (2 recv, 2 writev, 0.5 epoll_wait).
#
# After the adaptive relay (small reads copied with recv/send, a direction
# spliced once a read fills 16 KiB) and the idle timeout checked by byte
# counts (no clock read per chunk, timers polled only when they fire);
# same machine and settings, 2026-12-03, quiet machine:
#   body     requests/s            requests (= bytes) per proxy CPU-second
#   6 B      56931 / 57365 = 0.99   66474 / 67847 = 0.98
#   100 KiB  15338 / 12910 = 1.19   28182 / 12980 = 2.17
#   1 MiB     2497 /  1073 = 2.33    6032 /  1076 = 5.61
# (The adaptive relay alone, one run earlier: 0.98, 2.17, 5.44.)
# Before and after in one run (the old binary as a third target, --extra),
# per proxy CPU-second: 6 B 58519 -> 66684 (nginx stream 67818: 0.86 ->
# 0.98); 100 KiB 27685 -> 28207 (nginx stream 12810: 2.16 -> 2.20). The
# 100 KiB ratio of the first run (2.48) had a slower nginx stream.
# Syscalls per 6 B request: ours 4.4 (2 recvfrom, 2 sendto, 0.4
# epoll_wait), nginx stream 4.5 (2 recvfrom, 2 writev, 0.5 epoll_wait).
# TCP segments per request are the same (4.0, nstat TcpOutSegs). The 6 B
# runs are bound by wrk (both proxies near 85% of their CPU), so their
# requests/s are equal; the 2% left per CPU-second is user space (tokio's
# wake and poll path, about 10% of our CPU; the kernel TCP work is 90%).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PROXY_BENCH=${1:-/work/shared/bench/proxy-bench.sh}
shift || true
SCENARIOS=${SCENARIOS:-"/hello:50 /100k:50 /1m:50"}
REPS=${REPS:-3}
DURATION=${DURATION:-10}
PROXY_CPUS=${PROXY_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
OUR_PORT=8090
STREAM_PORT=8091
ORIGIN_PORT=8000

if [ -z "${BIN:-}" ]; then
  (cd "$repo" && cargo build --release -p pingora --example bench_tcp_proxy --features proxy >&2)
  BIN="${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench_tcp_proxy"
fi

work=$(mktemp -d /tmp/l4-bench.XXXXXX)
out="$work/out"
stream_pid=""
origin_pid=""
cleanup() {
  # Only the nginx processes this script started, by their PIDs.
  for pid in $stream_pid $origin_pid; do
    [ -e "/proc/$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
  done
  rm -rf "$work/nginx" "$work/origin"
}
trap cleanup EXIT

# The origin: proxy-bench's files plus 1 MiB.
mkdir -p "$work/origin/html"
head -c 1024 /dev/zero | tr '\0' 'a' > "$work/origin/html/1k"
head -c 102400 /dev/zero | tr '\0' 'b' > "$work/origin/html/100k"
head -c 1048576 /dev/zero | tr '\0' 'c' > "$work/origin/html/1m"
cat > "$work/origin/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $work/origin/nginx.pid;
error_log $work/origin/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/origin/client_body;
    proxy_temp_path $work/origin/proxy_temp;
    fastcgi_temp_path $work/origin/fastcgi_temp;
    uwsgi_temp_path $work/origin/uwsgi_temp;
    scgi_temp_path $work/origin/scgi_temp;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nodelay on;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        root $work/origin/html;
        location = /hello { default_type text/plain; return 200 "hello\n"; }
        location / { default_type application/octet-stream; }
    }
}
CONF
nginx -t -q -c "$work/origin/nginx.conf" -e "$work/origin/error.log"
( exec taskset -c "$LOAD_CPUS" nginx -c "$work/origin/nginx.conf" -e "$work/origin/error.log" ) >/dev/null 2>&1 &
origin_pid=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/hello" && break; sleep 0.1; done

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
user root;
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
stream {
    server {
        listen 127.0.0.1:$STREAM_PORT backlog=4096;
        proxy_pass 127.0.0.1:$ORIGIN_PORT;
        tcp_nodelay on;
    }
}
CONF
nginx -t -q -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log"
( exec taskset -c "$PROXY_CPUS" nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" ) >/dev/null 2>&1 &
stream_pid=$!

"$PROXY_BENCH" \
  --cmd "exec $BIN 127.0.0.1:$ORIGIN_PORT 127.0.0.1:$OUR_PORT" --port "$OUR_PORT" --name pingora-l4 \
  --extra "nginx-stream:$STREAM_PORT::$stream_pid" \
  --scenarios "$SCENARIOS" --reps "$REPS" --duration "$DURATION" \
  --proxy-cpus "$PROXY_CPUS" --load-cpus "$LOAD_CPUS" --no-origin-target --origin-running \
  --out "$out" "$@"

echo
echo "== pingora-l4 / nginx-stream (medians over $REPS reps)"
awk -F, '
  function median(arr, n,   i, j, t, b) {
    for (i = 1; i <= n; i++) b[i] = arr[i] + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
    if (n % 2) return b[(n + 1) / 2]; return (b[n / 2] + b[n / 2 + 1]) / 2
  }
  NR == 1 { next }
  $3 == "pingora-l4" || $3 == "nginx-stream" {
    k = $2 SUBSEP $3; n = ++cnt[k]; rps[k, n] = $6; rpc[k, n] = $14
    if (!($2 in seen)) { seen[$2] = 1; order[++ns] = $2 }
  }
  END {
    printf "%-16s %12s %12s %14s %14s %8s %8s\n", "scenario", "rps ours", "rps nginx", "req/cpu ours", "req/cpu nginx", "rps", "per-cpu"
    for (s = 1; s <= ns; s++) {
      sc = order[s]; a = sc SUBSEP "pingora-l4"; b = sc SUBSEP "nginx-stream"
      for (i = 1; i <= cnt[a]; i++) { x[i] = rps[a, i]; y[i] = rpc[a, i] }
      ro = median(x, cnt[a]); co = median(y, cnt[a])
      for (i = 1; i <= cnt[b]; i++) { x[i] = rps[b, i]; y[i] = rpc[b, i] }
      rn = median(x, cnt[b]); cn = median(y, cnt[b])
      printf "%-16s %12.0f %12.0f %14.0f %14.0f %8.3f %8.3f\n", sc, ro, rn, co, cn, (rn ? ro / rn : 0), (cn ? co / cn : 0)
    }
  }' "$out/raw.csv" | tee "$out/l4-ratios.txt"
echo "raw: $out/raw.csv"
