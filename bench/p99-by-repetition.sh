#!/usr/bin/env bash
# Compare tail latency repetition by repetition in a proxy-bench.sh raw.csv.
#
#   bench/p99-by-repetition.sh RAW.csv [RAW.csv ...] [CANDIDATE [REFERENCE]]
#
# The p99 of one short wrk run is made by a few millisecond-long stalls
# (the scheduler, other tenants), so the median p99 of a dozen
# repetitions still swings by a fifth from one run of the script to the
# next. Pooled over many repetitions, a count is steadier: in how many was
# the candidate's p99 above the reference's, measured seconds apart in
# the same run? Several raw.csv files may be given; their repetitions are
# pooled (each file's repetition numbers pair only within that file).
#
# Prints, per scenario: repetitions, how many had the candidate's p99
# above the reference's, the median of the per-repetition ratios
# (candidate / reference), and the same count for p99/p50 (the width of
# the tail, which throughput does not set). Candidate and reference are
# target names from the CSV (default: ours, nginx).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,/^set -/{/^#/p}' "$0"; exit 2; }
files=() names=()
for arg in "$@"; do
  if [ -f "$arg" ]; then files+=("$arg"); else names+=("$arg"); fi
done
[ ${#files[@]} -ge 1 ] || { echo "no raw.csv given (or not found)" >&2; exit 2; }
cand=${names[0]:-ours} ref=${names[1]:-nginx}
printf "%-22s %5s %12s %12s %14s   (%s against %s)\n" scenario reps "p99 above" "p99 ratio" "p99/p50 wider" "$cand" "$ref"
awk -F, -v cand="$cand" -v ref="$ref" '
  function median(list,   a, n, i, j, x) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  FNR == 1 { file++; next }
  # columns: 1 rep, 2 scenario, 3 target, 7 p50_us, 9 p99_us
  ($3 == cand || $3 == ref) && $7 > 0 && $9 > 0 {
    key = file SUBSEP $1 SUBSEP $2
    p99[key, $3] = $9; p50[key, $3] = $7; seen[key] = $2
  }
  END {
    for (key in seen) {
      if (!((key, cand) in p99) || !((key, ref) in p99)) continue
      s = seen[key]; reps[s]++
      if (p99[key, cand] > p99[key, ref]) above[s]++
      if (p99[key, cand] / p50[key, cand] > p99[key, ref] / p50[key, ref]) wider[s]++
      ratios[s] = ratios[s] " " p99[key, cand] / p99[key, ref]
    }
    for (s in reps) printf "%-22s %5d %12s %12.3f %14s\n", s, reps[s], above[s] + 0 " of " reps[s], median(ratios[s]), wider[s] + 0 " of " reps[s]
  }' "${files[@]}" | sort
