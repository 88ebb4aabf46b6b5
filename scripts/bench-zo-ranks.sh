#!/usr/bin/env bash
# Rank-group scaling of a zeroth-order editor (issue 24): wall time per query with 1, 2 and 4
# ranks per group, in one run, as ratios against 1 rank. A simulated API latency per call
# (api.latency_ms) makes the API, not this machine's 2 cores, the bottleneck, as a remote
# foundation model would; the FM is the phantom ViT's architecture (random weights: the cost is
# the same). The group shares each step's 2q evaluations (comm.split = candidates).
# Usage: scripts/bench-zo-ranks.sh [method] [latency_ms] [steps]   (build first: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
method=${1:-nes}
latency=${2:-200}
steps=${3:-3}
common=(--zo "$method" --threads 1 --steps "$steps"
        --set fm.kind=vit --set fm.embed_dim=128 --set fm.patch_size=8 --set fm.depth=4 --set fm.heads=4
        --set data.image_size=64 --set dne.batch_size=10 --set zo.candidates=16
        --set dne.noise_basis=dct --set dne.noise_dim=8 --set "api.latency_ms=$latency")
printf '%-6s %16s %16s %10s\n' ranks "ms per query" "images/s" "ratio"
base=""
for ranks in 1 2 4; do
  out=$(mpirun --bind-to none -n "$ranks" build/dne bench "${common[@]}")
  per_query=$(awk -F'  +' '/wall time per query/ {print $NF}' <<<"$out" | tr -d ' ')
  throughput=$(awk -F'  +' '/group throughput/ {print $NF}' <<<"$out" | tr -d ' ')
  base=${base:-$per_query}
  printf '%-6s %16s %16s %10.3f\n' "$ranks" "$per_query" "$throughput" "$(awk -v a="$per_query" -v b="$base" 'BEGIN {print a / b}')"
done
echo "(${method}, q = 16 antithetic pairs of 10 images per step, dct 8x8 basis, api.latency_ms = ${latency}, ${steps} steps; ratio: time per query / 1 rank's)"
