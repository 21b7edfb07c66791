#!/usr/bin/env bash
# Alternating A/B(/C…) of release `tailgate` binaries with the same load generator:
# `tailgate-perf scenario throughput --target passthrough --target agent --target gateway`, N rounds,
# each round running every binary once in turn; prints every run's spans per CPU-second and the
# medians. Run it on a quiet machine (nothing else building); compare medians with the spread of an
# A/A run (the same binary twice).
#
#   scripts/ab-throughput.sh 5 /tmp/tailgate-base /tmp/tailgate-new
#   PERF=target/release/tailgate-perf scripts/ab-throughput.sh 5 A B C
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?usage: scripts/ab-throughput.sh ROUNDS BIN...}
shift
[ "$#" -ge 1 ] || { echo "usage: scripts/ab-throughput.sh ROUNDS BIN..." >&2; exit 2; }
perf=${PERF:-target/release/tailgate-perf}
[ -x "$perf" ] || cargo build --release -p tailgate-perf
log=$(mktemp)
for round in $(seq 1 "$rounds"); do
  for i in $(seq 1 "$#"); do
    bin=${!i}
    echo "=== round $round binary $i $bin" | tee -a "$log"
    TAILGATE_BIN=$bin "$perf" scenario throughput --target passthrough --target agent --target gateway --quiet \
      | grep '^| tailgate' | tee -a "$log"
  done
done
python3 - "$log" "$@" <<'PY'
import re, statistics, sys
log, bins = sys.argv[1], sys.argv[2:]
runs, cur = {}, None
for line in open(log):
    m = re.match(r"=== round \d+ binary (\d+)", line)
    if m:
        cur = int(m.group(1)); continue
    m = re.match(r"\| tailgate (\w+) .*\*\*(\d+)\*\*", line)
    if m:
        runs.setdefault((m.group(1), cur), []).append(int(m.group(2)) / 1e6)
print("\nM spans per CPU-second, median (runs):")
for target in ("passthrough", "agent", "gateway"):
    for i, b in enumerate(bins, 1):
        xs = runs.get((target, i), [])
        if xs:
            print(f"{target:12} {b}: {statistics.median(xs):.2f}  ({' '.join(f'{x:.2f}' for x in xs)})")
PY
rm -f "$log"
