// The method registry: every entry of config's method table (config/methods.hpp: name, kind,
// trace axis, summary, cost model, the method's own checks; the keys it reads are tagged in the
// key table) joined to the function that runs it. run_experiment's method stage, the VAE
// included, and `dne bench --zo` dispatch through this registry; it is the one place that
// maps a method's name to code.
#pragma once

#include <string>
#include <vector>

#include "dne/config/methods.hpp"
#include "dne/editing/noise_editor.hpp"

namespace dne::experiment {

struct ExperimentState;

struct Method {
  const config::MethodInfo& info;
  /// The method stage of run_experiment: the method's embeddings and its control's, each
  /// evaluated (fills ExperimentState::outcome).
  void (*run)(ExperimentState& state);
  /// The noise editor of a noise method (what `run` calls, and what `dne bench --zo` times
  /// alone); empty for the embedding methods.
  editing::Editor edit;
};

/// Every method, in config::method_table()'s order.
const std::vector<Method>& method_registry();
/// The entry of `name`; ConfigError listing the names otherwise.
const Method& method(const std::string& name);

}  // namespace dne::experiment
