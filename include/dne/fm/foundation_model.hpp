// Foundation-model interfaces: white-box `DifferentiableModel` and query-only `EmbeddingApi`.
//
// A foundation model (FM) maps images (B, 1, H, W) in [0, 1] (plus noise) to embeddings (B, D).
// White-box editors get a `DifferentiableModel&` and may backpropagate to the input.
// Black-box editors get only an `EmbeddingApi&`: it runs the model under no-grad, counts calls
// and images, and enforces a query budget exactly, so the type system proves that a
// zeroth-order optimiser uses no gradients. Models are frozen: their weights never train.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "dne/config/config.hpp"

namespace dne::fm {

/// A frozen encoder whose output is differentiable with respect to its input images.
class DifferentiableModel {
 public:
  virtual ~DifferentiableModel() = default;
  /// images (B, 1, H, W) float32 -> embeddings (B, D) float32, autograd through the input.
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  virtual std::int64_t embed_dim() const = 0;
  /// Human-readable description (architecture and size).
  virtual std::string describe() const = 0;
  /// Floating-point operations of one forward pass on one image (2 per multiply-add); NaN if unknown.
  virtual double flops_per_image() const = 0;
  virtual std::int64_t parameter_count() const = 0;
  /// Facts about the weights for an experiment's /provenance (e.g. fm_file, fm_hash); may be empty.
  virtual std::map<std::string, std::string> provenance() const { return {}; }
};

/// Simulated API behaviour; all off by default.
struct ApiOptions {
  std::int64_t budget_images = 0;  // total images the API will embed; 0 = unlimited
  std::int64_t max_batch = 0;      // images per call (larger requests are split); 0 = unlimited
  double latency_ms = 0.0;         // simulated latency added to every call
  std::int64_t round_decimals = -1;  // returned floats rounded to this many decimals; -1 = off
};

/// Query-only access to a model: embeddings, no gradients, counted.
class EmbeddingApi {
 public:
  explicit EmbeddingApi(std::shared_ptr<DifferentiableModel> model, ApiOptions options = {});
  /// images (B, 1, H, W) -> embeddings (B, D), computed without autograd. Throws BudgetExceeded
  /// (and embeds nothing) if B images would exceed the budget.
  torch::Tensor embed(const torch::Tensor& images);
  std::int64_t calls() const { return calls_; }
  std::int64_t images() const { return images_; }
  /// Images still allowed (INT64_MAX when unlimited).
  std::int64_t remaining() const;
  std::int64_t embed_dim() const { return model_->embed_dim(); }

 private:
  std::shared_ptr<DifferentiableModel> model_;
  ApiOptions options_;
  std::int64_t calls_ = 0;
  std::int64_t images_ = 0;
};

/// Build the model named by `options.kind` from the factory table. `seed` initialises built-in
/// weights deterministically. Throws ModelError / ConfigError naming the culprit.
std::shared_ptr<DifferentiableModel> make_model(const config::FmOptions& options,
                                                std::int64_t image_size, std::uint64_t seed);

/// Embed a whole split without gradients, `batch_size` images at a time.
/// images (N, 1, H, W) -> (N, D). Throws ModelError if any embedding is not finite.
torch::Tensor embed_all(DifferentiableModel& model, const torch::Tensor& images,
                        std::int64_t batch_size);

}  // namespace dne::fm
