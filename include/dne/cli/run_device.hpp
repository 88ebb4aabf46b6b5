// The device a `dne run` or `dne bench` rank uses, chosen alike on every rank: the machine's
// facts (LibTorch's CUDA, visible devices, NCCL) are agreed over the job and handed to
// config::resolve_run_settings (the rule itself, unit-tested there).
#pragma once

#include <string>
#include <vector>

#include "dne/cli/commands.hpp"
#include "dne/config/run_settings.hpp"

namespace dne::cli {

/// LibTorch's CUDA runtime version ("12.1"), or "none" for a CPU LibTorch.
std::string libtorch_cuda_version();

/// The run-wide keys `run` (device, backend, ...) resolved on every rank from facts
/// the job agrees on (a GPU counts only if every rank has one, NCCL only if every rank has it),
/// so that every rank of a group chooses alike; collective over MPI_COMM_WORLD. If the config
/// asks on some rank for what its machine lacks, every rank throws that rank's line
/// (PreflightError, exit 2), before anything is written.
config::RunSettings agreed_run_settings(const config::RunConfig& run, const std::vector<config::ExperimentConfig>& experiments,
                                        const ProcessInfo& process);

/// "cpu", or "cuda:0 (NVIDIA H200)" for /provenance and the benchmark's header.
std::string device_description(const config::RunSettings& settings);

}  // namespace dne::cli
