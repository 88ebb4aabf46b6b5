// The `dne` subcommands: run, pretrain, phantom, inspect, bench, serve (serve_command.cpp).
//
// Each command parses its own options with Boost.Program_options (the only module that knows
// Boost) and returns the process exit code. Errors are thrown as dne::Error subclasses and
// turned into one line by `main`.
#pragma once

#include <string>
#include <vector>

#include "dne/run/process.hpp"

namespace dne::cli {

/// MPI facts every command may need (run/process.hpp).
using run::ProcessInfo;

int command_run(const std::vector<std::string>& args, const ProcessInfo& process);
int command_phantom(const std::vector<std::string>& args, const ProcessInfo& process);
int command_pretrain(const std::vector<std::string>& args, const ProcessInfo& process);
int command_inspect(const std::vector<std::string>& args, const ProcessInfo& process);
int command_bench(const std::vector<std::string>& args, const ProcessInfo& process);
int command_serve(const std::vector<std::string>& args, const ProcessInfo& process);

}  // namespace dne::cli
