#!/usr/bin/env bash
# proxy-vs-nginx.sh: our bench_proxy example against nginx as a reverse
# proxy (one worker), every row of the performance table, in one run.
#
#   bench/proxy-vs-nginx.sh            # full run: 10 s per load, 3 reps
#   bench/proxy-vs-nginx.sh --smoke    # 2 s per load, 1 rep (a check)
#
# Env: BIN (a release bench_proxy; built with
#      `cargo build --release --example bench_proxy --features proxy,cache`
#      when unset), REPS (3), DURATION (seconds per load, 10), WARMUP (2),
#      ROWS (which rows, by number, e.g. "1 5"; all by default),
#      PROXY_CPU (0), LOAD_CPU (1), OUT (a directory to keep raw results).
#
# What it starts, all on 127.0.0.1 with ports picked at run time, all
# stopped at exit: an origin (nginx, one worker, on LOAD_CPU) answering
# /hello (6 B, `return 200`), /1k and /100k (static files); nginx as a
# reverse proxy with one worker (plain HTTP/1.1, and TLS with http2 on,
# keep-alive pool of 64 to the origin) on PROXY_CPU; our bench_proxy (one
# thread, plain and TLS listeners, h2 and http/1.1 by ALPN) on PROXY_CPU.
# The TLS certificate is self-signed (RSA 2048), made at run time.
# Load runs on LOAD_CPU: wrk (one thread) for HTTP/1.1, h2load (one
# thread) for HTTP/2 over TLS and for HTTP/1.1 over TLS (--h1).
#
# Rows (the issue's table):
#   1 H1 6 B, 50 conns          wrk -c50 /hello
#   2 H1 6 B, 1 conn            wrk -c1 /hello
#   3 H1 1 KiB, 50 conns        wrk -c50 /1k
#   4 H1 100 KiB, 50 conns      wrk -c50 /100k
#   5 H2 TLS 6 B, 50x10 streams h2load -c50 -m10 /hello
#   6 H2 TLS 100 KiB, 50 conns  h2load -c50 -m1 /100k
#   7 H1 TLS 6 B, 50 conns      h2load --h1 -c50 /hello
# Repetitions are interleaved: each rep runs every row against both
# proxies, the order of the two swapped every rep. Per load: requests/s,
# p99 (wrk's histogram; for h2load the 99th percentile of its per-request
# log), the proxy's CPU seconds (utime + stime of the proxy's processes
# from /proc/PID/stat, before and after) and requests per CPU-second.
# The table prints medians over reps, and the ratios ours / nginx:
# requests per CPU-second (the median of the per-rep ratios, which is
# robust to the machine drifting between reps) and p99 (of the medians).
#
# A full run on 2026-12-03, 20:02 UTC (2 vCPU AMD EPYC VM; NOT a quiet
# machine: other benchmarks and builds ran at the same time, load average
# 1.7 rising to 3.2, so treat it as a demonstration of the harness, not as
# the chapter's figures; release build of commit 09150e1, 10 s x 3 reps):
# row (medians)              |  ngx rps  our rps | ngx rq/cs our rq/cs | ngx p99 our p99 | rq/cs o/n   p99 o/n
# H1 6 B, 50 conns           |    36602    29779 |     52593     48468 |   10980   10435 |      0.92      0.95
# H1 6 B, 1 conn             |     6306     8057 |     18127     19139 |    4136    3730 |      0.98      0.90
# H1 1 KiB, 50 conns         |    18143    19644 |     34094     33153 |   10427   10099 |      0.97      0.97
# H1 100 KiB, 50 conns       |     4849     6831 |      7309     10893 |  193782   16917 |      1.52      0.09
# H2 TLS 6 B, 50x10 streams  |    13997    21569 |     25382     30786 |   72563   74466 |      1.20      1.03
# H2 TLS 100 KiB, 50 conns   |     3118     2789 |      5134      6213 |   25773   31664 |      1.20      1.23
# H1 TLS 6 B, 50 conns       |    17785    18584 |     38652     42507 |   12879   10807 |      1.08      0.84
# The H1 100 KiB p99 moved tenfold between reps (nginx 20, 194 and 220 ms;
# ours 17, 17 and 115 ms): the other load on the machine, not the
# proxies. On H2 100 KiB, ours served fewer requests/s than nginx in two
# reps of three while using less of its core (44 to 54 %, nginx about
# 61 %): it waits on something (flow control windows or write
# scheduling), which the issue's H2 work should look at; the 2 s smoke
# run the same hour showed the same (2647 against 5132 requests/s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

REPS=${REPS:-3} DURATION=${DURATION:-10} WARMUP=${WARMUP:-2}
PROXY_CPU=${PROXY_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
ROWS=${ROWS:-"1 2 3 4 5 6 7"}
case "${1:-}" in
  --smoke) REPS=1 DURATION=2 WARMUP=1 ;;
  "") ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac

for t in nginx wrk h2load taskset openssl curl python3 awk; do
  command -v "$t" >/dev/null || { echo "proxy-vs-nginx: missing tool $t" >&2; exit 2; }
done
NGINX=$(command -v nginx)
if [ -z "${BIN:-}" ]; then
  (cd "$repo" && cargo build --release --example bench_proxy --features proxy,cache >&2)
  BIN=${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench_proxy
fi
[ -x "$BIN" ] || { echo "proxy-vs-nginx: no executable $BIN" >&2; exit 2; }

WORK=$(mktemp -d /tmp/proxy-vs-nginx.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp "$WORK"/raw.tsv "$WORK"/origin.log "$WORK"/proxy.log "$WORK"/ours.log "$OUT"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free ports: bound to port 0 by the kernel, then released.
read -r ORIGIN NGX NGX_TLS OURS OURS_TLS < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1

mkdir -p "$WORK/html"
printf 'hello\n' > "$WORK/html/hello"
head -c 1024 /dev/zero | tr '\0' a > "$WORK/html/1k"
head -c 102400 /dev/zero | tr '\0' b > "$WORK/html/100k"

# nginx drops to `nobody` when started as root; that user cannot read $WORK.
user_line=""; [ "$(id -u)" = 0 ] && user_line="user root;"
nginx_conf() { # name, then the server block
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1/body;
    proxy_temp_path $WORK/$1/proxy;
    fastcgi_temp_path $WORK/$1/fastcgi;
    uwsgi_temp_path $WORK/$1/uwsgi;
    scgi_temp_path $WORK/$1/scgi;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    sendfile on;
    tcp_nodelay on;
$2
}
EOF
}
nginx_conf origin "
    server {
        listen 127.0.0.1:$ORIGIN backlog=4096;
        root $WORK/html;
        location = /hello { default_type text/plain; return 200 \"hello\n\"; }
        location / { default_type application/octet-stream; }
    }"
nginx_conf proxy "
    upstream origin {
        server 127.0.0.1:$ORIGIN;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGX backlog=4096;
        listen 127.0.0.1:$NGX_TLS ssl http2 backlog=4096;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"

start() { # cpu log cmd...: sets LAST to the started process (exec'd, so $! is it)
  local cpu=$1 log=$2; shift 2
  (exec taskset -c "$cpu" "$@") > "$log" 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
}
wait_200() { # url
  for _ in $(seq 100); do
    [ "$(curl -sk -o /dev/null --max-time 1 -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.1
  done
  echo "proxy-vs-nginx: no 200 from $1" >&2
  exit 1
}
start "$LOAD_CPU" "$WORK/origin.out" "$NGINX" -c "$WORK/origin/nginx.conf" -e "$WORK/origin.log"
wait_200 "http://127.0.0.1:$ORIGIN/hello"
start "$PROXY_CPU" "$WORK/nginx.out" "$NGINX" -c "$WORK/proxy/nginx.conf" -e "$WORK/proxy.log"
NGX_PID=$LAST
start "$PROXY_CPU" "$WORK/ours.log" "$BIN" "127.0.0.1:$ORIGIN" "127.0.0.1:$OURS" \
  "127.0.0.1:$OURS_TLS" "$WORK/cert.pem" "$WORK/key.pem"
OURS_PID=$LAST
for url in "http://127.0.0.1:$NGX/hello" "https://127.0.0.1:$NGX_TLS/hello" \
  "http://127.0.0.1:$OURS/hello" "https://127.0.0.1:$OURS_TLS/hello"; do
  wait_200 "$url"
done
# Both must really speak h2 over TLS, and pass every body whole.
for port in "$NGX_TLS" "$OURS_TLS"; do
  got=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{size_download}' "https://127.0.0.1:$port/100k")
  [ "$got" = "2 102400" ] || { echo "proxy-vs-nginx: port $port answered '$got' for h2 /100k" >&2; exit 1; }
done

# CPU ticks of a process and its children (nginx: master and worker).
cpu_ticks() {
  local pid=$1 kids
  kids=$(cat "/proc/$pid/task/"*/children 2>/dev/null || true)
  for p in $pid $kids; do cat "/proc/$p/stat"; done |
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t }'
}
TICKS=$(getconf CLK_TCK)

cat > "$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(99), e.connect + e.read + e.write + e.timeout + e.status))
end
EOF

row_name=(x "H1 6 B, 50 conns" "H1 6 B, 1 conn" "H1 1 KiB, 50 conns" "H1 100 KiB, 50 conns"
  "H2 TLS 6 B, 50x10 streams" "H2 TLS 100 KiB, 50 conns" "H1 TLS 6 B, 50 conns")
row_tool=(x wrk wrk wrk wrk h2 h2 h1s)
row_path=(x /hello /hello /1k /100k /hello /100k /hello)
row_conns=(x 50 1 50 50 50 50 50)
row_streams=(x 1 1 1 1 10 1 1)

# load TOOL PATH CONNS STREAMS PORT SECS -> "requests seconds p99_us errors"
load() {
  local tool=$1 path=$2 conns=$3 streams=$4 port=$5 secs=$6 bound=$(($6 + 30))
  case $tool in
    wrk)
      timeout "$bound" taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s \
        -s "$WORK/report.lua" "http://127.0.0.1:$port$path" > "$WORK/load.out" 2>&1 || true
      awk '/^RESULT/ { printf "%d %.3f %d %d\n", $2, $3 / 1e6, $4, $5; f = 1 }
        END { if (!f) print "0 1 0 1" }' "$WORK/load.out"
      ;;
    h2 | h1s)
      local h1=""; [ "$tool" = h1s ] && h1=--h1
      rm -f "$WORK/h2.log"
      timeout "$bound" taskset -c "$LOAD_CPU" h2load $h1 -t1 -c"$conns" -m"$streams" -D"$secs" \
        --log-file="$WORK/h2.log" "https://127.0.0.1:$port$path" > "$WORK/load.out" 2>&1 || true
      local p99
      # The log has one line per request: start, status, microseconds.
      p99=$(awk -F'\t' '{ print $3 }' "$WORK/h2.log" 2>/dev/null | sort -n |
        awk '{ a[NR] = $1 } END { if (NR) print a[int(NR * 0.99 + 0.5) < 1 ? 1 : int(NR * 0.99 + 0.5)]; else print 0 }')
      awk -v p99="$p99" '
        /^finished in/ { secs = $3 + 0; if ($3 ~ /ms,$/) secs /= 1000 }
        /^requests:/ { ok = $8; errs = $10 + $12 }
        /^status codes:/ { bad = $5 + $7 + $9 }
        END { if (secs > 0) printf "%d %.3f %d %d\n", ok, secs, p99, errs + bad; else print "0 1 0 1" }' "$WORK/load.out"
      ;;
  esac
}

target_port() { # target row
  local tls=0; [ "${row_tool[$2]}" != wrk ] && tls=1
  case $1$tls in nginx0) echo "$NGX" ;; nginx1) echo "$NGX_TLS" ;; ours0) echo "$OURS" ;; ours1) echo "$OURS_TLS" ;; esac
}
target_pid() { [ "$1" = nginx ] && echo "$NGX_PID" || echo "$OURS_PID"; }

echo "proxy-vs-nginx: $(date -u '+%F %T UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $($NGINX -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(h2load --version | head -1)"
echo "  proxies on CPU $PROXY_CPU, load and origin on CPU $LOAD_CPU; ${DURATION}s per load, $REPS reps; ours: $BIN"

# Warm-up: connections, TLS sessions, pools and caches of both proxies.
for target in nginx ours; do
  for row in 1 5 7; do
    load "${row_tool[$row]}" /1k 10 1 "$(target_port $target $row)" "$WARMUP" > /dev/null
  done
done

printf 'rep\trow\ttarget\trps\tp99_us\tcpu_s\treq_per_cpu_s\terrors\n' > "$WORK/raw.tsv"
for rep in $(seq "$REPS"); do
  order="nginx ours"; [ $((rep % 2)) = 0 ] && order="ours nginx"
  for row in $ROWS; do
    for target in $order; do
      pid=$(target_pid $target)
      sleep 0.5
      before=$(cpu_ticks "$pid")
      read -r reqs secs p99 errs < <(load "${row_tool[$row]}" "${row_path[$row]}" "${row_conns[$row]}" \
        "${row_streams[$row]}" "$(target_port $target "$row")" "$DURATION")
      after=$(cpu_ticks "$pid")
      awk -v rep="$rep" -v row="$row" -v t="$target" -v n="$reqs" -v s="$secs" -v p="$p99" \
        -v e="$errs" -v used=$((after - before)) -v hz="$TICKS" 'BEGIN {
          cpu = used / hz
          printf "%d\t%d\t%s\t%.0f\t%d\t%.2f\t%.0f\t%d\n", rep, row, t, n / s, p, cpu, (cpu > 0 ? n / cpu : 0), e
        }' >> "$WORK/raw.tsv"
      tail -1 "$WORK/raw.tsv" | awk -F'\t' -v name="${row_name[$row]}" \
        '{ printf "  rep %d %-26s %-5s %8d req/s p99 %6d us, %5.2f CPU-s, %7d req/CPU-s, %d errors\n", $1, name, $3, $4, $5, $6, $7, $8 }' >&2
    done
  done
done

echo
awk -F'\t' -v names="$(printf '%s|' "${row_name[@]}")" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  BEGIN { split(names, name, "|") }
  NR > 1 {
    if (!($2 in seen)) { seen[$2] = 1; rows[++nrows] = $2 }
    k = $2 SUBSEP $3
    rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $5; rpc[k] = rpc[k] " " $7; err[k] += $8
    by[$1, $2, $3] = $7
    if ($3 == "ours") reps[$2] = reps[$2] " " $1
  }
  END {
    printf "%-26s | %8s %8s | %9s %9s | %7s %7s | %9s %9s\n", "row (medians)", "ngx rps", "our rps",
      "ngx rq/cs", "our rq/cs", "ngx p99", "our p99", "rq/cs o/n", "p99 o/n"
    for (r = 1; r <= nrows; r++) {
      row = rows[r]; kn = row SUBSEP "nginx"; ko = row SUBSEP "ours"
      paired = ""; n = split(reps[row], rl, " ")
      for (i = 1; i <= n; i++) if (by[rl[i], row, "nginx"] > 0) paired = paired " " by[rl[i], row, "ours"] / by[rl[i], row, "nginx"]
      np99 = median(p99[kn]); op99 = median(p99[ko])
      printf "%-26s | %8.0f %8.0f | %9.0f %9.0f | %7d %7d | %9.2f %9.2f%s\n", name[row + 1],
        median(rps[kn]), median(rps[ko]), median(rpc[kn]), median(rpc[ko]), np99, op99,
        (paired == "" ? 0 : median(paired)), (np99 > 0 ? op99 / np99 : 0),
        (err[kn] + err[ko] ? "  (errors: nginx " err[kn] + 0 ", ours " err[ko] + 0 ")" : "")
    }
    print "rq/cs = requests per proxy CPU-second; o/n = ours / nginx (rq/cs: median of the"
    print "per-rep ratios); p99 in microseconds."
  }' "$WORK/raw.tsv"
