// The command line's option parsing (cli/options.hpp): Boost's errors as one ConfigError line
// naming the option, stray arguments refused, a config file and its --set overrides in that
// order, and the single experiment of the commands that take no sweep.
#include <gtest/gtest.h>

#include <boost/program_options.hpp>

#include "dne/cli/options.hpp"
#include "dne/core/errors.hpp"
#include "test_support.hpp"

namespace {

namespace po = boost::program_options;
using dne_test::expect_error;

po::options_description run_like_options() {
  po::options_description o("run");
  o.add_options()("config", po::value<std::string>())("set", po::value<std::vector<std::string>>()->composing())(
      "dry-run", po::bool_switch());
  return o;
}

TEST(ParseArgs, OptionsParsedAndEveryBadArgumentNamed) {
  const auto vm = dne::cli::parse_args({"--config", "a.toml", "--set", "dne.lambda=0.1", "--dry-run"}, run_like_options());
  EXPECT_EQ(vm["config"].as<std::string>(), "a.toml");
  EXPECT_TRUE(vm["dry-run"].as<bool>());
  expect_error<dne::ConfigError>([] { dne::cli::parse_args({"--confg", "a.toml"}, run_like_options()); }, {"confg"});
  expect_error<dne::ConfigError>([] { dne::cli::parse_args({"--config"}, run_like_options()); }, {"config"});
  expect_error<dne::ConfigError>([] { dne::cli::parse_args({"--config", "a.toml", "b.toml"}, run_like_options()); },
                                 {"unexpected argument 'b.toml'"});
}

class ConfigAndOverrides : public dne_test::TempDirTest {};

TEST_F(ConfigAndOverrides, TheFileThenItsOverridesInOrder) {
  write_text("a.toml", "[dne]\nlambda = 0.5\nepochs = 7\n");
  const auto vm = dne::cli::parse_args({"--config", path("a.toml"), "--set", "dne.lambda=0.25", "--set", "dne.lambda=0.125"},
                                       run_like_options());
  const auto source = dne::cli::config_and_overrides(vm);
  EXPECT_EQ(source.origin, path("a.toml"));
  const auto c = dne::cli::single_config(source, "phantom");
  EXPECT_EQ(c.dne.lambda, 0.125);  // the last override wins over the file
  EXPECT_EQ(c.dne.epochs, 7);      // the file's, not the default 3
  const auto defaults = dne::cli::config_and_overrides(dne::cli::parse_args({}, run_like_options()));
  EXPECT_EQ(defaults.origin, "defaults");
  EXPECT_EQ(dne::cli::single_config(defaults, "phantom").canonical_text(), dne::config::defaults().canonical_text());
}

TEST(SingleConfig, ACommandWithoutASweepRefusesAnAxis) {
  const auto vm = dne::cli::parse_args({"--set", "dne.lambda=[0.1, 0.2]"}, run_like_options());
  expect_error<dne::ConfigError>([&] { dne::cli::single_config(dne::cli::config_and_overrides(vm), "pretrain"); },
                                 {"pretrain", "dne.lambda", "several values"});
}

}  // namespace
