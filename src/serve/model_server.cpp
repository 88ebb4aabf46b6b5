// The Open Inference Protocol server over cpp-httplib (see model_server.hpp).
#include "dne/serve/model_server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "dne/core/errors.hpp"

namespace dne::serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kInput = "images";
constexpr const char* kOutput = "embeddings";
/// GET/POST paths of one model, with an optional version: (name)(version)?(suffix).
const char* kModelPath = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

void reply_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(api::error_body(message), "application/json");
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  struct tm tm = {};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

/// A token bucket per client address: `rate` requests per second, bursts of max(1, rate).
class RateLimiter {
 public:
  explicit RateLimiter(double rate) : rate_(rate), burst_(std::max(1.0, rate)) {}
  /// 0 if the request may pass, else the whole seconds to wait (>= 1).
  long admit(const std::string& client) {
    if (rate_ <= 0.0) return 0;
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = Clock::now();
    auto [it, fresh] = buckets_.try_emplace(client, Bucket{burst_, now});
    Bucket& b = it->second;
    if (!fresh) b.tokens = std::min(burst_, b.tokens + std::chrono::duration<double>(now - b.last).count() * rate_);
    b.last = now;
    if (b.tokens >= 1.0) {
      b.tokens -= 1.0;
      return 0;
    }
    return std::max(1L, static_cast<long>(std::ceil((1.0 - b.tokens) / rate_)));
  }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  double rate_, burst_;
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

/// At most `limit` holders at once (a counting semaphore; C++17 has none).
class Slots {
 public:
  explicit Slots(int limit) : free_(std::max(1, limit)) {}
  void acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    freed_.wait(lock, [this] { return free_ > 0; });
    --free_;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++free_;
    }
    freed_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  int free_;
};

thread_local Clock::time_point request_start;  // stamped before routing, read by the access log

}  // namespace

struct ModelServer::Impl {
  ServedModel model;
  ServerOptions options;
  httplib::Server http;
  RateLimiter limiter;
  Slots model_slots;
  std::mutex log_mutex, failure_mutex;
  std::mt19937_64 failure_rng;
  std::ofstream access_log;
  std::atomic<std::int64_t> requests{0}, images{0}, errors{0};
  std::atomic<bool> stop_requested{false};

  Impl(ServedModel m, ServerOptions o)
      : model(std::move(m)),
        options(std::move(o)),
        limiter(options.rate_limit),
        model_slots(options.model_workers),
        failure_rng(options.failure_seed) {
    if (!options.access_log.empty()) {
      access_log.open(options.access_log, std::ios::app);
      if (!access_log) throw ConfigError("--access-log " + options.access_log + ": cannot open it for appending");
    }
    const int threads = std::max(1, options.threads);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    http.set_payload_max_length(static_cast<std::size_t>(options.max_request_bytes));
    http.set_keep_alive_max_count(1000000);
    http.set_keep_alive_timeout(60);
    http.set_read_timeout(60, 0);
    http.set_write_timeout(60, 0);
    http.set_tcp_nodelay(true);
    http.set_socket_options([](socket_t sock) {  // SO_REUSEADDR only: a second server on the port must fail
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    routes();
  }

  api::ModelMetadata metadata() const {
    api::ModelMetadata m;
    m.name = options.model_name;
    m.versions = {options.model_version};
    m.platform = model.platform;
    std::vector<std::int64_t> in{-1};
    in.insert(in.end(), model.input_shape.begin(), model.input_shape.end());
    m.inputs = {api::TensorSpec{kInput, "FP32", in}};
    m.outputs = {api::TensorSpec{kOutput, "FP32", {-1, model.dim}}};
    return m;
  }

  /// False (and a 401 or 429 written) unless the request has the token and is within the rate
  /// limit. Checked inside the handlers, after the body has been read: a refusal from before
  /// routing would leave the body unread on the kept-alive connection, to be parsed as the next
  /// request.
  bool admitted(const httplib::Request& req, httplib::Response& res) {
    if (!options.token.empty() && req.get_header_value("Authorization") != "Bearer " + options.token) {
      reply_error(res, 401, "missing or wrong bearer token (Authorization: Bearer ...)");
      res.set_header("WWW-Authenticate", "Bearer");
      return false;
    }
    if (const long wait = limiter.admit(req.remote_addr); wait > 0) {
      reply_error(res, 429, "rate limit of " + std::to_string(options.rate_limit) + " requests per second exceeded");
      res.set_header("Retry-After", std::to_string(wait));
      return false;
    }
    return true;
  }

  /// False (and a 401, 429 or 404 written) unless the request is admitted and names this model
  /// (and its version).
  bool is_this_model(const httplib::Request& req, httplib::Response& res) {
    if (!admitted(req, res)) return false;
    if (req.matches[1].str() != options.model_name) {
      reply_error(res, 404, "unknown model \"" + req.matches[1].str() + "\" (this server has \"" + options.model_name + "\")");
      return false;
    }
    if (req.matches[2].matched && req.matches[2].str() != options.model_version) {
      reply_error(res, 404, "model \"" + options.model_name + "\" has no version \"" + req.matches[2].str() +
                                "\" (it has \"" + options.model_version + "\")");
      return false;
    }
    return true;
  }

  void infer(const httplib::Request& req, httplib::Response& res) {
    if (!is_this_model(req, res)) return;
    std::int64_t json_length = -1;
    if (req.has_header("Inference-Header-Content-Length")) {
      const std::string v = req.get_header_value("Inference-Header-Content-Length");
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        return reply_error(res, 400, "Inference-Header-Content-Length \"" + v + "\" is not a byte count");
      json_length = std::stoll(v);
    }
    api::InferRequest request;
    try {
      request = api::decode_request(req.body, json_length);
    } catch (const api::ProtocolError& e) {
      return reply_error(res, 400, e.what());
    }
    const auto& in = request.input;
    if (in.name != kInput) return reply_error(res, 400, "unknown input \"" + in.name + "\" (this model's input is \"images\")");
    if (!request.output_name.empty() && request.output_name != kOutput)
      return reply_error(res, 400, "unknown output \"" + request.output_name + "\" (this model's output is \"embeddings\")");
    std::vector<std::int64_t> expected{in.shape.empty() ? 0 : in.shape[0]};
    expected.insert(expected.end(), model.input_shape.begin(), model.input_shape.end());
    if (in.shape != expected || expected[0] < 1)
      return reply_error(res, 400, "input \"images\" has shape " + api::shape_text(in.shape) + ", expected [B," +
                                       api::shape_text(model.input_shape).substr(1) + " with B >= 1");
    const std::int64_t batch = in.shape[0];
    if (batch > options.max_batch)
      return reply_error(res, 400, "a batch of " + std::to_string(batch) + " images is over this server's limit of " +
                                       std::to_string(options.max_batch) + " (--max-batch)");
    if (options.failure_rate > 0.0) {
      bool fail = false;
      {
        std::lock_guard<std::mutex> lock(failure_mutex);
        fail = std::uniform_real_distribution<double>(0.0, 1.0)(failure_rng) < options.failure_rate;
      }
      if (fail) return reply_error(res, 500, "injected failure (--failure-rate " + std::to_string(options.failure_rate) + ")");
    }
    if (options.latency_ms > 0.0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options.latency_ms));
    api::InferResponse response;
    response.model_name = options.model_name;
    response.model_version = options.model_version;
    response.id = request.id;
    response.output.name = kOutput;
    response.output.shape = {batch, model.dim};
    model_slots.acquire();
    try {
      response.output.data = model.embed(in.data, batch);
    } catch (const std::exception& e) {
      model_slots.release();
      return reply_error(res, 500, std::string("the model failed: ") + e.what());
    }
    model_slots.release();
    if (static_cast<std::int64_t>(response.output.data.size()) != batch * model.dim)
      return reply_error(res, 500, "the model returned " + std::to_string(response.output.data.size()) + " values for " +
                                       std::to_string(batch) + " x " + std::to_string(model.dim));
    for (const float v : response.output.data)
      if (!std::isfinite(v)) return reply_error(res, 500, "the model returned non-finite embeddings (NaN or Inf)");
    const api::Body body = api::encode_response(response, request.binary_output);
    if (body.json_length >= 0) res.set_header("Inference-Header-Content-Length", std::to_string(body.json_length));
    res.set_content(body.bytes, body.content_type.c_str());
    images += batch;
  }

  void routes() {
    http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      request_start = Clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    const auto ok = [](httplib::Response& res, const char* field) {
      res.set_content(std::string("{\"") + field + "\":true}", "application/json");
    };
    http.Get("/v2/health/live", [ok](const httplib::Request&, httplib::Response& res) { ok(res, "live"); });
    http.Get("/v2/health/ready", [ok](const httplib::Request&, httplib::Response& res) { ok(res, "ready"); });
    http.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"name":"dne-serve","version":"1","extensions":["binary_tensor_data"]})", "application/json");
    });
    http.Get(kModelPath, [this](const httplib::Request& req, httplib::Response& res) {
      if (is_this_model(req, res)) res.set_content(api::encode_metadata(metadata()), "application/json");
    });
    http.Get(std::string(kModelPath) + "/ready", [this, ok](const httplib::Request& req, httplib::Response& res) {
      if (is_this_model(req, res)) ok(res, "ready");
    });
    http.Post(std::string(kModelPath) + "/infer", [this](const httplib::Request& req, httplib::Response& res) { infer(req, res); });
    http.Get("/dne/stats", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"requests\":" + std::to_string(requests.load()) + ",\"images\":" + std::to_string(images.load()) +
                          ",\"errors\":" + std::to_string(errors.load()) + "}",
                      "application/json");
    });
    // Statuses the library sets itself (404 no route, 413 too large) get an {"error"} body too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      reply_error(res, res.status,
                  res.status == 413 ? "the request is larger than this server's limit (--max-request-mb)"
                  : res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                      : "HTTP " + std::to_string(res.status));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      ++requests;
      if (res.status >= 400) ++errors;
      if (!access_log.is_open()) return;
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - request_start).count();
      std::lock_guard<std::mutex> lock(log_mutex);
      access_log << utc_now() << ' ' << req.remote_addr << ' ' << req.method << ' ' << req.path << ' ' << res.status
                 << " in=" << req.body.size() << " out=" << res.body.size() << " ms=" << ms << '\n'
                 << std::flush;
    });
  }
};

ModelServer::ModelServer(ServedModel model, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options))) {}
ModelServer::~ModelServer() = default;

int ModelServer::bind() {
  const auto& o = impl_->options;
  const int port = o.port == 0 ? impl_->http.bind_to_any_port(o.host) : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0)
    throw ConfigError("cannot listen on " + o.host + ":" + std::to_string(o.port) + " (address in use, or not this host's)");
  return port;
}

void ModelServer::serve() {
  // stop() is a no-op until the listener runs: a stop requested before that is replayed here.
  std::atomic<bool> done{false};
  std::thread replay([this, &done] {
    while (!done && !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    while (!done && impl_->stop_requested) {
      impl_->http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  impl_->http.listen_after_bind();
  done = true;
  replay.join();
}

void ModelServer::stop() {
  impl_->stop_requested = true;
  impl_->http.stop();
}

ServerCounters ModelServer::counters() const {
  return ServerCounters{impl_->requests.load(), impl_->images.load(), impl_->errors.load()};
}

api::ModelMetadata ModelServer::metadata() const { return impl_->metadata(); }

}  // namespace dne::serve
