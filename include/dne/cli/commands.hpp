// The `dne` subcommands: run, pretrain, phantom, inspect, bench, serve (serve_command.cpp).
//
// Each command parses its own options with Boost.Program_options (the only module that knows
// Boost) and returns the process exit code. Errors are thrown as dne::Error subclasses and
// turned into one line by `main`.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace dne::cli {

/// MPI facts every command may need.
struct ProcessInfo {
  int rank = 0;
  int world_size = 1;
  int local_size = 1;  // ranks on this node
  int local_rank = 0;  // this rank's place among them (its GPU: local_rank % devices)
};

int command_run(const std::vector<std::string>& args, const ProcessInfo& process);
int command_phantom(const std::vector<std::string>& args, const ProcessInfo& process);
int command_pretrain(const std::vector<std::string>& args, const ProcessInfo& process);
int command_inspect(const std::vector<std::string>& args, const ProcessInfo& process);
int command_bench(const std::vector<std::string>& args, const ProcessInfo& process);
int command_serve(const std::vector<std::string>& args, const ProcessInfo& process);

/// Runs `work` on world rank 0 only and shares its text with every rank (collective). An error
/// it throws reaches every rank as a PreflightError with the error's kind and exit code, so that
/// the job ends with one line from rank 0 and the same exit code everywhere (`context` prefixes
/// the message of an exception that is not a dne::Error, e.g. std::bad_alloc).
std::string on_rank0_shared(const ProcessInfo& process, const std::string& context, const std::function<std::string()>& work);

/// Torch threads for this rank: `requested` if > 0, else cores / ranks-on-node (at least 1).
int choose_threads(long requested, const ProcessInfo& process);

}  // namespace dne::cli
