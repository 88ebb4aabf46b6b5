#!/usr/bin/env bash
# Per-rank environment, then exec the command: each rank sees only the GPU of its node-local rank
# (SLURM_LOCALID under srun, OMPI_COMM_WORLD_LOCAL_RANK under mpirun, MPI_LOCALRANKID under Hydra),
# round-robin over the node's GPUs. Without GPUs (nvidia-smi absent or listing none) it changes nothing.
set -euo pipefail
local_rank=${SLURM_LOCALID:-${OMPI_COMM_WORLD_LOCAL_RANK:-${MPI_LOCALRANKID:-0}}}
if [ -z "${CUDA_VISIBLE_DEVICES:-}" ] && command -v nvidia-smi >/dev/null 2>&1; then
  # Count "GPU n:" lines only (MIG devices are listed indented below their GPU); a failing
  # nvidia-smi (no driver, no device) counts 0 instead of ending the script.
  gpus=$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU ' || true)
  if [ "${gpus:-0}" -gt 0 ]; then
    export CUDA_VISIBLE_DEVICES=$(( local_rank % gpus ))
  fi
fi
exec "$@"
