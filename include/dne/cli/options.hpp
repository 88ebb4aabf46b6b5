// Option parsing shared by the `dne` subcommands: Boost.Program_options errors become
// ConfigError, and a TOML config plus its --set overrides become a ConfigSource.
#pragma once

#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "dne/config/config.hpp"

namespace dne::cli {

/// Parse `args` against `options`; Boost's errors become ConfigError naming the option.
boost::program_options::variables_map parse_args(const std::vector<std::string>& args,
                                                 const boost::program_options::options_description& options,
                                                 const boost::program_options::positional_options_description* positional = nullptr);

/// Config file (--config, optional) + overrides (--set), in that order.
config::ConfigSource config_and_overrides(const boost::program_options::variables_map& vm);

/// The single experiment of a command that takes no sweep (phantom, pretrain, serve).
config::ExperimentConfig single_config(const config::ConfigSource& source, const std::string& command);

}  // namespace dne::cli
