// Option parsing shared by the `dne` subcommands (see options.hpp).
#include "dne/cli/options.hpp"

#include "dne/core/errors.hpp"

namespace po = boost::program_options;

namespace dne::cli {

/// Parse `args` against `options`; Boost's errors become ConfigError naming the option.
po::variables_map parse_args(const std::vector<std::string>& args, const po::options_description& options,
                             const po::positional_options_description* positional) {
  po::variables_map vm;
  try {
    auto parser = po::command_line_parser(args).options(options);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  return vm;
}

/// Config file (optional) + overrides, in that order.
config::ConfigSource config_and_overrides(const po::variables_map& vm) {
  config::ConfigSource source;
  if (vm.count("config")) {
    source = config::parse_file(vm["config"].as<std::string>());
  } else {
    source.origin = "defaults";
  }
  if (vm.count("set"))
    for (const auto& s : vm["set"].as<std::vector<std::string>>()) config::apply_override(source, s);
  return source;
}

/// The single experiment of a command that takes no sweep (phantom, pretrain).
config::ExperimentConfig single_config(const config::ConfigSource& source, const std::string& command) {
  if (!source.axes.empty())
    throw ConfigError(command + ": '" + source.axes.front() + "' has several values; give one");
  return config::expand(source).front();
}

}  // namespace dne::cli
