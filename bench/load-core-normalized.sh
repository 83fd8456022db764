#!/usr/bin/env bash
# Re-read a proxy-bench.sh raw.csv with the load core as the yardstick.
#
#   bench/load-core-normalized.sh RAW.csv [CANDIDATE] [REFERENCE]
#
# On a shared machine the speed of both cores drifts from run to run by
# more than the difference between two proxies: a run that happens to be
# slow makes its proxy look costly. The other core (wrk plus the origin)
# does the same work per request whichever proxy sits in the middle (the
# same segments, reads, writes and wakeups per request: check with nstat
# and perf stat before trusting this), so its CPU time per request
# measures how fast the machine was during that run. Dividing each
# proxy's CPU per request by it takes most of the drift out. Where the
# load core's work does depend on the proxy (large bodies cut into
# segments differently, a proxy that adds segments or wakeups), the
# normalized column means nothing; so it does for a candidate that uses
# another origin than the script's.
#
# Prints, per scenario, the median over repetitions of
#   raw:        reference proxy CPU per request / candidate's, same rep
#   normalized: the same, each divided by its run's load-core CPU per request
# Above 1 means the candidate spends less CPU per request. Candidate and
# reference are target names from the CSV (default: ours, nginx).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,/^set -/{/^#/p}' "$0"; exit 2; }
raw=$1 cand=${2:-ours} ref=${3:-nginx}
printf "%-22s %5s %8s %11s   (%s / %s, CPU per request)\n" scenario reps raw normalized "$ref" "$cand"
awk -F, -v cand="$cand" -v ref="$ref" '
  function median(list,   a, n, i, j, x) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  NR == 1 { next }
  # columns: 1 rep, 2 scenario, 3 target, 4 requests, 13 proxy_cpu_s,
  # 17 origin_cpu_s, 18 loadgen_cpu_s
  $4 > 0 && ($3 == cand || $3 == ref) {
    key = $1 SUBSEP $2
    proxy[key, $3] = $13 / $4
    load[key, $3] = ($17 + $18) / $4
    seen[key] = $2
  }
  END {
    for (key in seen) {
      if (!((key, cand) in proxy) || !((key, ref) in proxy) || proxy[key, cand] == 0) continue
      r = proxy[key, ref] / proxy[key, cand]
      n = r * load[key, cand] / load[key, ref]
      s = seen[key]
      raws[s] = raws[s] " " r; norms[s] = norms[s] " " n; reps[s]++
    }
    for (s in reps) printf "%-22s %5d %8.3f %11.3f\n", s, reps[s], median(raws[s]), median(norms[s])
  }' "$raw" | sort
