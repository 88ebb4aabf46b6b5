// The layout of an experiment's result file, DIR/experiments/<id>.h5, in one place (internal to
// the experiment module; docs/results-format.md is its description for readers): the root
// attributes, /provenance, /test, /examples, /metrics, /noise, /regions, /control, /selection,
// /poison, /trace, /progress, /embeddings and /timings.
#pragma once

#include <chrono>

#include "dne/experiment/experiment.hpp"

namespace dne::experiment {

struct ExperimentState;

/// Writes the finished experiment `s` to summary.path: a temporary name, flushed, renamed
/// (store::H5Writer). Sets summary.wall_s and /timings/total_s from `start`. Group rank 0 only.
void write_result_file(const ExperimentState& s, ExperimentSummary& summary, std::chrono::steady_clock::time_point start);

}  // namespace dne::experiment
