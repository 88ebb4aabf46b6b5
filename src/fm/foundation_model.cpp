// EmbeddingApi, the model factory table and split embedding (see foundation_model.hpp).
#include "dne/fm/foundation_model.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include "dne/core/errors.hpp"
#include "dne/fm/conv_encoder.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/fm/torchscript_model.hpp"

namespace dne::fm {

EmbeddingApi::EmbeddingApi(std::shared_ptr<DifferentiableModel> model, ApiOptions options)
    : model_(std::move(model)), options_(options) {}

std::int64_t EmbeddingApi::remaining() const {
  if (options_.budget_images <= 0) return std::numeric_limits<std::int64_t>::max();
  return options_.budget_images - images_;
}

torch::Tensor EmbeddingApi::embed(const torch::Tensor& images) {
  const std::int64_t n = images.size(0);
  if (n > remaining())
    throw BudgetExceeded("embedding API budget: " + std::to_string(n) + " images requested, " +
                         std::to_string(remaining()) + " of " +
                         std::to_string(options_.budget_images) + " left");
  torch::NoGradGuard no_grad;
  const std::int64_t chunk = options_.max_batch > 0 ? options_.max_batch : n;
  std::vector<torch::Tensor> parts;
  for (std::int64_t start = 0; start < n; start += chunk) {
    parts.push_back(model_->forward(images.slice(0, start, std::min(n, start + chunk))));
    ++calls_;
    if (options_.latency_ms > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options_.latency_ms));
  }
  images_ += n;
  auto z = parts.size() == 1 ? parts.front() : torch::cat(parts, 0);
  if (options_.round_decimals >= 0) {
    const double scale = std::pow(10.0, static_cast<double>(options_.round_decimals));
    z = torch::round(z * scale) / scale;
  }
  return z;
}

namespace {
using ModelFactory = std::function<std::shared_ptr<DifferentiableModel>(
    const config::FmOptions&, std::int64_t, std::uint64_t)>;

const std::map<std::string, ModelFactory>& model_factories() {
  static const std::map<std::string, ModelFactory> table = {
      {"cnn",
       [](const config::FmOptions& o, std::int64_t size, std::uint64_t seed) {
         return std::make_shared<ConvEncoder>(size, o.width, o.embed_dim, seed);
       }},
      {"vit",
       [](const config::FmOptions& o, std::int64_t size, std::uint64_t seed) -> std::shared_ptr<DifferentiableModel> {
         return load_vit(o, size, seed);
       }},
      {"torchscript",
       [](const config::FmOptions& o, std::int64_t size, std::uint64_t) {
         return load_torchscript(o.torchscript, size);
       }},
  };
  return table;
}
}  // namespace

std::shared_ptr<DifferentiableModel> make_model(const config::FmOptions& options,
                                                std::int64_t image_size, std::uint64_t seed) {
  const auto& table = model_factories();
  const auto it = table.find(options.kind);
  if (it == table.end()) throw ConfigError("fm.kind: unknown model '" + options.kind + "'");
  return it->second(options, image_size, seed);
}

torch::Tensor embed_all(DifferentiableModel& model, const torch::Tensor& images,
                        std::int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  const std::int64_t n = images.size(0);
  for (std::int64_t start = 0; start < n; start += batch_size)
    parts.push_back(model.forward(images.slice(0, start, std::min(n, start + batch_size))));
  auto z = torch::cat(parts, 0);
  if (!torch::isfinite(z).all().item<bool>())
    throw ModelError("foundation model returned non-finite embeddings (NaN/Inf in input or weights)");
  return z;
}

}  // namespace dne::fm
