// Option parsing shared by the `dne` subcommands (see options.hpp).
#include "dne/cli/options.hpp"

#include "dne/core/errors.hpp"

namespace po = boost::program_options;

namespace dne::cli {

/// Parse `args` against `options`; Boost's errors become ConfigError naming the option.
po::variables_map parse_args(const std::vector<std::string>& args, const po::options_description& options,
                             const po::positional_options_description* positional) {
  // A command without positional arguments collects stray ones in a hidden option, so that
  // `dne run --config a.toml b.toml` is an error naming b.toml instead of b.toml being ignored.
  const char* stray = "unexpected-argument";
  po::options_description all;
  all.add(options);
  all.add_options()(stray, po::value<std::vector<std::string>>());
  po::positional_options_description strays;
  strays.add(stray, -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional != nullptr ? *positional : strays).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  if (vm.count(stray))
    throw ConfigError("unexpected argument '" + vm[stray].as<std::vector<std::string>>().front() +
                      "': every argument is an option (--name value; see --help)");
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
