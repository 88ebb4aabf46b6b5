// The downstream evaluation every method's embeddings and its control's go through (internal to
// the experiment module): the disease probe (its L2 chosen on validation with
// probes.l2_choices), the fresh attack probes (sex: logistic; age, when the data have one: ridge
// regression), the frozen g's view, and every metric of docs/metrics.md on the test split.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dne/config/config.hpp"
#include "dne/data/dataset.hpp"
#include "dne/probe/linear_probe.hpp"

namespace dne::experiment {

/// The (N, D) embeddings of the three splits that a method hands to the probes (val undefined
/// without a validation split).
struct Splits {
  torch::Tensor train, val, test;
};

/// What the probes of every method are fitted and scored with, besides the embeddings.
struct EvalContext {
  const data::Dataset& dataset;
  torch::Tensor y_train, a_train;              // (N,) int64
  const probe::LinearProbe* frozen = nullptr;  // g on the clean embeddings; nullptr when the method's
                                               // embeddings are not in g's space (the VAE's latent code)
  std::vector<double> g_clean_test;            // g's scores on the clean test embeddings
  config::ProbeOptions probes;
};

/// What the downstream pipeline gives for one set of embeddings: test scores and metrics.
struct Downstream {
  Splits z;
  std::vector<double> score, leak_score, frozen_score;  // per test row (frozen: empty without g)
  std::map<std::string, double> metrics;
  double disease_l2 = 0.0;          // the disease probe's L2 (chosen on validation with probes.l2_choices)
  std::vector<double> val_auc;      // validation disease AUC of every probes.l2_choices value
};

/// One scored split: the disease probe and the fresh SA (leakage) probe fitted on the training
/// embeddings (N, D), scored on `z` (M, D), the embeddings of `split`'s rows, with their metrics
/// (docs/metrics.md): classification_metrics, sa_leakage_*, and frozen_sa_* when g is given.
struct ScoredSplit {
  std::vector<double> score, leak_score, frozen_score;  // per row of the split (frozen: empty without g)
  std::map<std::string, double> metrics;
};

ScoredSplit score_split(const torch::Tensor& z_train, const torch::Tensor& z, const data::ImageSet& split,
                        const EvalContext& e, const config::ProbeOptions& disease_options);

/// The disease probe (its L2 chosen on validation with probes.l2_choices), the fresh attack
/// probes, the frozen g's view, and every metric of docs/metrics.md, on the test split.
Downstream evaluate(Splits z, const EvalContext& e);

/// A tensor's values (any shape) as doubles / floats, in row-major order.
std::vector<double> to_doubles(const torch::Tensor& t);
std::vector<float> to_floats(const torch::Tensor& t);
/// Labels or attributes (N,) as an int64 tensor.
torch::Tensor int_tensor(const std::vector<int>& v);

}  // namespace dne::experiment
