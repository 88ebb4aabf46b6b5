#!/usr/bin/env bash
# A sweep longer than a Slurm time limit, as a chain of jobs that resume it one after another.
#
#   bash launch/slurm-chain.sh JOBS [sbatch options ...] -- CONFIG.toml [dne run options ...]
#   e.g. bash launch/slurm-chain.sh 4 --time=04:00:00 -- experiments/figure2.toml
#
# Submits launch/slurm.sbatch JOBS times with the same arguments; job k + 1 depends on job k with
# --dependency=afternotok: it starts only if job k did not finish the sweep (its time limit hit
# it: state TIMEOUT; it was cancelled; it failed), and resumes where job k stopped (dne skips the
# complete experiments; the unfinished ones were left pending when SIGTERM came). When a job
# completes the sweep, --kill-on-invalid-dep=yes removes the rest of the chain from the queue.
# Prints the job ids, one per line. Cancel a whole chain with `scancel` on all of them (a
# cancelled job counts as not ok, so the next one would start otherwise).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jobs=${1:?usage: launch/slurm-chain.sh JOBS [sbatch options ...] -- CONFIG.toml [dne run options ...]}
shift
case "$jobs" in ''|*[!0-9]*|0) echo "slurm-chain: JOBS must be a positive integer, got '$jobs'" >&2; exit 2 ;; esac
sbatch_options=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do sbatch_options+=("$1"); shift; done
if [ $# -eq 0 ]; then echo "slurm-chain: missing '--' before CONFIG.toml" >&2; exit 2; fi
shift  # the --
[ $# -gt 0 ] || { echo "slurm-chain: missing CONFIG.toml after '--'" >&2; exit 2; }
previous=""
for _ in $(seq "$jobs"); do
  dependency=()
  if [ -n "$previous" ]; then dependency=(--dependency="afternotok:$previous" --kill-on-invalid-dep=yes); fi
  previous=$(sbatch --parsable "${sbatch_options[@]}" "${dependency[@]}" "$here/slurm.sbatch" "$@")
  previous=${previous%%;*}  # "id;cluster" on a multi-cluster site
  echo "$previous"
done
