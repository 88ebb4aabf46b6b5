// The device a `dne run` or `dne bench` rank uses, chosen alike on every rank: the machine's
// facts (LibTorch's CUDA, visible devices, NCCL, where each rank's GPU sits) are agreed over the
// job and handed to config::resolve_run_settings (the rule itself, unit-tested there); the
// result is the rank's comm::DeviceChoice (its Torch device and its groups' communicator).
#pragma once

#include <vector>

#include "dne/comm/device_choice.hpp"
#include "dne/config/config.hpp"
#include "dne/run/process.hpp"

namespace dne::run {

/// The run-wide keys `run` (run.device, comm.backend, ...) resolved on every rank from facts the
/// job agrees on (a GPU counts only if every rank has one, NCCL only if every rank has it), so
/// that every rank of a group chooses alike; collective over MPI_COMM_WORLD. If the config asks
/// on some rank for what its machine lacks, every rank throws that rank's line (PreflightError,
/// exit 2), before anything is written.
comm::DeviceChoice agreed_device_choice(const config::RunConfig& run, const std::vector<config::ExperimentConfig>& experiments,
                                        const ProcessInfo& process);

}  // namespace dne::run
