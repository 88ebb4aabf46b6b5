#!/usr/bin/env bash
# README command 2: set up, build, and run every test (GoogleTest + pytest through ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
source scripts/mpi-env.sh
(cd build && ctest --output-on-failure -j"${DNE_JOBS:-2}" "$@")
# The rehearsal of the GPU check (issue 26): its dependency check, the GPU tests' verdicts (skipped
# here, never failed) and the host-side rules of the GPU code, on the build above.
if [ $# -eq 0 ]; then bash scripts/gpu-check.sh --host-only --build build; fi
