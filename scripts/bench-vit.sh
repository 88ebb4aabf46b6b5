#!/usr/bin/env bash
# ViT benchmark tables for docs/performance.md (build first: scripts/build.sh):
#   1. forward throughput and achieved GFLOP/s against the GEMM floor measured in the same run,
#      for the phantom ViT (64x64, width 128, depth 4) and a ViT-B/16 at 224x224;
#   2. MAE pretraining throughput on 1 rank x 1 thread and 2 ranks x 1 thread, and their ratio.
# Usage: scripts/bench-vit.sh [pretrain steps]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
steps=${1:-20}
PHANTOM=(--set fm.kind=vit --set data.image_size=64 --set fm.embed_dim=128 --set fm.depth=4 --set fm.heads=4
         --set fm.patch_size=8)
B16=(--set fm.kind=vit --set data.image_size=224 --set fm.patch_size=16 --set fm.embed_dim=768 --set fm.depth=12
     --set fm.heads=12 --set fm.in_chans=3 --set fm.mean=0.485,0.456,0.406 --set fm.std=0.229,0.224,0.225
     --set fm.batch_size=8 --set dne.batch_size=4)
echo "== phantom ViT forward, 1 rank x 1 thread"
build/dne bench --threads 1 "${PHANTOM[@]}"
echo "== ViT-B/16 at 224x224 forward, 1 rank x 2 threads"
mpirun --bind-to none -n 1 build/dne bench --threads 2 --repeats 3 "${B16[@]}"
echo "== MAE pretraining of the phantom ViT"
out1=$(build/dne bench --pretrain --threads 1 --steps "$steps" "${PHANTOM[@]}")
echo "$out1"
out2=$(mpirun -n 2 build/dne bench --pretrain --threads 1 --steps "$steps" "${PHANTOM[@]}")
echo "$out2"
one=$(awk '/throughput/ {print $NF}' <<< "$out1")
two=$(awk '/throughput/ {print $NF}' <<< "$out2")
echo "pretraining images/s: 1 rank $one, 2 ranks $two, speed-up $(awk -v a="$one" -v b="$two" 'BEGIN {printf "%.2f", b / a}')x"
