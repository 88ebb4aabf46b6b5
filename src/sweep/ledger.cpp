// Sweep ledger and progress lines (see ledger.hpp).
#include "dne/sweep/ledger.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dne::sweep {

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%lds", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  return buf;
}

std::string format_progress(const Progress& p) {
  std::string line = "[progress] " + std::to_string(p.done) + "/" + std::to_string(p.total) + " complete";
  if (p.resumed > 0) line += " (" + std::to_string(p.resumed) + " resumed)";
  line += ", " + std::to_string(p.failed) + " failed, " + std::to_string(p.running) + " running, " +
          std::to_string(p.total - p.done - p.failed - p.running) + " pending";
  line += " | elapsed " + format_duration(p.elapsed_s);
  line += " | ETA " + (p.eta_s < 0 ? std::string("?") : format_duration(p.eta_s));
  return line;
}

double estimate_eta(double cost_finished, double cost_running, double cost_pending, double elapsed_s) {
  if (cost_finished <= 0.0 || elapsed_s <= 0.0) return -1.0;
  const double rate = cost_finished / elapsed_s;
  return (cost_pending + 0.5 * cost_running) / rate;
}

SweepLedger::SweepLedger(std::string index_path, store::IndexHeader header, std::vector<store::IndexRow> rows,
                         std::vector<double> cost, std::ostream* progress)
    : index_path_(std::move(index_path)),
      header_(std::move(header)),
      rows_(std::move(rows)),
      cost_(std::move(cost)),
      out_(progress) {}

void SweepLedger::report(const Report& report) {
  if (report.finished >= 0 && report.outcome != nullptr) {
    const Outcome& outcome = *report.outcome;
    auto& row = rows_.at(static_cast<std::size_t>(report.finished));
    if (outcome.interrupted) {
      row.status = "pending";  // abandoned at a cancellation point: a rerun computes it
    } else {
      row.status = outcome.ok ? "complete" : "failed";
      row.error = outcome.ok ? "" : outcome.error;
      row.wall_s = outcome.wall_s;
      row.ranks = outcome.ranks;
      if (!outcome.ok) worst_exit_code_ = std::max(worst_exit_code_, std::max(1, outcome.exit_code));
    }
    if (outcome.ok) {
      row.file = store::experiment_file(row.id);
      row.editor_status = outcome.editor_status;
      row.queries = outcome.queries;
      row.metrics = outcome.metrics;
    }
  }
  if (report.started >= 0) rows_.at(static_cast<std::size_t>(report.started)).status = "running";
  write(false);
  if (out_ != nullptr && report.finished >= 0 && report.outcome != nullptr) {
    const auto& row = rows_.at(static_cast<std::size_t>(report.finished));
    std::string line = format_progress(progress());
    if (row.status == "failed") line += " | failed: " + row.id + ": " + row.error;
    if (report.outcome->interrupted) line += " | interrupted: " + row.id + " (pending)";
    *out_ << line + "\n" << std::flush;  // one write per line: readable when ranks share a log
  }
}

void SweepLedger::write(bool sweep_ended, const std::string& stopped_by) {
  header_.finished = sweep_ended;
  header_.stopped_by = stopped_by;
  header_.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  store::write_index(index_path_, header_, rows_);
}

Progress SweepLedger::progress() const {
  Progress p;
  p.total = static_cast<long>(rows_.size());
  double cost_done = 0.0, cost_running = 0.0, cost_pending = 0.0;
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    const auto& r = rows_[i];
    const double c = i < cost_.size() ? cost_[i] : 1.0;
    if (r.status == "complete" || r.status == "failed") {
      ++(r.status == "failed" ? p.failed : p.done);
      if (r.resumed) ++p.resumed;
      else if (r.status == "complete") cost_done += c;  // a quick failure says nothing about the rate
    } else if (r.status == "running") {
      ++p.running;
      cost_running += c;
    } else {
      cost_pending += c;
    }
  }
  p.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  p.eta_s = estimate_eta(cost_done, cost_running, cost_pending, p.elapsed_s);
  return p;
}

}  // namespace dne::sweep
