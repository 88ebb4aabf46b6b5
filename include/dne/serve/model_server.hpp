// An Open Inference Protocol server for one embedding model (what `dne serve` runs).
//
// Endpoints: GET /v2/health/live, /v2/health/ready, /v2 (server metadata),
// /v2/models/<name>[/versions/<v>] (model metadata) and .../ready, POST .../infer (JSON or
// Triton's binary tensor extension), and GET /dne/stats (counters as JSON). Limits and
// experiment knobs: a request-size limit (413), a batch limit (400), an optional bearer token
// (401; the health endpoints stay open), a per-client token-bucket rate limit (429 with
// Retry-After), an injected latency per inference and an injected failure rate (500). Requests
// are served by a pool of `threads` HTTP workers; the model runs at most `model_workers`
// requests at a time (1 by default: one forward pass at a time, its intra-op threads
// parallelising the batch; each batch gives the same bits as in process either way), while
// injected latency is spent outside that limit, so that many slow requests overlap as they would
// on a real remote service. `stop()` finishes the requests in flight and
// returns from `serve()`. Torch-free: the model is a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dne/api/oip_protocol.hpp"

namespace dne::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                         // 0 = any free port (bind() returns it)
  std::string model_name = "dne";
  std::string model_version = "1";
  std::int64_t max_batch = 256;         // images per request
  std::int64_t max_request_bytes = 64ll << 20;
  std::string token;                    // required bearer token; "" = none
  double rate_limit = 0.0;              // requests per second per client address; 0 = off
  double latency_ms = 0.0;              // added to every inference
  double failure_rate = 0.0;            // share of inferences answered with 500
  std::uint64_t failure_seed = 0;       // the failure draws' stream
  int threads = 8;                      // HTTP worker threads
  int model_workers = 1;                // forward passes at once (the model must be safe to call concurrently)
  std::string access_log;               // file to append one line per request to; "" = none
};

/// The served model: images (B, channels, H, W) row-major -> embeddings (B, dim) row-major.
struct ServedModel {
  std::vector<std::int64_t> input_shape;   // (channels, H, W), without the batch dimension
  std::int64_t dim = 0;
  std::string platform = "pytorch_libtorch";
  std::function<std::vector<float>(const std::vector<float>& images, std::int64_t batch)> embed;
};

struct ServerCounters {
  std::int64_t requests = 0, images = 0, errors = 0;  // errors: responses with status >= 400
};

class ModelServer {
 public:
  ModelServer(ServedModel model, ServerOptions options);
  ~ModelServer();
  ModelServer(const ModelServer&) = delete;
  ModelServer& operator=(const ModelServer&) = delete;

  /// Bind the listening socket; returns the port. Throws dne::Error naming host and port.
  int bind();
  /// Serve until stop(); returns after the requests in flight are answered.
  void serve();
  /// Thread-safe; does nothing before serve() has started (call it again then).
  void stop();
  ServerCounters counters() const;
  /// The model metadata the server reports.
  api::ModelMetadata metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dne::serve
