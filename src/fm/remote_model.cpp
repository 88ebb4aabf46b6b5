// RemoteModel: Torch tensors to Open Inference Protocol requests and back (see remote_model.hpp).
#include "dne/fm/remote_model.hpp"

#include <cstdlib>

#include "dne/core/errors.hpp"

namespace dne::fm {
namespace {

/// "m" (version "v", platform "p").
std::string model_text(const api::ModelMetadata& m) {
  return "\"" + m.name + "\"" + (m.versions.empty() ? "" : " version " + m.versions.front()) +
         (m.platform.empty() ? "" : " (" + m.platform + ")");
}

}  // namespace

RemoteModel::RemoteModel(const config::ApiOptions& api, std::int64_t image_size)
    : image_size_(image_size), concurrency_(static_cast<int>(api.concurrency)), binary_(api.binary) {
  api::ClientOptions o;
  o.url = api.url;
  o.model = api.model;
  o.concurrency = concurrency_;
  o.timeout_s = api.timeout_s;
  o.retries = static_cast<int>(api.retries);
  o.binary = api.binary;
  if (!api.token_env.empty()) {
    const char* token = std::getenv(api.token_env.c_str());
    if (token == nullptr || *token == '\0')
      throw ConfigError("api.token_env = \"" + api.token_env + "\": that environment variable is not set (it holds the bearer token)");
    o.token = token;
  }
  client_ = std::make_unique<api::InferenceClient>(std::move(o));
  metadata_ = client_->connect();
  const std::string where = api.url + " model " + model_text(metadata_);
  const std::vector<std::int64_t> want_in{-1, 1, image_size, image_size};
  if (metadata_.inputs.size() != 1)
    throw ModelError(where + ": has " + std::to_string(metadata_.inputs.size()) + " inputs; an FM takes one (images " +
                     api::shape_text(want_in) + ")");
  const auto& in = metadata_.inputs.front();
  bool fits = in.datatype == "FP32" && in.shape.size() == 4;
  for (std::size_t i = 0; fits && i < 4; ++i) fits = in.shape[i] == -1 || (i > 0 && in.shape[i] == want_in[i]);
  if (!fits)
    throw ModelError(where + ": input \"" + in.name + "\" is " + in.datatype + " " + api::shape_text(in.shape) +
                     ", and the data are FP32 images " + api::shape_text(want_in) + " (data.image_size = " +
                     std::to_string(image_size) + ")");
  if (metadata_.outputs.empty()) throw ModelError(where + ": has no outputs");
  const auto& out = metadata_.outputs.front();
  if (out.datatype != "FP32" || out.shape.size() != 2 || out.shape[1] < 1 || (out.shape[0] != -1 && out.shape[0] < 1))
    throw ModelError(where + ": output \"" + out.name + "\" is " + out.datatype + " " + api::shape_text(out.shape) +
                     "; an FM gives FP32 embeddings [-1,D] with a fixed D");
  input_name_ = in.name;
  dim_ = out.shape[1];
}

torch::Tensor RemoteModel::embed(const torch::Tensor& images) { return embed_each({images}).front(); }

std::vector<torch::Tensor> RemoteModel::embed_each(const std::vector<torch::Tensor>& batches) {
  std::vector<api::Float32Tensor> inputs;
  inputs.reserve(batches.size());
  for (const auto& b : batches) {
    const auto x = b.detach().to(torch::kFloat32).contiguous();  // (B, 1, H, W)
    const float* p = x.data_ptr<float>();
    inputs.push_back(api::Float32Tensor{input_name_, {x.size(0), x.size(1), x.size(2), x.size(3)},
                                        std::vector<float>(p, p + x.numel())});
  }
  auto outputs = client_->infer(inputs, dim_);
  std::vector<torch::Tensor> out;
  out.reserve(outputs.size());
  for (auto& o : outputs)
    out.push_back(torch::from_blob(o.data.data(), {o.shape[0], o.shape[1]}, torch::kFloat32).clone());  // (B, D)
  return out;
}

std::string RemoteModel::describe() const {
  return "remote: model " + model_text(metadata_) + " at " + client_->endpoint() + " (Open Inference Protocol, " +
         encoding() + " tensors, D = " + std::to_string(dim_) + ")";
}

}  // namespace dne::fm
