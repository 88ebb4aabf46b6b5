#!/usr/bin/env bash
# README command 1: set up, build, and run the quickstart sweep (ERM vs white-box DNE on the
# built-in chest X-ray phantom) on 2 MPI ranks; then check every result file's metrics with the
# independent Python implementation and print a summary table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
source scripts/mpi-env.sh
PY=$(scripts/find-python)
RANKS=${DNE_RANKS:-2}
echo "== dne run on $RANKS MPI ranks (1 Torch thread each)"
OUT=runs/quickstart
time mpirun -n "$RANKS" build/dne run --config experiments/quickstart.toml --out "$OUT"
"$PY" analysis/check_metrics.py "$OUT"/experiments/*.h5
"$PY" analysis/summarize.py "$OUT"
echo "== report (tables, figures, independent recomputation): $PY analysis/report.py $OUT"
