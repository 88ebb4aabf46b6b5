// Foundation-model interfaces: `EmbeddingModel` (embeddings on request), white-box
// `DifferentiableModel`, and query-only `EmbeddingApi`.
//
// A foundation model (FM) maps images (B, 1, H, W) in [0, 1] (plus noise) to embeddings (B, D).
// Every FM is an `EmbeddingModel`: in this process (CNN, ViT, TorchScript) or behind an Open
// Inference Protocol server (fm.kind = "remote", remote_model.hpp). In-process models are also
// `DifferentiableModel`s: white-box editors get one and may backpropagate to the input; a remote
// model is not one, so a white-box method cannot be given it. Black-box editors get only an
// `EmbeddingApi&`: it runs the model under no-grad, counts calls and images, and enforces a
// query budget exactly, so the type system proves that a zeroth-order optimiser uses no
// gradients. Models are frozen: their weights never train.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dne/config/config.hpp"

namespace dne::fm {

/// A frozen encoder that embeds images on request, without gradients.
class EmbeddingModel {
 public:
  virtual ~EmbeddingModel() = default;
  /// images (B, 1, H, W) float32 -> embeddings (B, D) float32, no autograd.
  virtual torch::Tensor embed(const torch::Tensor& images) = 0;
  /// Several batches (B_i, 1, H, W) -> their embeddings (B_i, D), in order. A remote model has
  /// up to parallelism() of them in flight at once; the default embeds one after another.
  virtual std::vector<torch::Tensor> embed_each(const std::vector<torch::Tensor>& batches);
  /// How many batches a caller gains by handing embed_each at once (1: no gain).
  virtual int parallelism() const { return 1; }
  virtual std::int64_t embed_dim() const = 0;
  /// Human-readable description (architecture and size, or the endpoint).
  virtual std::string describe() const = 0;
  /// Facts about the weights for an experiment's /provenance (e.g. fm_file, fm_hash); may be empty.
  virtual std::map<std::string, std::string> provenance() const { return {}; }
};

/// A frozen encoder in this process whose output is differentiable with respect to its input.
class DifferentiableModel : public EmbeddingModel {
 public:
  /// images (B, 1, H, W) float32 -> embeddings (B, D) float32, autograd through the input.
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  /// forward() under no-grad.
  torch::Tensor embed(const torch::Tensor& images) override;
  /// Floating-point operations of one forward pass on one image (2 per multiply-add); NaN if unknown.
  virtual double flops_per_image() const = 0;
  virtual std::int64_t parameter_count() const = 0;
  /// Move the weights to `device` (forward() then expects its input there). The default accepts
  /// the CPU only: a ModelError names the model for any other device.
  virtual void to(const torch::Device& device);
};

/// API behaviour: a query budget and batch limit, and simulated latency and rounding; all off by default.
struct ApiOptions {
  std::int64_t budget_images = 0;  // total images the API will embed; 0 = unlimited
  // The [api] keys' defaults (config::defaults(), the one place they are written):
  std::int64_t max_batch = config::defaults().api.max_batch;  // images per call (larger requests are split); 0 = unlimited
  double latency_ms = config::defaults().api.latency_ms;      // simulated latency added to every call
  std::int64_t round_decimals = config::defaults().api.round_decimals;  // returned floats rounded to this many decimals; -1 = off
};

/// Query-only access to a model: embeddings, no gradients, counted.
class EmbeddingApi {
 public:
  explicit EmbeddingApi(std::shared_ptr<EmbeddingModel> model, ApiOptions options = {});
  /// images (B, 1, H, W) -> embeddings (B, D), computed without autograd. Throws BudgetExceeded
  /// (and embeds nothing) if B images would exceed the budget.
  torch::Tensor embed(const torch::Tensor& images);
  /// Several batches at once (a remote model sends them concurrently); the same calls, images
  /// and bits as embed() on each in turn. Throws BudgetExceeded before embedding any.
  std::vector<torch::Tensor> embed_each(const std::vector<torch::Tensor>& batches);
  /// Batches worth handing embed_each at once (the model's parallelism).
  int parallelism() const { return model_->parallelism(); }
  std::int64_t calls() const { return calls_; }
  std::int64_t images() const { return images_; }
  /// Images still allowed (INT64_MAX when unlimited).
  std::int64_t remaining() const;
  std::int64_t embed_dim() const { return model_->embed_dim(); }

 private:
  std::shared_ptr<EmbeddingModel> model_;
  ApiOptions options_;
  std::int64_t calls_ = 0;
  std::int64_t images_ = 0;
};

/// Build the in-process model named by `options.kind` from the factory table. `seed`
/// initialises built-in weights deterministically. Throws ModelError / ConfigError naming the
/// culprit (ConfigError for fm.kind = "remote", which is not differentiable).
std::shared_ptr<DifferentiableModel> make_model(const config::FmOptions& options,
                                                std::int64_t image_size, std::uint64_t seed);

/// Any FM: make_model's, or for fm.kind = "remote" a RemoteModel on `api` (connected: the
/// server is ready and its metadata fits images of `image_size`).
std::shared_ptr<EmbeddingModel> make_embedding_model(const config::FmOptions& options, const config::ApiOptions& api,
                                                     std::int64_t image_size, std::uint64_t seed);

}  // namespace dne::fm
