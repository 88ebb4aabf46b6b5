// The sweep scheduler under a real `mpiexec -n N` (N = 1..4), with rank groups of 1 and 2, and the
// progress arithmetic (hand-computed lines and ETAs). Scheduler: every
// task is run exactly once, by every rank of one group; failures are recorded and the sweep goes
// on; leftover ranks run nothing; a single group follows the hand-out order. Expected values come
// from the task numbers, not from the scheduler's output. Tests never ASSERT between collectives.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/sweep/ledger.hpp"
#include "dne/sweep/scheduler.hpp"
#include "mpi_test_main.hpp"

namespace {

using dne_test::world_rank;
using dne_test::world_size;

using dne::sweep::GroupComm;
using dne::sweep::GroupLayout;
using dne::sweep::Outcome;

/// Rank 0's record of the coordinator's reports.
struct Recorder : dne::sweep::Observer {
  std::vector<int> finished, started;
  std::vector<Outcome> outcomes;
  std::vector<long> start_order;
  std::vector<std::pair<long, long>> events;  // (finished, started) of every report, in order
  explicit Recorder(std::size_t n) : finished(n, 0), started(n, 0), outcomes(n) {}
  void report(const dne::sweep::Report& r) override {
    events.emplace_back(r.finished, r.started);
    if (r.finished >= 0) {
      ++finished.at(static_cast<std::size_t>(r.finished));
      outcomes.at(static_cast<std::size_t>(r.finished)) = *r.outcome;
    }
    if (r.started >= 0) {
      ++started.at(static_cast<std::size_t>(r.started));
      start_order.push_back(r.started);
    }
  }
};

struct SweepRun {
  std::vector<int> ran_here;        // tasks this rank ran, in order
  std::vector<int> discarded;       // tasks this rank was asked to discard (leaders only)
  std::vector<int> runs_per_task;   // summed over group leaders (valid on rank 0)
  dne::sweep::ScheduleTotals totals;
  GroupLayout layout;
};

/// Run `n` tasks in groups of `k`; task t sleeps (t % 3) ms; `fail(t, group_rank)` says whether
/// the task throws on that rank.
SweepRun run_sweep(int k, std::size_t n, Recorder* recorder, const std::vector<std::size_t>& order,
                   const std::function<bool(std::size_t, int)>& fail = [](std::size_t, int) { return false; },
                   const std::function<void(std::size_t, int)>& before = {}) {
  SweepRun out;
  out.layout = dne::sweep::plan_groups(world_rank(), world_size(), k);
  GroupComm group(MPI_COMM_WORLD, out.layout);
  auto run_task = [&](std::size_t t) {
    out.ran_here.push_back(static_cast<int>(t));
    if (before) before(t, out.layout.group_rank);
    std::this_thread::sleep_for(std::chrono::milliseconds(t % 3));
    if (fail && fail(t, out.layout.group_rank)) {
      if (t == 5) throw dne::DataError("injected failure of task 5");  // bad input: exit code 2
      throw dne::NumericError("injected failure of task " + std::to_string(t));
    }
    Outcome o;
    o.ok = true;
    o.editor_status = "complete";
    o.queries = static_cast<std::int64_t>(t) * 10;
    o.metrics["task"] = static_cast<double>(t);
    return o;
  };
  auto discard = [&](std::size_t t) { out.discarded.push_back(static_cast<int>(t)); };
  out.totals = dne::sweep::run_dynamic(MPI_COMM_WORLD, out.layout, group.get(), order, run_task, recorder, {},
                                       discard);
  std::vector<int> mine(n, 0);
  if (out.layout.leader())
    for (int t : out.ran_here) ++mine[static_cast<std::size_t>(t)];
  out.runs_per_task.assign(n, 0);
  MPI_Reduce(mine.data(), out.runs_per_task.data(), static_cast<int>(n), MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  // Every rank of a group ran the same tasks in the same order: compare with the group leader's.
  if (group.get() != MPI_COMM_NULL) {
    int count = static_cast<int>(out.ran_here.size());
    int leader_count = count;
    MPI_Bcast(&leader_count, 1, MPI_INT, 0, group.get());
    std::vector<int> leader_tasks = out.ran_here;
    leader_tasks.resize(static_cast<std::size_t>(leader_count));
    MPI_Bcast(leader_tasks.data(), leader_count, MPI_INT, 0, group.get());
    EXPECT_EQ(leader_tasks, out.ran_here) << "rank " << world_rank() << " ran other tasks than its leader";
  }
  return out;
}

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

TEST(GroupLayout, PlanIsConsecutiveRanksWithLeftovers) {
  const auto a = dne::sweep::plan_groups(4, 5, 2);  // 5 ranks, k = 2: groups {0,1} {2,3}; rank 4 left over
  EXPECT_EQ(a.groups, 2);
  EXPECT_EQ(a.group, -1);
  EXPECT_FALSE(a.leader());
  const auto b = dne::sweep::plan_groups(3, 5, 2);
  EXPECT_EQ(b.group, 1);
  EXPECT_EQ(b.group_rank, 1);
  const auto c = dne::sweep::plan_groups(0, 1, 1);
  EXPECT_EQ(c.groups, 1);
  EXPECT_TRUE(c.leader());
  EXPECT_THROW(dne::sweep::plan_groups(0, 2, 3), dne::ConfigError);
  EXPECT_THROW(dne::sweep::plan_groups(0, 2, 0), dne::ConfigError);
}

TEST(Outcome, EncodeDecodeRoundTrip) {
  Outcome o;
  o.ok = false;
  o.error = "numeric error: loss is NaN";
  o.editor_status = "budget: stopped";
  o.wall_s = 1.25;
  o.queries = 123456789012;
  o.ranks = 3;
  o.metrics = {{"accuracy", 0.75}, {"eo_p", -0.0}};
  const auto d = dne::sweep::decode(dne::sweep::encode(o));
  EXPECT_EQ(d.ok, o.ok);
  EXPECT_EQ(d.error, o.error);
  EXPECT_EQ(d.editor_status, o.editor_status);
  EXPECT_EQ(d.wall_s, o.wall_s);
  EXPECT_EQ(d.queries, o.queries);
  EXPECT_EQ(d.ranks, o.ranks);
  EXPECT_EQ(d.metrics, o.metrics);
  EXPECT_FALSE(d.interrupted);
  o.interrupted = true;
  EXPECT_TRUE(dne::sweep::decode(dne::sweep::encode(o)).interrupted);
  EXPECT_THROW(dne::sweep::decode("\x01\x05"), dne::CommError);
}

TEST(Progress, DurationsAndLine) {
  EXPECT_EQ(dne::sweep::format_duration(0.4), "0s");
  EXPECT_EQ(dne::sweep::format_duration(59.6), "1m00s");
  EXPECT_EQ(dne::sweep::format_duration(192), "3m12s");
  EXPECT_EQ(dne::sweep::format_duration(3720), "1h02m");
  dne::sweep::Progress p;
  p.done = 5;
  p.resumed = 2;
  p.failed = 1;
  p.running = 2;
  p.total = 12;
  p.elapsed_s = 192;
  p.eta_s = 65;
  EXPECT_EQ(dne::sweep::format_progress(p),
            "[progress] 5/12 complete (2 resumed), 1 failed, 2 running, 4 pending | elapsed 3m12s | ETA 1m05s");
  p.eta_s = -1;
  EXPECT_NE(dne::sweep::format_progress(p).find("| ETA ?"), std::string::npos);
}

TEST(Progress, EtaIsRemainingCostOverObservedRate) {
  // 30 cost units finished in 60 s -> 0.5 / s; remaining 40 pending + half of 20 running = 50 -> 100 s.
  EXPECT_DOUBLE_EQ(dne::sweep::estimate_eta(30, 20, 40, 60), 100.0);
  EXPECT_LT(dne::sweep::estimate_eta(0, 20, 40, 60), 0.0);  // nothing finished yet: unknown
}

class Scheduler : public ::testing::TestWithParam<int> {};

TEST_P(Scheduler, EveryTaskRunsExactlyOnceOnEveryRankOfOneGroup) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  const std::size_t n = 11;
  Recorder recorder(n);
  const auto run = run_sweep(k, n, world_rank() == 0 ? &recorder : nullptr, iota(n));
  EXPECT_EQ(run.totals.tasks_run, static_cast<long>(n));
  EXPECT_EQ(run.totals.tasks_failed, 0);
  if (run.layout.group < 0) {
    EXPECT_TRUE(run.ran_here.empty()) << "leftover rank " << world_rank() << " ran tasks";
  }
  if (world_rank() == 0) {
    for (std::size_t t = 0; t < n; ++t) {
      EXPECT_EQ(run.runs_per_task[t], 1) << "task " << t;
      EXPECT_EQ(recorder.finished[t], 1) << "task " << t;
      EXPECT_EQ(recorder.started[t], 1) << "task " << t;
      EXPECT_TRUE(recorder.outcomes[t].ok);
      EXPECT_EQ(recorder.outcomes[t].queries, static_cast<std::int64_t>(t) * 10);
      EXPECT_EQ(recorder.outcomes[t].metrics["task"], static_cast<double>(t));
      EXPECT_EQ(recorder.outcomes[t].ranks, k);
      EXPECT_GE(recorder.outcomes[t].wall_s, 0.001 * static_cast<double>(t % 3));
    }
  }
}

TEST_P(Scheduler, FailedTaskIsRecordedAndTheSweepGoesOn) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  const std::size_t n = 7;
  Recorder recorder(n);
  // Task 2 fails on every rank of its group; task 5 only on group rank 1 (when groups have 2).
  const auto run = run_sweep(k, n, world_rank() == 0 ? &recorder : nullptr, iota(n),
                             [](std::size_t t, int group_rank) { return t == 2 || (t == 5 && group_rank == 1); });
  const long expected_failures = k > 1 ? 2 : 1;
  EXPECT_EQ(run.totals.tasks_run, static_cast<long>(n));
  EXPECT_EQ(run.totals.tasks_failed, expected_failures);
  if (world_rank() == 0) {
    for (std::size_t t = 0; t < n; ++t) EXPECT_EQ(run.runs_per_task[t], 1) << "task " << t;
    EXPECT_FALSE(recorder.outcomes[2].ok);
    EXPECT_EQ(recorder.outcomes[2].error, "numeric error: injected failure of task 2");
    EXPECT_EQ(recorder.outcomes[2].exit_code, 1);  // NumericError
    EXPECT_EQ(recorder.outcomes[5].ok, k == 1);
    if (k > 1) {  // the failing rank's own message and exit code reach the coordinator
      EXPECT_EQ(recorder.outcomes[5].error, "data error: injected failure of task 5");
      EXPECT_EQ(recorder.outcomes[5].exit_code, 2);
    }
    EXPECT_TRUE(recorder.outcomes[6].ok);
  }
  // Only a leader whose own run succeeded while its group failed discards (task 5 with k = 2).
  if (run.layout.leader() && k > 1) {
    const bool ran5 = std::find(run.ran_here.begin(), run.ran_here.end(), 5) != run.ran_here.end();
    EXPECT_EQ(run.discarded, ran5 ? std::vector<int>{5} : std::vector<int>{});
  } else {
    EXPECT_TRUE(run.discarded.empty());
  }
}

TEST_P(Scheduler, OneGroupFollowsTheHandOutOrderAndSkipsWhatIsNotListed) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  const std::size_t n = 6;
  const std::vector<std::size_t> order = {5, 0, 3};  // 1, 2, 4: "already complete"
  Recorder recorder(n);
  const auto run = run_sweep(k, n, world_rank() == 0 ? &recorder : nullptr, order);
  EXPECT_EQ(run.totals.tasks_run, 3);
  if (world_rank() == 0) {
    EXPECT_EQ(run.runs_per_task, (std::vector<int>{1, 0, 0, 1, 0, 1}));
    EXPECT_EQ(recorder.start_order, (std::vector<long>{5, 0, 3}));
  }
  if (run.layout.groups == 1 && run.layout.leader()) {
    EXPECT_EQ(run.ran_here, (std::vector<int>{5, 0, 3}));
  }
}

TEST_P(Scheduler, EmptyQueueEndsAtOnce) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  const auto run = run_sweep(k, 3, nullptr, {});
  EXPECT_EQ(run.totals.tasks_run, 0);
  EXPECT_TRUE(run.ran_here.empty());
}

TEST_P(Scheduler, AnInterruptedTaskStaysUnfinishedAndNothingIsHandedOutAfterIt) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  const std::size_t n = 11;
  Recorder recorder(n);
  // Task 3 is abandoned on the group's last rank (a stop request met at a cancellation point).
  const auto run = run_sweep(k, n, world_rank() == 0 ? &recorder : nullptr, iota(n), {}, [k](std::size_t t, int group_rank) {
    if (t == 3 && group_rank == k - 1) throw dne::Interrupted("SIGTERM received while embedding", SIGTERM);
  });
  EXPECT_EQ(run.totals.tasks_interrupted, 1);
  EXPECT_EQ(run.totals.tasks_failed, 0);
  EXPECT_LT(run.totals.tasks_run, static_cast<long>(n));
  EXPECT_EQ(run.totals.stop_signal, 0);  // no signal was received: only the task said so
  if (world_rank() == 0) {
    EXPECT_TRUE(recorder.outcomes[3].interrupted);
    EXPECT_FALSE(recorder.outcomes[3].ok);
    EXPECT_EQ(recorder.outcomes[3].exit_code, 128 + SIGTERM);
    bool after = false;  // every report after task 3's hands out nothing
    for (const auto& [finished, started] : recorder.events) {
      if (after) {
        EXPECT_EQ(started, -1) << "task " << started << " was handed out after the interruption";
      }
      after = after || finished == 3;
    }
    EXPECT_TRUE(after);
    for (std::size_t t = 0; t < n; ++t) EXPECT_EQ(recorder.started[t], recorder.finished[t]) << "task " << t;
  }
}

TEST_P(Scheduler, ASignalToRankZeroStopsTheHandingOut) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  const std::size_t n = 40;
  Recorder recorder(n);
  {
    const dne::StopOnSignal stop_on_signal;  // on every rank, as dne run installs it
    bool raised = false;  // world rank 0 signals itself in its first task (which then completes)
    const auto run = run_sweep(k, n, world_rank() == 0 ? &recorder : nullptr, iota(n), {}, [&](std::size_t, int) {
      if (world_rank() == 0 && !raised) {
        raised = true;
        std::raise(SIGTERM);
      }
    });
    EXPECT_EQ(run.totals.stop_signal, SIGTERM);  // on every rank
    EXPECT_EQ(run.totals.tasks_failed + run.totals.tasks_interrupted, 0);
    EXPECT_LT(run.totals.tasks_run, static_cast<long>(n));
    if (world_rank() == 0)
      for (std::size_t t = 0; t < n; ++t) {
        EXPECT_EQ(recorder.started[t], recorder.finished[t]) << "task " << t;
        if (recorder.finished[t]) {
          EXPECT_TRUE(recorder.outcomes[t].ok) << "task " << t;
        }
      }
  }
  EXPECT_EQ(dne::stop_signal(), 0);  // the request belonged to the StopOnSignal that is gone
}

/// An observer that fails on its third report, as a full disk under index.h5 would.
struct FailingObserver : dne::sweep::Observer {
  int reports = 0;
  void report(const dne::sweep::Report&) override {
    if (++reports == 3) throw dne::StoreError("index.h5: No space left on device");
  }
};

TEST_P(Scheduler, ABookkeepingFailureKeepsItsKindAndExitCodeOnEveryRank) {
  const int k = GetParam();
  if (k > world_size()) GTEST_SKIP() << "groups of " << k << " need " << k << " ranks";
  FailingObserver observer;
  const auto layout = dne::sweep::plan_groups(world_rank(), world_size(), k);
  GroupComm group(MPI_COMM_WORLD, layout);
  auto task = [](std::size_t) {
    Outcome o;
    o.ok = true;
    return o;
  };
  int code = 0;
  std::string kind, what;
  try {
    dne::sweep::run_dynamic(MPI_COMM_WORLD, layout, group.get(), iota(8), task, world_rank() == 0 ? &observer : nullptr);
  } catch (const dne::PreflightError& e) {
    code = e.exit_code();
    kind = e.kind();
    what = e.what();
  }
  EXPECT_EQ(code, 2);  // a StoreError's, on every rank (it used to be a StoreError whatever the cause)
  if (world_rank() == 0) {
    EXPECT_EQ(kind, "store error");
    EXPECT_EQ(what, "sweep bookkeeping failed: index.h5: No space left on device");
  }
}

INSTANTIATE_TEST_SUITE_P(GroupsOf, Scheduler, ::testing::Values(1, 2));

}  // namespace

int main(int argc, char** argv) { return dne_test::run_mpi_tests(argc, argv, "test_sweep"); }
