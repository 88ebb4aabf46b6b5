// The `dne` subcommands: run, pretrain, phantom, inspect, bench, serve (serve_command.cpp).
//
// Each command parses its own options with Boost.Program_options (the only module that knows
// Boost) and returns the process exit code. Errors are thrown as dne::Error subclasses and
// turned into one line by `main`.
#pragma once

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

/// Torch threads for this rank: `requested` if > 0, else cores / ranks-on-node (at least 1).
int choose_threads(long requested, const ProcessInfo& process);

}  // namespace dne::cli
