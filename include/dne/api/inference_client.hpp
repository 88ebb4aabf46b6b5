// An Open Inference Protocol client for one model: readiness and metadata at connect time,
// then batches of FP32 images in, FP32 embeddings out, with bounded retries.
//
// Requests go over `concurrency` keep-alive connections (one cpp-httplib client each); a call
// to `infer` sends its batches over all of them at once and returns the results in order.
// Connection errors, 429 and 5xx are retried up to `retries` times with exponential backoff
// and full jitter (a wait is uniform in [0, min(cap, base * 2^attempt)]), and never shorter
// than the server's Retry-After (seconds or an HTTP date; capped at kMaxRetryAfterSeconds). Every
// other status, a body that breaks the protocol, a wrong shape or a non-finite value is a
// RemoteError at once, and so is a response larger than the request can need (the body is
// collected up to that bound, never inflated: the client asks for no compression and inflates
// none). Each attempt is bounded by `timeout_s` per socket operation, so a request
// ends within (1 + retries) attempts and waits. The bearer token goes into the Authorization
// header only: no message or statistic contains it. Torch-free; httplib stays in the .cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dne/api/oip_protocol.hpp"
#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"

namespace dne::api {

/// The remote model failed or broke the protocol: a model error for the experiment.
class RemoteError : public ModelError {
 public:
  using ModelError::ModelError;
};

struct ClientOptions {
  std::string url;            // http[s]://host[:port][/prefix]
  std::string model;          // model name on the server
  // The [api] keys' defaults (config::defaults(), the one place they are written):
  int concurrency = static_cast<int>(config::defaults().api.concurrency);  // requests in flight
  double timeout_s = config::defaults().api.timeout_s;  // connect / read / write timeout of one attempt
  int retries = static_cast<int>(config::defaults().api.retries);  // extra attempts on connection errors, 429 and 5xx
  std::string token;  // bearer token; "" = none
  bool binary = config::defaults().api.binary;  // Triton binary tensor extension for input and output
  double backoff_base_s = 0.1;
  double backoff_cap_s = 5.0;
};

/// What the client did; latencies are of successful requests (ms, send to decoded response).
struct ClientStats {
  std::int64_t requests = 0;  // HTTP exchanges attempted, retries included
  std::int64_t retries = 0;
  std::int64_t bytes_sent = 0, bytes_received = 0;
  std::vector<double> latency_ms;
};

/// The largest Retry-After the client honours (seconds).
constexpr double kMaxRetryAfterSeconds = 60.0;

/// Seconds to wait from a Retry-After value (delay-seconds or an HTTP date, RFC 9110 10.2.3)
/// received at `now_unix`; negative when it is absent or cannot be read.
double parse_retry_after(const std::string& value, double now_unix);

/// The endpoint split into scheme://host:port and a path prefix ("" or "/a/b"); throws
/// ConfigError for anything else (credentials in the URL, other schemes, a query).
struct Endpoint {
  std::string origin, prefix;
};
Endpoint parse_endpoint(const std::string& url);

class InferenceClient {
 public:
  explicit InferenceClient(ClientOptions options);
  ~InferenceClient();
  InferenceClient(const InferenceClient&) = delete;
  InferenceClient& operator=(const InferenceClient&) = delete;

  /// GET /v2/health/ready and GET /v2/models/<model> (with retries); returns the metadata.
  ModelMetadata connect();
  /// One request per input tensor (name, shape (B, ...), data), `concurrency` at a time. Every
  /// response must hold one FP32 output of shape (B, dim) with finite values (dim < 0: any,
  /// the same for all). Throws RemoteError naming the request and what was wrong.
  std::vector<Float32Tensor> infer(const std::vector<Float32Tensor>& inputs, std::int64_t dim);

  ClientStats stats() const;
  /// scheme://host:port[/prefix] (the URL carries no credentials by construction).
  std::string endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dne::api
