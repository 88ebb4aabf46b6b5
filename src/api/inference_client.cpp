// The Open Inference Protocol client over cpp-httplib (see inference_client.hpp).
#include "dne/api/inference_client.hpp"

#include "dne/core/stop_signal.hpp"

#include <httplib.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

namespace dne::api {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t batch_of(const Float32Tensor& t) { return t.shape.empty() ? 0 : t.shape[0]; }

bool retryable_status(int status) { return status == 429 || status == 500 || status == 502 || status == 503 || status == 504; }

std::string transport_text(httplib::Error e, double timeout_s) {
  switch (e) {
    case httplib::Error::Connection: return "could not connect (refused, unreachable or unknown host)";
    case httplib::Error::ConnectionTimeout: return "could not connect within api.timeout_s = " + std::to_string(timeout_s) + " s (timed out)";
    case httplib::Error::Read: return "no complete response within api.timeout_s = " + std::to_string(timeout_s) + " s (timed out or the connection closed)";
    case httplib::Error::Write: return "the request could not be sent (the connection closed)";
    default: return "transport error: " + httplib::to_string(e);
  }
}

}  // namespace

double parse_retry_after(const std::string& value, double now_unix) {
  if (value.empty()) return -1.0;
  if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); }))
    return value.size() > 9 ? kMaxRetryAfterSeconds : std::stod(value);
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    struct tm tm = {};
    const char* end = strptime(value.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return std::max(0.0, static_cast<double>(timegm(&tm)) - now_unix);
  }
  return -1.0;
}

Endpoint parse_endpoint(const std::string& url) {
  static const std::regex pattern(R"(^(https?)://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$)");
  std::smatch m;
  if (url.find('@') != std::string::npos)
    throw ConfigError("api.url carries credentials (user:password@host; not repeated here): put a bearer token in the "
                      "environment variable api.token_env names instead");
  if (!std::regex_match(url, m, pattern))
    throw ConfigError("api.url: \"" + url + "\" is not http[s]://host[:port][/path]");
  Endpoint e{m[1].str() + "://" + m[2].str() + m[3].str(), m[4].str()};
  while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  return e;
}

struct InferenceClient::Impl {
  ClientOptions options;
  Endpoint endpoint;
  std::vector<std::unique_ptr<httplib::Client>> connections;  // one per request in flight
  mutable std::mutex mutex;  // stats and rng
  ClientStats stats;
  std::string output_name;  // the metadata's first output, asked for by name ("" before connect)
  std::mt19937_64 rng{std::random_device{}()};  // jitter only: never touches a result

  explicit Impl(ClientOptions o) : options(std::move(o)), endpoint(parse_endpoint(options.url)) {
    signal(SIGPIPE, SIG_IGN);  // a server that closes mid-request is an error to retry, not a signal
    const auto timeout = std::chrono::duration<double>(options.timeout_s);
    const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
    for (int i = 0; i < std::max(1, options.concurrency); ++i) {
      auto c = std::make_unique<httplib::Client>(endpoint.origin);
      c->set_keep_alive(true);
      c->set_decompress(false);  // no Accept-Encoding, and nothing a server sends is inflated
      c->set_tcp_nodelay(true);
      c->set_connection_timeout(usec / 1000000, usec % 1000000);
      c->set_read_timeout(usec / 1000000, usec % 1000000);
      c->set_write_timeout(usec / 1000000, usec % 1000000);
      if (!options.token.empty()) c->set_bearer_token_auth(options.token);
      connections.push_back(std::move(c));
    }
  }

  std::string model_path() const { return endpoint.prefix + "/v2/models/" + options.model; }

  /// Seconds before attempt `attempt` (>= 1): full jitter, at least the server's Retry-After.
  double backoff(int attempt, double retry_after) {
    const double ceiling = std::min(options.backoff_cap_s, options.backoff_base_s * std::pow(2.0, attempt - 1));
    double wait = 0.0;
    {
      std::lock_guard<std::mutex> lock(mutex);
      wait = std::uniform_real_distribution<double>(0.0, ceiling)(rng);
    }
    return std::max(wait, std::min(retry_after, kMaxRetryAfterSeconds));
  }

  /// One HTTP exchange as the client sends it: the response body is collected up to
  /// `max_response_bytes` (a larger one is an error, not an allocation the server chooses).
  struct Exchange {
    std::string method, path;
    httplib::Headers headers;
    const Body* body = nullptr;  // POST only
    std::size_t max_response_bytes = kMaxSmallResponse;
  };
  static constexpr std::size_t kMaxSmallResponse = 1 << 20;  // health, metadata, error bodies

  /// One request with retries. Returns the 2xx response (its body collected); throws
  /// RemoteError after a non-retryable status, an oversized response or the last attempt.
  httplib::Response exchange(httplib::Client& c, const std::string& what, const Exchange& x) {
    std::string last;
    const int attempts = 1 + std::max(0, options.retries);
    const std::int64_t bytes_out = x.body ? static_cast<std::int64_t>(x.body->bytes.size()) : 0;
    double retry_after = -1.0;
    for (int attempt = 0; attempt < attempts; ++attempt) {
      if (attempt > 0) {
        // The back-off (up to a minute with Retry-After) is a cancellation point, in slices.
        for (double left = backoff(attempt, retry_after); left > 0.0; left -= 0.1) {
          throw_if_stop_requested("while " + what + " waited to retry");
          std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.1, left)));
        }
        std::lock_guard<std::mutex> lock(mutex);
        ++stats.retries;
      }
      retry_after = -1.0;
      httplib::Request req;
      req.method = x.method;
      req.path = x.path;
      req.headers = x.headers;
      if (x.body) {
        req.body = x.body->bytes;
        req.set_header("Content-Type", x.body->content_type);
      }
      std::string received;
      bool too_large = false;
      req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
        if (received.size() + n > x.max_response_bytes) return !(too_large = true);
        received.append(data, n);
        return true;
      };
      auto result = c.send(req);
      {
        std::lock_guard<std::mutex> lock(mutex);
        ++stats.requests;
        stats.bytes_sent += bytes_out;
        stats.bytes_received += static_cast<std::int64_t>(received.size());
      }
      if (too_large)
        throw RemoteError(what + ": the response is larger than the " + std::to_string(x.max_response_bytes) +
                          " bytes this request can need (a broken or hostile server)");
      if (!result) {
        last = transport_text(result.error(), options.timeout_s);
        continue;
      }
      httplib::Response res = *result;
      res.body = std::move(received);
      if (res.status >= 200 && res.status < 300) return res;
      last = "HTTP " + std::to_string(res.status) + ": " + error_message(res.body);
      if (!retryable_status(res.status)) throw RemoteError(what + ": " + last);
      const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
      retry_after = parse_retry_after(res.get_header_value("Retry-After"), now);
    }
    throw RemoteError(what + ": gave up after " + std::to_string(attempts) + " attempt" + (attempts > 1 ? "s" : "") +
                      " (api.retries = " + std::to_string(options.retries) + "); the last: " + last);
  }

  Float32Tensor infer_one(httplib::Client& c, const Float32Tensor& input, std::int64_t dim, std::size_t index) {
    const std::string path = model_path() + "/infer";
    const std::string what = "POST " + endpoint.origin + path + " (request " + std::to_string(index) + ", " +
                             std::to_string(input.shape.empty() ? 0 : input.shape[0]) + " images)";
    InferRequest request;
    request.input = input;
    request.output_name = output_name;
    request.binary_output = options.binary;
    const Body body = encode_request(request, options.binary);
    httplib::Headers headers;
    if (body.json_length >= 0) headers.emplace("Inference-Header-Content-Length", std::to_string(body.json_length));
    const auto t0 = Clock::now();
    Exchange x{"POST", path, headers, &body, kMaxSmallResponse};
    // JSON spells a float in at most 16 bytes ("-1.23456789e-38,"), binary in 4.
    if (dim > 0) x.max_response_bytes += static_cast<std::size_t>(batch_of(input) * dim) * 16;
    else x.max_response_bytes = std::size_t{1} << 30;
    const auto res = exchange(c, what, x);
    std::int64_t json_length = -1;
    if (res.has_header("Inference-Header-Content-Length")) {
      const std::string v = res.get_header_value("Inference-Header-Content-Length");
      if (v.empty() || !std::all_of(v.begin(), v.end(), [](unsigned char ch) { return std::isdigit(ch); }) || v.size() > 18)
        throw RemoteError(what + ": Inference-Header-Content-Length \"" + v + "\" is not a byte count");
      json_length = std::stoll(v);
    }
    InferResponse response;
    try {
      response = decode_response(res.body, json_length);
    } catch (const ProtocolError& e) {
      throw RemoteError(what + ": the response breaks the protocol: " + e.what());
    }
    Float32Tensor& out = response.output;
    const std::int64_t batch = input.shape.empty() ? 0 : input.shape[0];
    if (out.shape.size() != 2 || out.shape[0] != batch || (dim >= 0 && out.shape[1] != dim))
      throw RemoteError(what + ": output \"" + out.name + "\" has shape " + shape_text(out.shape) + ", expected [" +
                        std::to_string(batch) + "," + (dim >= 0 ? std::to_string(dim) : std::string("D")) + "]");
    for (std::size_t i = 0; i < out.data.size(); ++i)
      if (!std::isfinite(out.data[i]))
        throw RemoteError(what + ": output value " + std::to_string(i) + " is not finite (NaN or Inf)");
    std::lock_guard<std::mutex> lock(mutex);
    stats.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return std::move(out);
  }
};

InferenceClient::InferenceClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
InferenceClient::~InferenceClient() = default;

ModelMetadata InferenceClient::connect() {
  auto& c = *impl_->connections.front();
  const std::string ready = impl_->endpoint.prefix + "/v2/health/ready";
  impl_->exchange(c, "GET " + impl_->endpoint.origin + ready, Impl::Exchange{"GET", ready, {}, nullptr, Impl::kMaxSmallResponse});
  const std::string path = impl_->model_path();
  const auto res = impl_->exchange(c, "GET " + impl_->endpoint.origin + path + " (model metadata)",
                                   Impl::Exchange{"GET", path, {}, nullptr, Impl::kMaxSmallResponse});
  try {
    auto metadata = decode_metadata(res.body);
    if (!metadata.outputs.empty()) impl_->output_name = metadata.outputs.front().name;
    return metadata;
  } catch (const ProtocolError& e) {
    throw RemoteError("GET " + impl_->endpoint.origin + path + ": the model metadata breaks the protocol: " + e.what());
  }
}

std::vector<Float32Tensor> InferenceClient::infer(const std::vector<Float32Tensor>& inputs, std::int64_t dim) {
  std::vector<Float32Tensor> outputs(inputs.size());
  const std::size_t lanes = std::min(inputs.size(), impl_->connections.size());
  if (lanes <= 1) {
    for (std::size_t i = 0; i < inputs.size(); ++i) outputs[i] = impl_->infer_one(*impl_->connections.front(), inputs[i], dim, i);
    return outputs;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex first_mutex;
  std::vector<std::thread> threads;
  for (std::size_t lane = 0; lane < lanes; ++lane)
    threads.emplace_back([&, lane] {
      for (std::size_t i; !failed && (i = next++) < inputs.size();) {
        try {
          outputs[i] = impl_->infer_one(*impl_->connections[lane], inputs[i], dim, i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(first_mutex);
          if (!first) first = std::current_exception();
          failed = true;
        }
      }
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
  return outputs;
}

ClientStats InferenceClient::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

std::string InferenceClient::endpoint() const { return impl_->endpoint.origin + impl_->endpoint.prefix; }

}  // namespace dne::api
