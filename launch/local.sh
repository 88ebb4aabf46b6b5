#!/usr/bin/env bash
# Run a config on this machine with N MPI ranks (default: number of cores), one Torch thread each.
# Usage: launch/local.sh CONFIG.toml [N] [extra dne run options...]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
config=${1:?usage: launch/local.sh CONFIG.toml [N] [dne run options...]}
ranks=${2:-$(nproc)}
shift $(( $# >= 2 ? 2 : 1 ))
source "$here/scripts/mpi-env.sh"
# Ctrl-C: mpirun waits this many seconds, forwards SIGTERM, and SIGKILLs the ranks after as long
# again; dne stops cleanly in that time (docs/reliability.md "Signals under a launcher").
export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-10}
exec mpirun -n "$ranks" "$here/build/dne" run --config "$config" --set run.threads=1 "$@"
