// The sweep driver of `dne run`: which experiments are already done (resume), the order of the
// rest, the ledger (index.h5 and the progress lines), the dynamic schedule over rank groups, and
// the end (the summary line, or the stop line after SIGTERM / SIGINT) with the exit code every
// rank returns. The experiment itself is a callback, so the driver knows nothing of Torch or
// of configs: run/run_job.cpp turns each experiment into a `SweepTask` and runs it.
#pragma once

#include <mpi.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "dne/store/index_file.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::sweep {

/// One experiment as the driver sees it.
struct SweepTask {
  store::IndexRow row;            // pending: id, method, seed, axes
  std::string path;               // its result file
  bool needs_embeddings = false;  // output.save_embeddings: a file without /embeddings is redone
  double cost = 1.0;              // estimated cost: most expensive first, and the ETA
};

/// The task's row: complete, with its stored results, when its file exists, carries the same id,
/// holds the embeddings the task needs and passes store::verify_file; pending otherwise (a
/// corrupt file is said on `log` and computed again).
store::IndexRow resume_row(const SweepTask& task, std::ostream* log);

struct SweepSetup {
  MPI_Comm world = MPI_COMM_WORLD;
  GroupLayout layout;
  MPI_Comm group = MPI_COMM_NULL;  // this rank's group (GroupComm), MPI_COMM_NULL for a leftover rank
  store::IndexHeader header;       // rank 0: the sweep's description (the driver adds the layout)
  std::string out_dir;             // DIR: DIR/index.h5, and the temporary files removed after a stop
  std::ostream* progress = nullptr;  // rank 0's progress and summary lines; nullptr: quiet
  FaultInjection faults;
};

/// Collective over `setup.world`: runs every task that is not complete (`run_task(i)` on every
/// rank of a group; `discard(i)` on the leader when its group failed after it wrote the file)
/// and returns the run's exit code on every rank: 0 when all are complete, the largest failure's
/// code (2 when every failure was bad input, else 1), or 128 + signal when SIGTERM / SIGINT
/// stopped it (sweep/scheduler.hpp). Only rank 0's `tasks` are read.
int run_sweep(const SweepSetup& setup, const std::vector<SweepTask>& tasks,
              const std::function<Outcome(std::size_t)>& run_task, const std::function<void(std::size_t)>& discard);

}  // namespace dne::sweep
