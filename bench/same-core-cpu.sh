#!/usr/bin/env bash
# Compare the CPU two running proxies spend per request, loading both at
# the same time so that a noisy moment on a shared machine hits both.
# Pin both proxies to the same core first (taskset -c 0 ...) and the
# origin to another; the two wrk run on the load core.
#
#   bench/same-core-cpu.sh [-p PATH] [-c CONNS] [-d SECS] [-n RUNS] [-l LOADCPU] \
#       NAME:PID:PORT NAME:PID:PORT
#
# PID is the process doing the work (for nginx, its worker). Prints, per
# run, each proxy's requests/s and CPU microseconds (user + system) per
# request. Latency is no use here: the two proxies take turns on the core.
set -euo pipefail
path=/hello conns=50 secs=4 runs=5 loadcpu=1
while getopts p:c:d:n:l: o; do
  case $o in
    p) path=$OPTARG ;; c) conns=$OPTARG ;; d) secs=$OPTARG ;; n) runs=$OPTARG ;; l) loadcpu=$OPTARG ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { sed -n '2,13p' "$0"; exit 2; }
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
out=$(mktemp -d /tmp/same-core-cpu.XXXXXX)
for run in $(seq "$runs"); do
  declare -A before=()
  for target in "$@"; do IFS=: read -r name pid port <<< "$target"; before[$name]=$(cpu_ticks "$pid"); done
  for target in "$@"; do
    IFS=: read -r name pid port <<< "$target"
    taskset -c "$loadcpu" wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port$path" > "$out/$name" &
  done
  wait
  line="run $run"
  for target in "$@"; do
    IFS=: read -r name pid port <<< "$target"
    requests=$(awk '/requests in/{print $1}' "$out/$name")
    used=$(( $(cpu_ticks "$pid") - ${before[$name]} ))
    line+=$(awk -v n="$name" -v r="$requests" -v u="$used" -v t="$ticks" -v d="$secs" \
      'BEGIN { printf " | %s %.0f req/s, %.2f us CPU/request", n, r / d, u / t * 1e6 / r }')
  done
  echo "$line"
done
rm -rf "$out"
