// The sweep index, DIR/index.h5: one row per experiment of a sweep, rewritten atomically (temporary
// name + rename) whenever an experiment starts or ends, so it can be read while the sweep runs.
//
// Layout (docs/results-format.md#the-sweep-index-indexh5): root attributes with the counts;
// /axes (n_axes,) strings; /experiments/<column> (N,) per column (id, status, error, file, method,
// editor_status, seed, wall_s, queries, ranks, resumed), /experiments/axes/<key> (N,) float64 or
// string, /key_methods/<key> the methods that read each axis key, /methods/{name,kind,trace_x}
// the method table (config/methods.hpp) so that analysis does not hard-code methods,
// /experiments/metrics/<name> (N,) float64 (NaN unless complete); /links/<id> are
// external links to the complete experiments' files. No Torch, no MPI.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace dne::store {

/// Version of the index layout.
inline constexpr int kIndexSchemaVersion = 1;

/// An axis value as stored: numbers (int, real, bool) as float64, text as string.
using IndexValue = std::variant<double, std::string>;

struct IndexRow {
  std::string id;
  std::string status = "pending";   // pending | running | complete | failed
  std::string error;                // one line when failed
  std::string file;                 // "experiments/<id>.h5" once complete
  std::string method;
  std::string editor_status;        // the file's root status ("complete", "budget: ...")
  std::int64_t seed = 0;
  double wall_s = std::numeric_limits<double>::quiet_NaN();
  std::int64_t queries = -1;
  std::int32_t ranks = 0;
  std::int32_t resumed = 0;         // 1: the file existed before this run started
  std::map<std::string, IndexValue> axes;
  std::map<std::string, double> metrics;
};

struct IndexHeader {
  std::string config_origin;
  std::vector<std::string> axes;    // sweep axis keys, in config order
  /// For every key of the rows' axes: the methods that read it (/key_methods/<key>).
  std::map<std::string, std::vector<std::string>> key_methods;
  /// The method table, in display order (/methods/name, /methods/kind, /methods/trace_x).
  std::vector<std::string> method_names, method_kinds, method_trace_x;
  std::int64_t world_size = 1;
  std::int64_t ranks_per_experiment = 1;
  std::int64_t groups = 1;
  bool finished = false;            // the sweep command has ended
  std::string stopped_by;           // "SIGTERM" / "SIGINT" when a signal stopped it; empty otherwise
  double elapsed_s = 0.0;           // seconds since this run of the sweep started
};

/// "experiments/<id>.h5": an experiment's file relative to the run directory (index rows, links,
/// experiment::experiment_path).
std::string experiment_file(const std::string& id);

/// Write the whole index to `path` atomically. Every row must carry the same axis keys.
void write_index(const std::string& path, const IndexHeader& header, const std::vector<IndexRow>& rows);

}  // namespace dne::store
