// World rank 0's book of a running sweep: the index rows, DIR/index.h5 kept current, and the
// progress lines (done / running / failed / total, elapsed, ETA) for a batch log.
//
// The scheduler's coordinator thread calls `report` for every request of a group leader (a task
// finished, the next one started); each call rewrites index.h5 atomically and, after a finish,
// prints one progress line. The ETA weighs every experiment by a cost
// estimate (images through the FM, from its config), so a sweep of uneven experiments (GeZO
// local epochs 1 vs 10) gets a fair estimate: remaining cost / cost finished per second so far.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "dne/store/index_file.hpp"
#include "dne/sweep/scheduler.hpp"

namespace dne::sweep {

/// Counts for one progress line.
struct Progress {
  long done = 0;      // complete, resumed ones included
  long failed = 0, running = 0, total = 0;
  long resumed = 0;   // complete before this run started
  double elapsed_s = 0.0;
  double eta_s = -1.0;  // < 0: not known yet
};

/// "[progress] 5/12 complete (2 resumed), 1 failed, 2 running, 4 pending | elapsed 3m12s | ETA 1m05s"
std::string format_progress(const Progress& p);
/// 45s, 3m12s, 1h02m.
std::string format_duration(double seconds);
/// Remaining-time estimate: (cost pending + half the cost running) / (cost finished / elapsed);
/// negative when nothing has finished yet.
double estimate_eta(double cost_finished, double cost_running, double cost_pending, double elapsed_s);

class SweepLedger : public Observer {
 public:
  /// `rows` in task order (resumed rows already complete); `cost[i]` estimates task i's cost.
  SweepLedger(std::string index_path, store::IndexHeader header, std::vector<store::IndexRow> rows,
              std::vector<double> cost, std::ostream* progress);

  /// Mark the finished and started tasks, rewrite index.h5, print a line after a finish. An
  /// interrupted task (SIGTERM / SIGINT) goes back to pending: it has not failed.
  void report(const Report& report) override;

  /// Rewrite index.h5 (with header.finished set when `sweep_ended`, and header.stopped_by =
  /// `stopped_by`, e.g. "SIGTERM", when a signal ended it).
  void write(bool sweep_ended, const std::string& stopped_by = "");
  Progress progress() const;
  const std::vector<store::IndexRow>& rows() const { return rows_; }
  /// Largest exit code among the failures of this run (0 if none failed).
  int worst_exit_code() const { return worst_exit_code_; }

 private:
  std::string index_path_;
  store::IndexHeader header_;
  std::vector<store::IndexRow> rows_;
  std::vector<double> cost_;
  std::ostream* out_;
  int worst_exit_code_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace dne::sweep
