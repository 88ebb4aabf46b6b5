// EmbeddingModel defaults, EmbeddingApi and the model factory table (see foundation_model.hpp).
#include "dne/fm/foundation_model.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include "dne/core/errors.hpp"
#include "dne/fm/conv_encoder.hpp"
#include "dne/fm/fm_file.hpp"
#include "dne/fm/remote_model.hpp"
#include "dne/fm/torchscript_model.hpp"

namespace dne::fm {

void DifferentiableModel::to(const torch::Device& device) {
  if (!device.is_cpu()) throw ModelError(describe() + " cannot run on " + device.str());
}


std::vector<torch::Tensor> EmbeddingModel::embed_each(const std::vector<torch::Tensor>& batches) {
  std::vector<torch::Tensor> out;
  out.reserve(batches.size());
  for (const auto& b : batches) out.push_back(embed(b));
  return out;
}

torch::Tensor DifferentiableModel::embed(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return forward(images);
}

EmbeddingApi::EmbeddingApi(std::shared_ptr<EmbeddingModel> model, ApiOptions options)
    : model_(std::move(model)), options_(options) {}

std::int64_t EmbeddingApi::remaining() const {
  if (options_.budget_images <= 0) return std::numeric_limits<std::int64_t>::max();
  return options_.budget_images - images_;
}

torch::Tensor EmbeddingApi::embed(const torch::Tensor& images) { return embed_each({images}).front(); }

std::vector<torch::Tensor> EmbeddingApi::embed_each(const std::vector<torch::Tensor>& batches) {
  std::int64_t n = 0;
  for (const auto& b : batches) n += b.size(0);
  if (n > remaining())
    throw BudgetExceeded("embedding API budget: " + std::to_string(n) + " images requested, " +
                         std::to_string(remaining()) + " of " +
                         std::to_string(options_.budget_images) + " left");
  torch::NoGradGuard no_grad;
  // Every batch is cut into calls of at most max_batch images; all calls go to the model at once.
  std::vector<torch::Tensor> calls;
  std::vector<std::size_t> calls_per_batch;
  for (const auto& b : batches) {
    const std::int64_t size = b.size(0), chunk = options_.max_batch > 0 ? options_.max_batch : std::max<std::int64_t>(1, size);
    std::size_t count = 0;
    for (std::int64_t start = 0; start < size; start += chunk, ++count) calls.push_back(b.slice(0, start, std::min(size, start + chunk)));
    calls_per_batch.push_back(count);
  }
  auto parts = model_->embed_each(calls);
  calls_ += static_cast<std::int64_t>(calls.size());
  images_ += n;
  if (options_.latency_ms > 0)
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options_.latency_ms * static_cast<double>(calls.size())));
  std::vector<torch::Tensor> out;
  std::size_t next = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const std::size_t count = calls_per_batch[i];
    auto z = count == 0 ? torch::empty({0, model_->embed_dim()}, batches[i].options())
             : count == 1 ? parts[next] : torch::cat(std::vector<torch::Tensor>(parts.begin() + static_cast<std::ptrdiff_t>(next),
                                                                              parts.begin() + static_cast<std::ptrdiff_t>(next + count)), 0);
    next += count;
    if (options_.round_decimals >= 0) {
      const double scale = std::pow(10.0, static_cast<double>(options_.round_decimals));
      // A 0-dim tensor divisor: a true division on any device, as on the host.
      z = torch::round(z * scale) / torch::full({}, scale, z.options());
    }
    out.push_back(std::move(z));
  }
  return out;
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
  if (options.kind == "remote")
    throw ConfigError("fm.kind = \"remote\" answers queries only; this needs a model in this process (cnn, vit, torchscript)");
  if (it == table.end()) throw ConfigError("fm.kind: unknown model '" + options.kind + "'");
  return it->second(options, image_size, seed);
}

std::shared_ptr<EmbeddingModel> make_embedding_model(const config::FmOptions& options, const config::ApiOptions& api,
                                                     std::int64_t image_size, std::uint64_t seed) {
  if (options.kind == "remote") return std::make_shared<RemoteModel>(api, image_size);
  return make_model(options, image_size, seed);
}

}  // namespace dne::fm
