#!/usr/bin/env bash
# Run every benchmark in one go (peers side by side, ratios printed) and keep the
# output: bash benchmarks/run_all.sh [LOG]. Needs the bench extra:
#   pip install -e ".[all,bench]"
set -uo pipefail
cd "$(dirname "$0")/.."
log=${1:-benchmarks/last_run.log}
: > "$log"
for b in bench_g2 bench_gpa bench_columns bench_peaks bench_optics bench_kmc bench_stem_simulate bench_batch bench_registry_table; do
  echo "=== $b (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$log"
  python -W ignore "benchmarks/$b.py" 2>&1 | grep -v "distributed\|INFO\|WARNING" | tee -a "$log"
done
