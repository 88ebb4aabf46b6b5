// `dne data`: data-set utilities. `dne data import` writes a manifest CSV from CheXpert,
// MIMIC-CXR-JPG or NIH ChestX-ray14 in their published layouts (data/importers.hpp,
// docs/datasets.md). Torch-free: the work is done by dne_base.
#pragma once

#include <string>
#include <vector>

#include "dne/cli/commands.hpp"

namespace dne::cli {

/// `dne data <subcommand> ...` (args without "data"). Returns the exit code; throws
/// dne::ConfigError for bad options and dne::DataError for bad dataset files (exit 2 via main).
int command_data(const std::vector<std::string>& args, const ProcessInfo& process);

}  // namespace dne::cli
