// The sweep driver of `dne run` (see sweep_driver.hpp).
#include "dne/sweep/sweep_driver.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/core/text.hpp"
#include "dne/store/result_file.hpp"
#include "dne/sweep/ledger.hpp"
#include "dne/sweep/run_lock.hpp"

namespace dne::sweep {
namespace {

/// World rank 0 after the sweep: final index.h5, the summary line, one stderr line if any failed.
int finish_sweep(SweepLedger& ledger, const ScheduleTotals& totals, double wall, int groups, const std::string& index_path) {
  ledger.write(true);
  const auto p = ledger.progress();
  double busy = 0.0;  // sum of the experiment times of this run
  for (const auto& r : ledger.rows())
    if (!r.resumed && std::isfinite(r.wall_s)) busy += r.wall_s;
  std::ostringstream line;
  line << "dne run: " << p.done << "/" << p.total << " complete (" << p.resumed << " already complete, "
       << totals.tasks_run - totals.tasks_failed << " run now), " << p.failed << " failed; wall " << format_duration(wall);
  if (totals.tasks_run > 0)
    line << ", makespan " << std::fixed << std::setprecision(2) << wall / (busy / groups)
         << "x the ideal (sum of experiment times / " << groups << " group(s))";
  line << "; index " << index_path;
  std::cout << line.str() << std::endl;
  if (p.failed == 0) return 0;
  // One line on stderr: the first failure, how many failed, where they are all listed.
  for (const auto& r : ledger.rows())
    if (r.status == "failed") {
      std::cerr << "dne: " << r.error << " (experiment " << r.id << "; " << p.failed << " of " << p.total
                << " failed, all listed in " << index_path << ")" << std::endl;
      break;
    }
  return ledger.worst_exit_code() > 0 ? ledger.worst_exit_code() : 1;
}

/// World rank 0 after a sweep that a signal stopped: every rank has left the sweep, so no writer
/// is alive; index.h5 is finished with the unfinished rows pending and stopped_by set, leftover
/// temporary files are removed, and one line on stderr says what happened. Returns 128 + signal.
int finish_stopped_sweep(SweepLedger& ledger, const ScheduleTotals& totals, const std::string& out_dir,
                         const std::string& index_path) {
  const std::string name = signal_name(totals.stop_signal);
  ledger.write(true, name);
  const auto removed = remove_stale_temporaries(out_dir);
  const auto p = ledger.progress();
  std::ostringstream line;
  line << "dne: stopped by " << name << ": " << p.done << "/" << p.total << " complete (" << p.resumed
       << " already complete, " << totals.tasks_run - totals.tasks_failed - totals.tasks_interrupted << " run now), "
       << p.failed << " failed, " << p.total - p.done - p.failed << " pending (" << totals.tasks_interrupted
       << " interrupted)";
  if (!removed.empty()) line << ", " << removed.size() << " temporary file(s) removed";
  line << "; rerun the same command to resume; index " << index_path;
  std::cerr << line.str() << std::endl;
  return 128 + totals.stop_signal;
}

}  // namespace

store::IndexRow resume_row(const SweepTask& task, std::ostream* log) {
  store::IndexRow row = task.row;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(task.path, ec)) return row;
  try {
    const auto record = store::read_experiment_record(task.path);
    if (record.id != row.id) return row;
    // output.save_embeddings is not in the id (it changes no result): a file written without the
    // embeddings it now asks for is redone, so that the rerun delivers them.
    if (task.needs_embeddings && !store::H5Reader(task.path).exists("/embeddings")) return row;
    try {
      store::verify_file(task.path);  // every dataset's checksum: a corrupt file is redone
    } catch (const StoreError& e) {
      if (log != nullptr) *log << "# " << valid_utf8(e.what()) << "; computing it again\n" << std::flush;
      return row;
    }
    row.status = "complete";
    row.resumed = 1;
    row.file = store::experiment_file(row.id);
    row.editor_status = record.status;
    row.metrics = record.metrics;
    row.wall_s = record.wall_s;
    row.queries = record.queries;
    row.ranks = record.ranks;
  } catch (const StoreError&) {  // unreadable: computed again
  }
  return row;
}

int run_sweep(const SweepSetup& setup, const std::vector<SweepTask>& tasks,
              const std::function<Outcome(std::size_t)>& run_task, const std::function<void(std::size_t)>& discard) {
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(setup.world, &world_rank);
  MPI_Comm_size(setup.world, &world_size);
  // Rank 0 books the sweep: rows (resumed ones read from their files), index.h5, progress.
  const std::string index_path = (std::filesystem::path(setup.out_dir) / "index.h5").string();
  std::unique_ptr<SweepLedger> ledger;
  std::vector<std::size_t> order;
  if (world_rank == 0) {
    std::vector<store::IndexRow> rows;
    std::vector<double> cost;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      rows.push_back(resume_row(tasks[i], &std::cout));
      cost.push_back(tasks[i].cost);
      if (rows.back().status != "complete") order.push_back(i);
    }
    // Most expensive first (longest-processing-time rule): the uneven tail finishes sooner.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
    store::IndexHeader header = setup.header;
    header.world_size = world_size;
    header.ranks_per_experiment = setup.layout.ranks_per_group;
    header.groups = setup.layout.groups;
    ledger = std::make_unique<SweepLedger>(index_path, header, std::move(rows), std::move(cost), setup.progress);
    ledger->write(false);
    if (setup.progress != nullptr)
      *setup.progress << format_progress(ledger->progress()) + " | index " + index_path + "\n" << std::flush;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto totals = run_dynamic(setup.world, setup.layout, setup.group, order, run_task, ledger.get(), setup.faults, discard);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Rank 0 writes the final index and the summary; every rank then returns its exit code.
  int exit_code = 0;
  if (world_rank == 0)
    exit_code = totals.stop_signal != 0 ? finish_stopped_sweep(*ledger, totals, setup.out_dir, index_path)
                                        : finish_sweep(*ledger, totals, wall, setup.layout.groups, index_path);
  MPI_Bcast(&exit_code, 1, MPI_INT, 0, setup.world);
  return exit_code;
}

}  // namespace dne::sweep
