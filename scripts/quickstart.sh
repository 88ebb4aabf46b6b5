#!/usr/bin/env bash
# README command 1: set up, build, pretrain the ViT foundation model once (MAE on unlabelled
# phantom images; reused while its config is unchanged), and run the quickstart sweep on 2 MPI
# ranks: ERM, white-box DNE with the paper's objective, and white-box DNE in the configuration
# that works here, each DNE experiment beside its random control, on 2 seeds, on the built-in
# chest X-ray phantom. Then check every result file's metrics with the independent Python
# implementation and print the table, the paired differences and one line per configuration and
# fairness gap saying what to conclude.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
source scripts/mpi-env.sh
PY=$(scripts/find-python)
RANKS=${DNE_RANKS:-2}
echo "== dne pretrain: the MAE-pretrained ViT foundation model (kept while its config is unchanged)"
time mpirun -n "$RANKS" build/dne pretrain --config experiments/pretrain_phantom.toml --out runs/fm/vit_phantom.h5
echo "== dne run on $RANKS MPI ranks (1 Torch thread each)"
OUT=runs/first_run
time mpirun -n "$RANKS" build/dne run --config experiments/first_run.toml --out "$OUT"
"$PY" analysis/check_metrics.py "$OUT"/experiments/*.h5
"$PY" analysis/summarize.py "$OUT" --group --conclude
echo "== report (tables, figures, independent recomputation): $PY analysis/report.py $OUT"
