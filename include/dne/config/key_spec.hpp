// The config key table's entry (`KeySpec`) and the table itself (internal to the config module:
// key_table.cpp builds the table, config.cpp reads it).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "dne/config/config.hpp"

namespace dne::config::detail {

enum class Kind { kInt, kReal, kString, kBool, kChoice };

struct KeySpec {
  std::string name;
  Kind kind;
  std::string help;
  double min = 0.0, max = 0.0;          // inclusive range for kInt / kReal
  std::vector<std::string> choices;     // for kChoice
  bool affects_results = true;          // part of canonical text / id
  bool pretrain_only = false;           // read by `dne pretrain` only: in pretrain_text(), not in experiments
  std::vector<std::string> methods;     // dne.method values that read this key (empty: all)
  std::string data_source;              // the data.source that reads this key (empty: every source)
  std::vector<std::string> fm_kinds;    // fm.kind values that read this key (empty: all)
  bool omitted_at_default = false;      // left out of canonical/pretrain text at its default value
  bool run_wide = false;                // a RunConfig key (set_run / get_run), in no experiment
  bool numbers_as_text = false;         // kString holding numbers ("0.5", "256,128"): a number is taken as its text
  /// The key's former name when it was renamed (e.g. "gezo.candidates" for zo.candidates): the
  /// canonical text, so the experiment id, keeps rendering it under that name (old ids hold),
  /// and a config that still uses it is read with a one-line deprecation note. Empty: never renamed.
  std::string former_name;
  std::function<void(ExperimentConfig&, const Value&)> set;
  std::function<Value(const ExperimentConfig&)> get;
  std::function<void(RunConfig&, const Value&)> set_run;
  std::function<Value(const RunConfig&)> get_run;
};

/// Every config key, in table order: the order of the canonical text, on which the experiment
/// ids depend; built once (key_table.cpp).
const std::vector<KeySpec>& key_table();

}  // namespace dne::config::detail
