// What the modes of `dne bench` share (internal to the cli module): the median timer, and the
// modes that live in files of their own (bench_data.cpp: --data).
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "dne/cli/commands.hpp"
#include "dne/config/config.hpp"

namespace dne::cli {

/// Median seconds of `repeats` calls of `fn` after one warm-up call.
template <class Fn>
double median_seconds(int repeats, Fn&& fn) {
  using Clock = std::chrono::steady_clock;
  fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto t = Clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(Clock::now() - t).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// Data mode: how fast a manifest's image files become the run's image cache, against the floor
/// of reading the same files' bytes (with their CRC, which the content hash computes anyway):
/// decoding in one process on 1 thread and on every core; the job's path (build_image_caches:
/// every rank decodes every world_size-th row on one thread and writes it into one cache file),
/// timed on 1 rank and on all ranks of the job in the same run; the cache written once and read
/// back; the bytes an image takes; and the FM's embedding rate on images streamed from the
/// map against the same images in memory. Collective: run it under mpirun to see the rank scaling.
int bench_decoding(const config::ExperimentConfig& config, const std::string& csv, int repeats, const ProcessInfo& process);

}  // namespace dne::cli
