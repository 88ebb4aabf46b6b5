// The config module's helpers and tables: TOML value text, number lists, the input-hash lines,
// ConfigSource as parse_text builds it, the documented defaults of the option structs (written
// out by hand from config.hpp's comments) and their --set paths, the key table's consistency
// (unique names, defaults of the key's kind and inside its range, set/get on one field each),
// and the method table's entries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "dne/config/config.hpp"
#include "dne/config/key_spec.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "test_support.hpp"

namespace {

using dne::ConfigError;
using dne_test::expect_error;
using namespace dne::config;
using detail::Kind;
using detail::KeySpec;
using detail::key_table;

TEST(ConfigHelpers, FormatValueWritesTomlText) {
  EXPECT_EQ(format_value(Value{std::int64_t{3}}), "3");
  EXPECT_EQ(format_value(Value{std::int64_t{-7}}), "-7");
  EXPECT_EQ(format_value(Value{0.5}), "0.5");
  EXPECT_EQ(format_value(Value{1.0}), "1.0");      // stays a TOML float
  EXPECT_EQ(format_value(Value{100.0}), "100.0");  // "100" is shorter than "1e+02"
  EXPECT_EQ(format_value(Value{0.001}), "0.001");  // a tie with "1e-03" goes to the fixed form
  EXPECT_EQ(format_value(Value{1e-4}), "1e-04");   // shorter than "0.0001"
  EXPECT_EQ(format_value(Value{1e6}), "1e+06");
  EXPECT_EQ(format_value(Value{0.1}), "0.1");      // the shortest text that reads back as 0.1
  EXPECT_EQ(format_value(Value{true}), "true");
  EXPECT_EQ(format_value(Value{false}), "false");
  EXPECT_EQ(format_value(Value{std::string("runs/a b")}), "\"runs/a b\"");
  EXPECT_EQ(format_value(Value{std::string("say \"hi\" C:\\x")}), R"("say \"hi\" C:\\x")");
  EXPECT_EQ(format_value(Value{std::string()}), "\"\"");
}

TEST(ConfigHelpers, NumberListReadsCommaSeparatedFiniteNumbers) {
  EXPECT_EQ(number_list("1e-4, 1e-3,0.1", "probes.l2_choices"), (std::vector<double>{1e-4, 1e-3, 0.1}));
  EXPECT_EQ(number_list("256,128", "vae.hidden"), (std::vector<double>{256, 128}));
  EXPECT_EQ(number_list(" -2.5 ", "k"), (std::vector<double>{-2.5}));
  for (const std::string bad : {"", "1,,2", "1,2,", ",1", "a", "1;2", "nan", "inf", "1e999", "0x10", "1 2"})
    expect_error<ConfigError>([&] { number_list(bad, "probes.l2_choices"); },
                              {"probes.l2_choices", "\"" + bad + "\"", "not a comma-separated list of numbers"});
}

TEST(ConfigHelpers, InputHashesTextNamesTheFmFileAndTheData) {
  ExperimentConfig c;
  EXPECT_EQ(c.input_hashes_text(), "");
  c.fm.kind = "vit";
  c.fm_hash = "0123456789abcdef";
  EXPECT_EQ(c.input_hashes_text(), "# fm.weights content hash: 0123456789abcdef\n");
  c.fm.kind = "torchscript";
  c.data_hash = "fedcba9876543210";
  EXPECT_EQ(c.input_hashes_text(),
            "# fm.torchscript content hash: 0123456789abcdef\n# data content hash: fedcba9876543210\n");
  c.fm_hash.clear();
  EXPECT_EQ(c.input_hashes_text(), "# data content hash: fedcba9876543210\n");
  // The lines end the canonical text, so the hashes enter the id.
  const std::string text = c.canonical_text();
  ASSERT_GE(text.size(), c.input_hashes_text().size());
  EXPECT_EQ(text.substr(text.size() - c.input_hashes_text().size()), c.input_hashes_text());
}

TEST(ConfigHelpers, ConfigSourceHoldsValuesAxesGridsAndFormerNames) {
  const ConfigSource s = parse_text(
      "[data]\nn_train = 300\n[dne]\nlambda = [0.1, 0.2]\n[gezo]\ncandidates = 4\n"
      "[[grid]]\nsweep.seeds = [1, 2]\n",
      "sweep.toml");
  EXPECT_EQ(s.origin, "sweep.toml");
  ASSERT_EQ(s.values.count("data.n_train"), 1u);
  EXPECT_EQ(s.values.at("data.n_train"), (std::vector<Value>{std::int64_t{300}}));
  EXPECT_EQ(s.values.at("dne.lambda"), (std::vector<Value>{0.1, 0.2}));
  EXPECT_NE(std::find(s.axes.begin(), s.axes.end(), "dne.lambda"), s.axes.end());
  EXPECT_EQ(std::find(s.axes.begin(), s.axes.end(), "data.n_train"), s.axes.end());  // one value: no axis
  ASSERT_EQ(s.grids.size(), 1u);
  EXPECT_EQ(s.grids[0].at("sweep.seeds"), (std::vector<Value>{std::int64_t{1}, std::int64_t{2}}));
  // The former name is read as the new key, and said once.
  EXPECT_EQ(s.values.at("zo.candidates"), (std::vector<Value>{std::int64_t{4}}));
  ASSERT_EQ(s.deprecated.size(), 1u);
  EXPECT_NE(s.deprecated[0].find("gezo.candidates is now zo.candidates"), std::string::npos) << s.deprecated[0];
  // 2 lambdas x 2 seeds.
  EXPECT_EQ(expand(s).size(), 4u);
}

TEST(ConfigHelpers, OptionStructsStartAtTheirDocumentedDefaults) {
  // config.hpp's comments, written out by hand; defaults() must agree with a fresh struct.
  const DataOptions data;
  EXPECT_EQ(data.source, "phantom");
  EXPECT_EQ(data.sa_column, "sex");
  EXPECT_EQ(data.resize, "stretch");
  EXPECT_EQ(data.image_hash, "content");
  EXPECT_EQ(data.image_size, 64);
  EXPECT_EQ(data.n_train, 2000);
  EXPECT_EQ(data.n_test, 1000);
  EXPECT_EQ(data.bias, 0.9);
  EXPECT_EQ(data.resample, "none");
  const ZerothOrderOptions zo;
  EXPECT_EQ(zo.local_epochs, 2);
  EXPECT_EQ(zo.candidates, 8);
  EXPECT_EQ(zo.sigma, 0.05);
  EXPECT_EQ(zo.on_reject, "keep");
  EXPECT_EQ(zo.budget, 0);
  EXPECT_EQ(zo.optimizer, "adam");
  EXPECT_EQ(zo.shaping, "rank");
  const CommOptions comm;
  EXPECT_EQ(comm.mode, "seed");
  EXPECT_EQ(comm.split, "candidates");
  EXPECT_EQ(SweepOptions{}.seed, 0);
  EXPECT_EQ(RunOptions{}.precision, "fp32");

  const ExperimentConfig& d = defaults();
  EXPECT_EQ(d.data.image_size, data.image_size);
  EXPECT_EQ(d.data.source, data.source);
  EXPECT_EQ(d.zo.candidates, zo.candidates);
  EXPECT_EQ(d.comm.mode, comm.mode);
  EXPECT_EQ(d.run.precision, "fp32");
  EXPECT_EQ(d.sweep.seed, 0);
  // The same values as the keys report them.
  EXPECT_EQ(std::get<std::string>(get_value(d, "comm.split")), "candidates");
  EXPECT_EQ(std::get<std::int64_t>(get_value(d, "zo.candidates")), 8);
  EXPECT_EQ(std::get<std::string>(get_value(d, "run.precision")), "fp32");
}

TEST(ConfigHelpers, SetPathsFillTheOptionStructs) {
  // rge reads the [zo] and both [comm] keys (comm.mode is read by rge and spsa only).
  ConfigSource s = parse_text("[dne]\nmethod = \"rge\"\n", "set.toml");
  apply_override(s, "comm.split=data");
  apply_override(s, "comm.mode=dense");
  apply_override(s, "zo.candidates=3");
  apply_override(s, "zo.sigma=0.25");
  apply_override(s, "zo.optimizer=sgd");
  apply_override(s, "run.precision=bf16");
  apply_override(s, "data.n_train=120");
  set_value(s, "sweep.seeds", std::int64_t{5});
  const auto experiments = expand(s);
  ASSERT_EQ(experiments.size(), 1u);
  const ExperimentConfig& c = experiments[0];
  EXPECT_EQ(c.comm.split, "data");
  EXPECT_EQ(c.comm.mode, "dense");
  EXPECT_EQ(c.zo.candidates, 3);
  EXPECT_EQ(c.zo.sigma, 0.25);
  EXPECT_EQ(c.zo.optimizer, "sgd");
  EXPECT_EQ(c.run.precision, "bf16");
  EXPECT_EQ(c.data.n_train, 120);
  EXPECT_EQ(c.sweep.seed, 5);
  EXPECT_EQ(c.zo.local_epochs, 2);  // untouched keys keep their defaults
  // A list of seeds is an axis of SweepOptions.
  apply_override(s, "sweep.seeds=[7,8,9]");
  std::vector<std::int64_t> seeds;
  for (const auto& e : expand(s)) seeds.push_back(e.sweep.seed);
  EXPECT_EQ(seeds, (std::vector<std::int64_t>{7, 8, 9}));
  // Values outside a choice are refused naming the key.
  expect_error<ConfigError>([&] { apply_override(s, "comm.mode=sparse"); expand(s); }, {"comm.mode"});
}

/// Whether a number key has a range (an unranged one keeps min = max = 0).
bool ranged(const KeySpec& k) { return !(k.min == 0.0 && k.max == 0.0); }

TEST(KeyTable, NamesAreUniqueAndEachDefaultIsOfItsKindAndInItsRange) {
  const auto& table = key_table();
  ASSERT_GT(table.size(), 50u);
  std::set<std::string> names;
  const ExperimentConfig& d = defaults();
  const RunConfig run;
  for (const KeySpec& k : table) {
    EXPECT_TRUE(names.insert(k.name).second) << "duplicate key " << k.name;
    if (!k.former_name.empty()) { EXPECT_TRUE(names.insert(k.former_name).second) << "former name reused " << k.former_name; }
    const auto dot = k.name.find('.');
    EXPECT_TRUE(dot != std::string::npos && dot > 0 && dot + 1 < k.name.size() && k.name.find('.', dot + 1) == std::string::npos)
        << k.name;
    EXPECT_FALSE(k.help.empty()) << k.name;
    const Value v = k.run_wide ? k.get_run(run) : k.get(d);
    switch (k.kind) {
      case Kind::kInt:
        ASSERT_TRUE(std::holds_alternative<std::int64_t>(v)) << k.name;
        if (ranged(k)) {
          EXPECT_LT(k.min, k.max) << k.name;
          EXPECT_GE(static_cast<double>(std::get<std::int64_t>(v)), k.min) << k.name;
          EXPECT_LE(static_cast<double>(std::get<std::int64_t>(v)), k.max) << k.name;
        }
        break;
      case Kind::kReal:
        ASSERT_TRUE(std::holds_alternative<double>(v)) << k.name;
        if (ranged(k)) {
          EXPECT_LT(k.min, k.max) << k.name;
          EXPECT_GE(std::get<double>(v), k.min) << k.name;
          EXPECT_LE(std::get<double>(v), k.max) << k.name;
        }
        break;
      case Kind::kBool: EXPECT_TRUE(std::holds_alternative<bool>(v)) << k.name; break;
      case Kind::kString: EXPECT_TRUE(std::holds_alternative<std::string>(v)) << k.name; break;
      case Kind::kChoice:
        ASSERT_TRUE(std::holds_alternative<std::string>(v)) << k.name;
        EXPECT_NE(std::find(k.choices.begin(), k.choices.end(), std::get<std::string>(v)), k.choices.end())
            << k.name << " defaults to " << std::get<std::string>(v) << ", not one of its choices";
        break;
    }
    // Method tags name real methods.
    for (const auto& m : k.methods) EXPECT_NO_THROW(method_info(m)) << k.name << " tagged with " << m;
  }
  // A few keys, by hand from config.hpp.
  const auto find = [&](const std::string& name) -> const KeySpec& {
    const auto it = std::find_if(table.begin(), table.end(), [&](const KeySpec& k) { return k.name == name; });
    if (it == table.end()) throw std::runtime_error("no key " + name);
    return *it;
  };
  EXPECT_EQ(find("data.image_size").kind, Kind::kInt);
  EXPECT_EQ(find("data.bias").kind, Kind::kReal);
  EXPECT_EQ(find("data.source").kind, Kind::kChoice);
  for (const char* c : {"phantom", "manifest", "embeddings"})
    EXPECT_NE(std::find(find("data.source").choices.begin(), find("data.source").choices.end(), c), find("data.source").choices.end());
  EXPECT_EQ(find("output.save_embeddings").kind, Kind::kBool);
  EXPECT_TRUE(find("output.save_embeddings").run_wide);
  EXPECT_FALSE(find("output.save_embeddings").affects_results);
  EXPECT_EQ(find("fm.mean").kind, Kind::kString);
  EXPECT_TRUE(find("fm.mean").numbers_as_text);
  EXPECT_EQ(find("zo.candidates").former_name, "gezo.candidates");
  EXPECT_EQ(find("sweep.seeds").kind, Kind::kInt);
}

/// A value of `k`'s kind other than `v` (in its range when it has one; `v` itself when there is none).
Value another_value(const KeySpec& k, const Value& v) {
  switch (k.kind) {
    case Kind::kInt: {
      const auto x = std::get<std::int64_t>(v);
      if (!ranged(k)) return std::int64_t{x + 1};
      const auto hi = static_cast<std::int64_t>(k.max), lo = static_cast<std::int64_t>(k.min);
      return std::int64_t{x == hi ? lo : hi};
    }
    case Kind::kReal: {
      const double x = std::get<double>(v);
      if (!ranged(k)) return x + 1.0;
      const double hi = std::isfinite(k.max) ? k.max : x + 1.0;
      return x == hi ? (std::isfinite(k.min) ? k.min : x - 1.0) : hi;
    }
    case Kind::kBool: return !std::get<bool>(v);
    case Kind::kString: return std::get<std::string>(v) + "7";
    case Kind::kChoice:
      for (const auto& c : k.choices)
        if (c != std::get<std::string>(v)) return c;
      return v;
  }
  return v;
}

TEST(KeyTable, SetAndGetOfEveryKeyReachOneFieldAndNoOther) {
  const auto& table = key_table();
  for (const KeySpec& k : table) {
    if (k.run_wide) {
      RunConfig run;
      const Value other = another_value(k, k.get_run(run));
      k.set_run(run, other);
      EXPECT_EQ(format_value(k.get_run(run)), format_value(other)) << k.name;
      for (const KeySpec& j : table)
        if (j.run_wide && j.name != k.name) {
          EXPECT_EQ(format_value(j.get_run(run)), format_value(j.get_run(RunConfig{}))) << k.name << " changed " << j.name;
        }
      continue;
    }
    ExperimentConfig c = defaults();
    const Value other = another_value(k, k.get(c));
    if (format_value(other) == format_value(k.get(c))) continue;  // a key with one possible value
    k.set(c, other);
    EXPECT_EQ(format_value(k.get(c)), format_value(other)) << k.name;
    for (const KeySpec& j : table)
      if (!j.run_wide && j.name != k.name) {
        EXPECT_EQ(format_value(j.get(c)), format_value(j.get(defaults()))) << "setting " << k.name << " changed " << j.name;
      }
  }
}

TEST(MethodInfo, EntriesCarryKindTraceAxisCostAndChecks) {
  const auto& table = method_table();
  ASSERT_EQ(table.size(), 8u);
  for (const MethodInfo& m : table) {
    EXPECT_FALSE(m.summary.empty()) << m.name;
    ASSERT_NE(m.edit_cost, nullptr) << m.name;
    ASSERT_NE(m.check, nullptr) << m.name;
    ExperimentConfig c = defaults();
    c.dne.method = m.name;
    EXPECT_EQ(m.check(c), "") << m.name << " rejects its defaults";
    EXPECT_GE(m.edit_cost(c, 100.0), 0.0) << m.name;
    // Learning methods have a trace axis; the reference and the control have none.
    EXPECT_EQ(m.trace_x.empty(), m.kind == MethodKind::kReference || m.kind == MethodKind::kControl) << m.name;
    if (m.kind == MethodKind::kZerothOrder) { EXPECT_EQ(m.trace_x, "queries") << m.name; }
  }
  // No edit for the reference and the control; white-box: a forward and a backward (two) pass
  // per training image and epoch: 3 * 3 epochs * 100 images.
  ExperimentConfig c = defaults();
  EXPECT_EQ(method_info("none").edit_cost(c, 100.0), 0.0);
  EXPECT_EQ(method_info("random").edit_cost(c, 100.0), 0.0);
  EXPECT_EQ(method_info("whitebox").edit_cost(c, 100.0), 900.0);
  // A query budget caps a zeroth-order method's work.
  c.zo.budget = 500;
  EXPECT_EQ(method_info("gezo").edit_cost(c, 100.0), 500.0);
  EXPECT_EQ(method_info("spsa").edit_cost(c, 100.0), 500.0);
  // The methods' own checks.
  c.zo.sigma_min = 0.5;  // above zo.sigma = 0.05
  EXPECT_NE(method_info("gezo").check(c).find("sigma_min"), std::string::npos);
  EXPECT_EQ(method_info("rge").check(c), "");  // GeZO's key only
  c.vae.hidden = "128,0";
  EXPECT_NE(method_info("vae").check(c).find("vae.hidden"), std::string::npos);
}

}  // namespace
