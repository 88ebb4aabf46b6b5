// fm.kind = "remote": a foundation model behind an Open Inference Protocol server, as an
// EmbeddingModel (never a DifferentiableModel: no gradients cross the network).
//
// Construction connects: the server must be ready and its model metadata must take FP32
// images [-1, 1, H, W] of the data's size and give FP32 embeddings [-1, D]; anything else is a
// ModelError naming both shapes. Each batch handed to embed / embed_each is one request, sent as
// it is (never re-cut), so the server embeds exactly the batches an in-process model would and
// the bits agree; embed_each keeps api.concurrency requests in flight. The bearer token is read
// from the environment variable api.token_env names, and kept only inside the HTTP client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dne/api/inference_client.hpp"
#include "dne/config/config.hpp"
#include "dne/fm/foundation_model.hpp"

namespace dne::fm {

class RemoteModel : public EmbeddingModel {
 public:
  /// Connects to api.url (readiness and metadata, with retries); ModelError / ConfigError.
  RemoteModel(const config::ApiOptions& api, std::int64_t image_size);

  torch::Tensor embed(const torch::Tensor& images) override;
  std::vector<torch::Tensor> embed_each(const std::vector<torch::Tensor>& batches) override;
  int parallelism() const override { return concurrency_; }
  std::int64_t embed_dim() const override { return dim_; }
  std::string describe() const override;

  const api::ModelMetadata& metadata() const { return metadata_; }
  api::ClientStats stats() const { return client_->stats(); }
  std::string endpoint() const { return client_->endpoint(); }
  std::string encoding() const { return binary_ ? "binary" : "json"; }

 private:
  std::unique_ptr<api::InferenceClient> client_;
  api::ModelMetadata metadata_;
  std::string input_name_;
  std::int64_t image_size_, dim_ = 0;
  int concurrency_ = 1;
  bool binary_ = false;
};

}  // namespace dne::fm
