// An Open Inference Protocol server for one embedding model (what `dne serve` runs).
//
// Endpoints: GET /v2/health/live, /v2/health/ready, /v2 (server metadata),
// /v2/models/<name>[/versions/<v>] (model metadata) and .../ready, POST .../infer (JSON or
// Triton's binary tensor extension), and GET /dne/stats (counters as JSON). Experiment knobs:
// a per-client token-bucket rate limit (429 with Retry-After), an injected latency per
// inference and an injected failure rate (500).
//
// The server is built to be reachable by hostile clients (docs/reliability.md, "Security"):
// HTTP is Boost.Beast on one asynchronous I/O thread, so an open connection costs a socket and
// a bounded buffer, never a thread. Headers are read first and decided on before any body byte
// is read: the route (404), the bearer token (401, compared in constant time), the rate limit
// (429), the declared size (413), compression (415: bodies are never inflated) and the server's
// memory budget for bodies being read (503); a refused request's connection is closed, so an
// unread body can never be parsed as the next request. Chunked bodies count against the same
// size limit. Waits are bounded: a header deadline, an idle keep-alive deadline, a per-read
// stall deadline and a minimum body rate, a write deadline; connections above a cap get a fast
// 503 with Retry-After. Requests are decoded and run by a pool of `threads` workers; the model
// runs at most `model_workers` requests at a time (one forward pass at a time by default, its
// intra-op threads parallelising the batch; each batch gives the same bits as in process either
// way), while injected latency is spent outside that limit, so that many slow requests overlap
// as they would on a real remote service. `stop()` stops accepting, closes idle connections and
// connections still sending, answers the requests being processed, and returns from `serve()`.
// Torch-free: the model is a callback.
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
  std::int64_t max_request_bytes = 64ll << 20;   // one body, declared or chunked (413 above)
  std::int64_t max_body_bytes_total = 256ll << 20;  // bodies being read or processed at once (503 above)
  std::int64_t max_connections = 1024;  // open connections (a fast 503 above)
  double header_timeout_s = 10.0;       // a new connection's request header must arrive within this
  double idle_timeout_s = 5.0;          // a kept-alive connection may wait this long for its next request
  double body_stall_s = 10.0;           // longest silence while a body is read (408 and close)
  double min_body_rate = 64.0 * 1024;   // bytes per second a body must average after its first body_stall_s
  double write_timeout_s = 30.0;        // a response must be taken by the client within this
  double drain_timeout_s = 10.0;        // stop(): connections still open this long after it are closed
  double max_abs_input = 1000.0;        // |pixel| above this (or NaN/Inf) is a 400
  std::string token;                    // required bearer token; "" = none
  double rate_limit = 0.0;              // requests per second per client address; 0 = off
  double latency_ms = 0.0;              // added to every inference
  double failure_rate = 0.0;            // share of inferences answered with 500
  std::uint64_t failure_seed = 0;       // the failure draws' stream
  int threads = 8;                      // request workers (requests decoded and answered at once)
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
  std::int64_t connections_refused = 0;               // over max_connections (503)
  std::int64_t log_failures = 0;                      // access-log lines that could not be written
};

class ModelServer {
 public:
  ModelServer(ServedModel model, ServerOptions options);
  ~ModelServer();
  ModelServer(const ModelServer&) = delete;
  ModelServer& operator=(const ModelServer&) = delete;

  /// Bind the listening socket; returns the port. Throws dne::Error naming host and port.
  int bind();
  /// Serve until stop(); returns after the requests in flight are answered (or, past
  /// drain_timeout_s, their connections closed).
  void serve();
  /// Thread-safe; may be called before serve(), which then returns at once.
  void stop();
  ServerCounters counters() const;
  /// The model metadata the server reports.
  api::ModelMetadata metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dne::serve
