// `dne run` after its options are parsed: the run-wide keys read once, the experiments
// expanded, every check and preparation made before anything is written (preflight.hpp), the
// device and communicator chosen alike on every rank (device_agreement.hpp), the world split into
// rank groups, and the experiments handed to the sweep driver (sweep/sweep_driver.hpp: resume,
// order, DIR/index.h5, the dynamic schedule, the exit code) with experiment::run_experiment as
// the callback. An experiment whose result file already exists with the same id is not run
// again, so re-running the same command resumes; an experiment that fails is recorded in the
// index and the sweep goes on; the exit code is then the largest failure's (2 when every failure
// was bad input, 1 otherwise), or 128 + signal after a stop.
#pragma once

#include "dne/config/config.hpp"
#include "dne/run/process.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::run {

/// What the command line asks of one `dne run`.
struct RunRequest {
  config::ConfigSource source;  // the config file, its --set overrides and --out, in that order
  bool dry_run = false;         // check everything, print the experiments, run nothing
  bool wait = false;            // queue behind another run holding the output directory
  bool quiet = false;           // no progress lines
  sweep::FaultInjection faults; // testing: --inject-kill
};

/// Runs the request on every rank of MPI_COMM_WORLD; returns the process exit code.
int run_job(const RunRequest& request, const ProcessInfo& process);

}  // namespace dne::run
