// This process's place in the MPI job, and the two job-wide helpers every command needs before
// any experiment starts: world rank 0's work shared with every rank, and Torch threads per rank.
#pragma once

#include <functional>
#include <string>

#include "dne/config/config.hpp"

namespace dne::run {

/// MPI facts every command may need.
struct ProcessInfo {
  int rank = 0;
  int world_size = 1;
  int local_size = 1;  // ranks on this node
  int local_rank = 0;  // this rank's place among them (its GPU: local_rank % devices)
};

/// Runs `work` on world rank 0 only and shares its text with every rank (collective). An error
/// it throws reaches every rank as a PreflightError with the error's kind and exit code, so that
/// the job ends with one line from rank 0 and the same exit code everywhere (`context` prefixes
/// the message of an exception that is not a dne::Error, e.g. std::bad_alloc).
std::string on_rank0_shared(const ProcessInfo& process, const std::string& context, const std::function<std::string()>& work);

/// Torch threads for this rank: `requested` if > 0, else cores / ranks-on-node (at least 1).
int choose_threads(long requested, const ProcessInfo& process);

/// World rank 0 prints one line per former key name the config used (ConfigSource::deprecated):
/// "# deprecated: gezo.candidates is now zo.candidates (the same key; experiment ids do not change)".
void say_deprecated_keys(const config::ConfigSource& source, const ProcessInfo& process);

}  // namespace dne::run
