// The methods an experiment can run (`dne.method`), described once: the Torch-free half of the
// method registry.
//
// Every place that needs to know about methods derives it from this table: the config key's
// choices, which keys a method reads (the key table tags each key with the methods that read it:
// config::method_keys, config.hpp) and the method's own checks (run by config.cpp's validation), the cost model
// (experiment::estimated_cost), the benchmark's checks, and index.h5's /methods table, from which
// analysis/ reads the order, the kind and the trace's x-axis instead of hard-coding them. The
// function that runs each method is joined to its entry here by experiment/method_registry.hpp
// (Torch code cannot live in this Torch-free module); nothing else compares method names.
#pragma once

#include <string>
#include <vector>

namespace dne::config {

struct ExperimentConfig;

enum class MethodKind {
  kReference,    // ERM: no intervention ("none")
  kControl,      // a fixed random intervention ("random")
  kWhiteBox,     // learns a noise with gradients through the FM
  kZerothOrder,  // learns a noise from API queries only
  kEmbedding,    // debiases the FM's embeddings themselves (the adversarial VAE); no noise
};

struct MethodInfo {
  std::string name;     // the dne.method value
  MethodKind kind;
  std::string trace_x;  // what the /trace x-axis counts ("images", "queries"); "" without a trace
  std::string summary;  // one line for --help-config and docs
  /// The method's own work in images through the FM (a backward pass counts as two) for
  /// `n_train` training images: the cost model behind the most-expensive-first order and the
  /// ETA (experiment::estimated_cost adds the embedding passes every experiment makes).
  double (*edit_cost)(const ExperimentConfig& config, double n_train) = nullptr;
  /// The method's own config checks beyond each key's range: "" when fine, else the problem.
  std::string (*check)(const ExperimentConfig& config) = nullptr;
};

/// Every method, in display order.
const std::vector<MethodInfo>& method_table();
/// The entry named `name`; ConfigError listing the names otherwise.
const MethodInfo& method_info(const std::string& name);
/// The names of the methods of these kinds (every method when `kinds` is empty), in table order.
std::vector<std::string> method_names(const std::vector<MethodKind>& kinds = {});
/// "reference", "control", "whitebox", "zeroth_order", "embedding" (what index.h5 stores).
std::string kind_name(MethodKind kind);
/// Whether the method learns a noise (white-box or zeroth-order).
bool learns_noise(const std::string& method);
/// Whether the method works on images (adds a noise to them): every kind but the reference and
/// the embedding methods, which can also run on precomputed embeddings (data.source = "embeddings").
bool needs_images(const std::string& method);

}  // namespace dne::config
