// Dynamic scheduling of a sweep's experiments over MPI rank groups.
//
// The world is split into groups of k consecutive ranks (`plan_groups`, `GroupComm`);
// world % k leftover ranks form no group and wait. Experiments are handed out dynamically: a
// coordinator thread on world rank 0 holds the queue, and the leader (group rank 0) of a free
// group asks it for the next task, broadcasts the answer to its group, and after the task reports
// the outcome back. World rank 0 is also a worker like any other rank, so no rank is lost to
// coordination; the coordinator sleeps between polls and costs no measurable CPU. Needs
// MPI_THREAD_MULTIPLE (Open MPI and MPICH provide it).
//
// Failure isolation: `run_task` is called on every rank of the group; an exception it throws is
// caught on that rank and turned into a failed Outcome, so a failing experiment is recorded and
// the sweep goes on. The group then agrees on the outcome (the lowest failing rank's error is
// the one reported). This relies on errors being met by every rank of the group at the same
// point (a NaN loss is all-reduced, data and config are read by every rank); an error on one rank
// in the middle of a group collective would leave its peers waiting, and a killed rank ends the
// job (mpirun), losing only the tasks in flight. No Torch and no HDF5 here.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dne::sweep {

/// What one task produced, as the group leader reports it to the coordinator.
struct Outcome {
  bool ok = false;
  std::string error;           // one line, when !ok
  int exit_code = 0;           // the error's exit code (2: bad input, 1: runtime), when !ok
  std::string editor_status;   // the experiment's own status ("complete", "budget: ...")
  double wall_s = 0.0;         // seconds the group spent on the task
  std::int64_t queries = -1;
  int ranks = 0;               // size of the group that ran it
  std::map<std::string, double> metrics;
  bool interrupted = false;    // stopped by SIGTERM / SIGINT (an Interrupted error): not a failure, the task stays pending
  bool peer = false;           // the failure was a PeerFailure (local to the rank: not encoded)
};

/// Byte encoding of an Outcome for an MPI message (exposed for tests).
std::string encode(const Outcome& outcome);
Outcome decode(const std::string& bytes);

/// Rank-group layout of one rank: groups of `ranks_per_group` consecutive world ranks.
struct GroupLayout {
  int ranks_per_group = 1;
  int groups = 1;
  int group = -1;           // this rank's group; -1 for a leftover rank
  int group_rank = -1;      // rank inside the group
  bool leader() const { return group_rank == 0; }
};

/// Pure arithmetic of the layout (tested without MPI). ConfigError if k < 1 or k > world_size.
GroupLayout plan_groups(int world_rank, int world_size, int ranks_per_group);

/// Broadcasts `text` from `root` to every rank of `comm` (its length, then its bytes), waiting
/// with short sleeps instead of spinning, so that ranks waiting for the root's preflight leave
/// the node's cores to it.
void broadcast_politely(MPI_Comm comm, std::string& text, int root);

/// The smallest `value` over the ranks of `comm` and the lowest rank that holds it (MINLOC),
/// waiting with short sleeps like broadcast_politely (ranks done early leave the cores to the rest).
std::pair<long, int> min_location_politely(MPI_Comm comm, long value);

/// MPI_Comm_split of `world` by `layout.group`; owns the communicator (MPI_COMM_NULL for leftovers).
class GroupComm {
 public:
  GroupComm(MPI_Comm world, const GroupLayout& layout);
  ~GroupComm();
  GroupComm(const GroupComm&) = delete;
  GroupComm& operator=(const GroupComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

/// One request a group leader made: the task it finished (with its outcome) and the one it got.
struct Report {
  int group = 0;
  long finished = -1;          // task just finished, -1 on the group's first request
  const Outcome* outcome = nullptr;  // set with `finished`
  long started = -1;           // task handed out now, -1 when the queue is empty
};

/// Receives the coordinator's events on world rank 0, from the coordinator thread, one at a time.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void report(const Report& report) = 0;
};

/// Test-only fault injection: world rank `kill_rank` raises SIGKILL on itself when it is about to
/// start its (kill_after + 1)-th task, as a crashed node would.
struct FaultInjection {
  int kill_rank = -1;
  int kill_after = 0;
};

struct ScheduleTotals {
  long tasks_run = 0;     // tasks handed out (ok, failed or interrupted)
  long tasks_failed = 0;
  long tasks_interrupted = 0;
  int stop_signal = 0;    // the signal that stopped the sweep on any rank (0: none)
};

/// Run the tasks `order` (task numbers, handed out in this order) on the rank groups; collective
/// over `world` (every rank calls it; only world rank 0's `order` and `observer` are used).
/// `run_task(task)` runs on every rank of the group. When it succeeded on the leader but failed
/// on another rank of the group, the leader calls `discard(task)` (e.g. to remove the result file
/// it wrote). Returns the world-wide totals on every rank. CommError if MPI was not initialised
/// with MPI_THREAD_MULTIPLE.
///
/// Stopping (core/stop_signal.hpp): once world rank 0 or a reporting leader has received
/// SIGTERM / SIGINT, or a task comes back interrupted, no task is handed out any more; the
/// groups still at work finish their task or abandon it at its next cancellation point, and
/// run_dynamic returns normally with `stop_signal` set on every rank.
///
/// A failure of the bookkeeping itself (the observer threw, a malformed message) stops the
/// handing out too; every rank then throws the error with its own kind and exit code (a
/// PreflightError: rank 0 has the message, main prints it once).
ScheduleTotals run_dynamic(MPI_Comm world, const GroupLayout& layout, MPI_Comm group,
                           const std::vector<std::size_t>& order,
                           const std::function<Outcome(std::size_t task)>& run_task, Observer* observer,
                           const FaultInjection& faults = {},
                           const std::function<void(std::size_t task)>& discard = {});

}  // namespace dne::sweep
