// Adversarial VAE debiasing of foundation-model embeddings (the second seed system; issue 13).
//
// A VAE maps standardised embeddings x (N, D) to a latent code (mean mu and log-variance, (N, L))
// and back; adversary heads, one per sensitive attribute (logistic for a binary attribute,
// linear regression for a continuous one such as age), try to recover the attributes from mu.
// Training is a real min-max, in alternating steps on every batch:
//   1. `adversary_steps` steps of the heads on mu.detach() (they learn to read the attribute);
//   2. one step of the encoder/decoder on
//        recon + beta * KL + adversary_weight * sum_a w_a * E_a(head_a(mu)) [+ disease_weight * CE]
//      where E_a is the encoder's adversarial objective and mu is NOT detached, so the heads'
//      gradient reaches the encoder (the public notebook detached it: its encoder never saw it).
// E_a is "neg_loss" (minus the head's own loss, i.e. gradient reversal; the default) or
// "confusion" (binary: cross-entropy against 1/2; continuous: the head's prediction pulled to the
// attribute's mean). Against heads that re-learn every batch, "confusion" removed far less of a
// planted attribute (tests/unit/vae/test_vae.cpp).
// Every random draw comes from the project's counter-based streams: weights (kModelInit), batch
// order (kBatchOrder) and the reparameterisation noise (kLatentNoise), so a seed gives the same
// bits every time. The debiased embedding of an input is its latent mean.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dne/config/config.hpp"

namespace dne::vae {

/// The encoder widths a vae.hidden text names ("256,128": whole numbers in [1, 65536], in order,
/// config's rule). Throws dne::ConfigError naming vae.hidden otherwise.
std::vector<std::int64_t> hidden_widths(const std::string& text);

struct VaeOptions {
  // Every default is the [vae] key's (config::defaults(): written once, shown by --help-config).
  std::int64_t latent = config::defaults().vae.latent;                            // L
  std::vector<std::int64_t> hidden = hidden_widths(config::defaults().vae.hidden);  // encoder widths (the decoder mirrors them)
  double beta = config::defaults().vae.beta;                          // weight of the KL term
  double adversary_weight = config::defaults().vae.adversary_weight;  // weight of the adversarial term (0: a plain VAE)
  std::int64_t adversary_steps = config::defaults().vae.adversary_steps;  // head steps before every encoder step
  std::string adversary_objective = config::defaults().vae.adversary_objective;  // "neg_loss" (gradient reversal) | "confusion"
  double disease_weight = config::defaults().vae.disease_weight;  // optional disease head on mu (keeps the task)
  std::int64_t epochs = config::defaults().vae.epochs;
  std::int64_t batch_size = config::defaults().vae.batch_size;
  double lr = config::defaults().vae.lr;  // Adam, encoder/decoder and heads alike
  std::uint64_t seed = static_cast<std::uint64_t>(config::defaults().sweep.seed);
};

/// One sensitive attribute: its values on the training rows and how much it counts.
struct Attribute {
  std::string name;       // "sex", "age", ...
  torch::Tensor values;   // (N,) float: 0/1 when binary, any real when continuous
  bool binary = true;
  double weight = 1.0;    // w_a
};

/// Per-epoch means over the batches (index = epoch).
struct VaeTrace {
  std::vector<double> loss, reconstruction, kl, adversarial_term;  // the encoder's loss and its parts
  std::vector<std::vector<double>> adversary_loss;                  // [attribute][epoch]: the heads' own loss
  std::vector<std::vector<double>> adversary_accuracy;              // [attribute][epoch]: a binary head's training
                                                                    // accuracy (NaN for a continuous attribute)
};

class AdversarialVaeImpl;

/// A trained adversarial VAE (train with `train_adversarial_vae`).
class AdversarialVae {
 public:
  AdversarialVae(std::int64_t input_dim, std::vector<Attribute> attributes, const VaeOptions& options);
  ~AdversarialVae();
  AdversarialVae(AdversarialVae&&) noexcept;
  AdversarialVae& operator=(AdversarialVae&&) noexcept;

  /// x (N, D) raw embeddings -> latent means (N, L), no grad: the debiased embeddings.
  torch::Tensor encode_mean(const torch::Tensor& x) const;
  /// Mean squared error of reconstructing the standardised x from its latent mean.
  double reconstruction_error(const torch::Tensor& x) const;
  /// The adversarial part of the encoder's loss on a batch (differentiable; for tests: its
  /// gradient must reach the encoder's parameters).
  torch::Tensor adversarial_term(const torch::Tensor& x, const std::vector<torch::Tensor>& targets) const;
  /// The encoder's parameters (for tests).
  std::vector<torch::Tensor> encoder_parameters() const;
  const VaeTrace& trace() const;

  /// Trains on x (N, D) with the attributes' values for the same rows and, with
  /// disease_weight > 0, the disease labels y (N,) 0/1 (else an undefined tensor).
  void train(const torch::Tensor& x, const torch::Tensor& disease);

 private:
  std::unique_ptr<AdversarialVaeImpl> impl_;
};

}  // namespace dne::vae
