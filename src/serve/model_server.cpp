// The Open Inference Protocol server over Boost.Beast (see model_server.hpp).
//
// Threads: one I/O thread runs the io_context (accepting, reading, writing, every deadline);
// all connection state lives on it, so it needs no locks. A complete request is handed to a
// pool of `threads` workers, which decode it, run the model and encode the answer, and post the
// response back to the I/O thread. A connection's life:
//   read header (deadline) -> decide from the header alone (route, token, rate, size, encoding,
//   memory budget) -> [100 Continue] -> read body in pieces (stall deadline, minimum rate,
//   size limit) -> worker -> write (deadline) -> keep alive (idle deadline) or close.
// A refusal is written with `Connection: close`, the send side is shut down and whatever the
// client still sends is read and discarded for a bounded time (a "lingering close", so the
// client sees the answer instead of a reset), then the socket is closed.
#include "dne/serve/model_server.hpp"

#include <fcntl.h>
#include <unistd.h>

#define BOOST_BEAST_USE_STD_STRING_VIEW  // beast::string_view is std::string_view (this TU only uses Beast)
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <thread>
#include <unordered_map>

#include "dne/core/errors.hpp"

namespace dne::serve {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr const char* kInput = "images";
constexpr const char* kOutput = "embeddings";
constexpr std::size_t kHeaderLimit = 16 * 1024;     // request line + headers (431 above)
constexpr std::size_t kReadBuffer = 64 * 1024;      // per connection, bodies pass through it in pieces
constexpr std::size_t kLingerBytes = 1 << 20;       // discarded after a refusal before closing
constexpr double kLingerSeconds = 2.0;
constexpr std::size_t kQuoted = 64;                 // bytes of client text an error message repeats

/// GET/POST paths of one model, with an optional version: (name)(version)?(suffix).
const std::regex kModelPath(R"(^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$)");

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

/// At most `limit` bytes of client text, escaped for a message or a log field.
std::string printable(std::string_view text, std::size_t limit = kQuoted) { return api::printable_prefix(text, limit, true); }

/// Equal strings, in a time that depends only on the length of `given` (the client's).
bool same_secret(std::string_view given, std::string_view expected) {
  unsigned diff = given.size() != expected.size() ? 1u : 0u;
  for (std::size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i]) ^ static_cast<unsigned char>(expected.empty() ? 0 : expected[i % expected.size()]);
  return diff == 0;
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
    if (buckets_.size() > kMaxClients) forget_full(now);
    auto [it, fresh] = buckets_.try_emplace(client, Bucket{burst_, now});
    Bucket& b = it->second;
    if (!fresh) b.tokens = refilled(b, now);
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
  static constexpr std::size_t kMaxClients = 10000;  // buckets kept before full ones are dropped
  double refilled(const Bucket& b, Clock::time_point now) const {
    return std::min(burst_, b.tokens + std::chrono::duration<double>(now - b.last).count() * rate_);
  }
  /// A full bucket is the same as no bucket: dropping those bounds the map by the clients
  /// that are actually being limited.
  void forget_full(Clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) it = refilled(it->second, now) >= burst_ ? buckets_.erase(it) : std::next(it);
  }
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

/// What a handler answers.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after it (a refusal before the body was read)
};

Reply error_reply(int status, const std::string& message) {
  Reply r;
  r.status = status;
  r.body = api::error_body(message);
  return r;
}

/// The route of a request target, decided from the request line alone.
struct Route {
  enum Kind { kNone, kLive, kReady, kServer, kStats, kModel, kModelReady, kInfer } kind = kNone;
  std::string name, version;  // for the model routes
  bool has_version = false;
  bool needs_token() const { return kind == kModel || kind == kModelReady || kind == kInfer; }
};

Route route_of(http::verb method, std::string_view target) {
  Route r;
  const std::string path(target.substr(0, target.find('?')));
  if (method == http::verb::get) {
    if (path == "/v2/health/live") r.kind = Route::kLive;
    else if (path == "/v2/health/ready") r.kind = Route::kReady;
    else if (path == "/v2") r.kind = Route::kServer;
    else if (path == "/dne/stats") r.kind = Route::kStats;
  }
  std::smatch m;
  if (r.kind == Route::kNone && std::regex_match(path, m, kModelPath)) {
    const std::string suffix = m[3].str();
    if (method == http::verb::get && suffix.empty()) r.kind = Route::kModel;
    else if (method == http::verb::get && suffix == "/ready") r.kind = Route::kModelReady;
    else if (method == http::verb::post && suffix == "/infer") r.kind = Route::kInfer;
    r.name = m[1].str();
    r.has_version = m[2].matched;
    r.version = m[2].str();
  }
  return r;
}

}  // namespace

struct ModelServer::Impl {
  class Session;

  ServedModel model;
  ServerOptions options;
  RateLimiter limiter;
  Slots model_slots;
  std::mutex failure_mutex, log_mutex;
  std::mt19937_64 failure_rng;
  int log_fd = -1;
  std::atomic<std::int64_t> requests{0}, images{0}, errors{0}, refused{0}, log_failures{0};

  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::thread_pool workers;
  asio::steady_timer drain_timer{io};
  // I/O-thread state:
  bool stopping = false;
  const std::string busy_reply = [] {  // the canned answer over max_connections
    const std::string body = api::error_body("too many open connections (--max-connections); retry shortly");
    return "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: application/json\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::int64_t body_bytes_reserved = 0;

  Impl(ServedModel m, ServerOptions o)
      : model(std::move(m)),
        options(std::move(o)),
        limiter(options.rate_limit),
        model_slots(options.model_workers),
        failure_rng(options.failure_seed),
        workers(static_cast<std::size_t>(std::max(1, options.threads))) {
    if (!options.access_log.empty()) {
      log_fd = ::open(options.access_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (log_fd < 0) throw ConfigError("--access-log " + options.access_log + ": cannot open it for appending");
    }
  }
  ~Impl() {
    workers.join();
    if (log_fd >= 0) ::close(log_fd);
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

  /// The refusal a request gets from its header alone, if any (I/O thread, before its body).
  std::optional<Reply> refusal(const Request& req, const Route& route, const std::string& client,
                               std::optional<std::uint64_t> content_length, bool chunked) {
    if (route.kind == Route::kNone)
      return error_reply(404, "no such endpoint: " + printable(req.method_string()) + " " + printable(req.target()));
    if (const auto te = req[http::field::transfer_encoding]; !te.empty() && !beast::iequals(te, "chunked"))
      return error_reply(501, "Transfer-Encoding \"" + printable(te) + "\" is not supported (only chunked)");
    if (const auto ce = req[http::field::content_encoding]; !ce.empty() && !beast::iequals(ce, "identity"))
      return error_reply(415, "Content-Encoding \"" + printable(ce) +
                                  "\" is not accepted: this server never inflates a body (send it uncompressed)");
    if (route.needs_token() && !options.token.empty() &&
        !same_secret(req[http::field::authorization], "Bearer " + options.token)) {
      Reply r = error_reply(401, "missing or wrong bearer token (Authorization: Bearer ...)");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    if (route.needs_token())
      if (const long wait = limiter.admit(client); wait > 0) {
        Reply r = error_reply(429, "rate limit of " + std::to_string(options.rate_limit) + " requests per second exceeded");
        r.headers.emplace_back("Retry-After", std::to_string(wait));
        return r;
      }
    if (content_length && *content_length > static_cast<std::uint64_t>(options.max_request_bytes))
      return error_reply(413, "a body of " + std::to_string(*content_length) + " bytes is larger than this server's limit of " +
                                  std::to_string(options.max_request_bytes) + " (--max-request-mb)");
    if (route.kind != Route::kInfer && (chunked || (content_length && *content_length > 0)))
      return error_reply(400, "this endpoint takes no request body");
    return std::nullopt;
  }

  /// Bytes a body may need: its declared length, or the limit for a chunked one.
  std::int64_t reservation(std::optional<std::uint64_t> content_length) const {
    return content_length ? static_cast<std::int64_t>(*content_length) : options.max_request_bytes;
  }

  /// The answer to an admitted request (a worker thread).
  Reply handle(const Request& req, const Route& route) {
    const auto ok = [](const char* field) {
      Reply r;
      r.body = std::string("{\"") + field + "\":true}";
      return r;
    };
    switch (route.kind) {
      case Route::kLive: return ok("live");
      case Route::kReady: return ok("ready");
      case Route::kServer: {
        Reply r;
        r.body = R"({"name":"dne-serve","version":"1","extensions":["binary_tensor_data"]})";
        return r;
      }
      case Route::kStats: {
        const auto n = counters();
        Reply r;
        r.body = "{\"requests\":" + std::to_string(n.requests) + ",\"images\":" + std::to_string(n.images) +
                 ",\"errors\":" + std::to_string(n.errors) + ",\"connections_refused\":" + std::to_string(n.connections_refused) +
                 ",\"log_failures\":" + std::to_string(n.log_failures) + "}";
        return r;
      }
      default: break;
    }
    if (route.name != options.model_name)
      return error_reply(404, "unknown model \"" + printable(route.name) + "\" (this server has \"" + options.model_name + "\")");
    if (route.has_version && route.version != options.model_version)
      return error_reply(404, "model \"" + options.model_name + "\" has no version \"" + printable(route.version) +
                                  "\" (it has \"" + options.model_version + "\")");
    if (route.kind == Route::kModel) {
      Reply r;
      r.body = api::encode_metadata(metadata());
      return r;
    }
    if (route.kind == Route::kModelReady) return ok("ready");
    return infer(req);
  }

  Reply infer(const Request& req) {
    std::int64_t json_length = -1;
    if (const auto v = std::string(req["Inference-Header-Content-Length"]); req.count("Inference-Header-Content-Length")) {
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        return error_reply(400, "Inference-Header-Content-Length \"" + printable(v) + "\" is not a byte count");
      json_length = std::stoll(v);
    }
    api::InferRequest request;
    try {
      request = api::decode_request(req.body(), json_length);
    } catch (const api::ProtocolError& e) {
      return error_reply(400, e.what());
    }
    const auto& in = request.input;
    if (in.name != kInput) return error_reply(400, "unknown input \"" + printable(in.name) + "\" (this model's input is \"images\")");
    if (!request.output_name.empty() && request.output_name != kOutput)
      return error_reply(400, "unknown output \"" + printable(request.output_name) + "\" (this model's output is \"embeddings\")");
    std::vector<std::int64_t> expected{in.shape.empty() ? 0 : in.shape[0]};
    expected.insert(expected.end(), model.input_shape.begin(), model.input_shape.end());
    if (in.shape != expected || expected[0] < 1)
      return error_reply(400, "input \"images\" has shape " + printable(api::shape_text(in.shape)) + ", expected [B," +
                                  api::shape_text(model.input_shape).substr(1) + " with B >= 1");
    const std::int64_t batch = in.shape[0];
    if (batch > options.max_batch)
      return error_reply(400, "a batch of " + std::to_string(batch) + " images is over this server's limit of " +
                                  std::to_string(options.max_batch) + " (--max-batch)");
    for (std::size_t i = 0; i < in.data.size(); ++i)
      if (!(std::fabs(in.data[i]) <= options.max_abs_input)) {
        char text[96];
        if (std::isfinite(in.data[i]))
          std::snprintf(text, sizeof text, "%g, outside [-%g, %g] (--max-abs-input)", static_cast<double>(in.data[i]),
                        options.max_abs_input, options.max_abs_input);
        else
          std::snprintf(text, sizeof text, "not finite (NaN or Inf)");
        return error_reply(400, "input \"images\" element " + std::to_string(i) + " is " + text);
      }
    if (options.failure_rate > 0.0) {
      bool fail = false;
      {
        std::lock_guard<std::mutex> lock(failure_mutex);
        fail = std::uniform_real_distribution<double>(0.0, 1.0)(failure_rng) < options.failure_rate;
      }
      if (fail) return error_reply(500, "injected failure (--failure-rate " + std::to_string(options.failure_rate) + ")");
    }
    if (options.latency_ms > 0.0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options.latency_ms));
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
      return error_reply(500, std::string("the model failed: ") + e.what());
    }
    model_slots.release();
    if (static_cast<std::int64_t>(response.output.data.size()) != batch * model.dim)
      return error_reply(500, "the model returned " + std::to_string(response.output.data.size()) + " values for " +
                                  std::to_string(batch) + " x " + std::to_string(model.dim));
    for (const float v : response.output.data)
      if (!std::isfinite(v)) return error_reply(500, "the model returned non-finite embeddings (NaN or Inf)");
    const api::Body body = api::encode_response(response, request.binary_output);
    Reply r;
    if (body.json_length >= 0) r.headers.emplace_back("Inference-Header-Content-Length", std::to_string(body.json_length));
    r.body = std::move(body.bytes);
    r.content_type = body.content_type;
    images += batch;
    return r;
  }

  /// One access-log line (any thread). Client text is escaped, so a request cannot forge a
  /// line; a line that cannot be written is counted, and reported on stderr the first time.
  void log(const std::string& client, std::string_view method, std::string_view target, int status,
           std::size_t in, std::size_t out, double ms) {
    ++requests;
    if (status >= 400) ++errors;
    if (log_fd < 0) return;
    char tail[96];
    std::snprintf(tail, sizeof tail, " %d in=%zu out=%zu ms=%.3f\n", status, in, out, ms);
    const auto field = [](std::string_view text, std::size_t limit) { return text.empty() ? std::string("-") : printable(text, limit); };
    const std::string line = utc_now() + ' ' + client + ' ' + field(method, 16) + ' ' + field(target, 512) + tail;
    std::lock_guard<std::mutex> lock(log_mutex);
    if (::write(log_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      if (log_failures++ == 0)
        std::cerr << "dne serve: --access-log " << options.access_log << ": a line could not be written (" << std::strerror(errno)
                  << "); failures are counted in /dne/stats log_failures" << std::endl;
    }
  }

  ServerCounters counters() const {
    return ServerCounters{requests.load(), images.load(), errors.load(), refused.load(), log_failures.load()};
  }

  void accept();
  void begin_stop();
  /// The open sessions, held while a caller closes them (closing may end one).
  std::vector<std::shared_ptr<Session>> live_sessions() const {
    std::vector<std::shared_ptr<Session>> out;
    for (const auto& [raw, weak] : sessions)
      if (auto s = weak.lock()) out.push_back(std::move(s));
    return out;
  }
};

/// One client connection (I/O thread only, except the request handed to a worker).
class ModelServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)), buffer_(kReadBuffer) {
    beast::error_code ec;
    const auto peer = stream_.socket().remote_endpoint(ec);
    client_ = ec ? "?" : peer.address().to_string();
  }
  ~Session() {
    server_.sessions.erase(this);
    release_body_budget();
    if (server_.stopping && server_.sessions.empty()) server_.drain_timer.cancel();  // nothing left to drain
  }

  void start() {
    server_.sessions.emplace(this, weak_from_this());
    read_header();
  }

  /// stop(): an idle connection, or one still sending its request, is closed now; one whose
  /// request is being processed or answered finishes it and closes.
  void stop() {
    if (phase_ == Phase::kIdle || phase_ == Phase::kReadingBody) close();
  }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  enum class Phase { kIdle, kReadingBody, kProcessing, kWriting, kClosing };

  void read_header() {
    phase_ = Phase::kIdle;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    // No limit while the header is parsed: refusal() decides on the declared length after the
    // token; the limit is set before the body is read (and binds chunked bodies there).
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream_.expires_after(seconds(first_ ? server_.options.header_timeout_s : server_.options.idle_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    start_ = Clock::now();
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return refuse(error_reply(431, "the request header is larger than " + std::to_string(kHeaderLimit) + " bytes"));
    if (ec == beast::error::timeout && buffer_.size() > 0) return timed_out();  // a header begun, never finished
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof || ec == asio::error::bad_descriptor)
      return close();
    if (ec) return refuse(error_reply(400, std::string("malformed HTTP request: ") + ec.message()));
    const Request& req = parser_->get();
    method_ = std::string(req.method_string());
    target_ = std::string(req.target());
    route_ = route_of(req.method(), req.target());
    keep_alive_ = req.keep_alive();
    const auto length = parser_->content_length();
    std::optional<std::uint64_t> content_length;
    if (length) content_length = *length;
    if (auto r = server_.refusal(req, route_, client_, content_length, parser_->chunked())) {
      r->close = !parser_->is_done();  // an unread body: close, never parse it as a request
      return respond(std::move(*r));
    }
    if (parser_->is_done()) return dispatch();
    const std::int64_t need = server_.reservation(content_length);
    if (server_.body_bytes_reserved + need > server_.options.max_body_bytes_total) {
      Reply r = error_reply(503, "the server is reading other bodies at its memory limit; retry shortly");
      r.headers.emplace_back("Retry-After", "1");
      r.close = true;
      return respond(std::move(r));
    }
    parser_->body_limit(static_cast<std::uint64_t>(server_.options.max_request_bytes));
    reserved_ = need;
    server_.body_bytes_reserved += need;
    phase_ = Phase::kReadingBody;
    body_start_ = Clock::now();
    body_bytes_ = 0;
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      stream_.expires_after(seconds(server_.options.write_timeout_s));
      return http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code e, std::size_t) {
        if (e) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(seconds(server_.options.body_stall_s));
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) { self->on_body(ec, n); });
  }

  void on_body(beast::error_code ec, std::size_t n) {
    body_bytes_ += n;
    if (ec == http::error::body_limit)
      return refuse(error_reply(413, "the body is larger than this server's limit of " +
                                         std::to_string(server_.options.max_request_bytes) + " bytes (--max-request-mb)"));
    if (ec == beast::error::timeout) return timed_out();
    if (ec == asio::error::operation_aborted || ec == http::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::bad_descriptor)
      return close();
    if (ec) return refuse(error_reply(400, std::string("malformed HTTP body: ") + ec.message()));
    if (parser_->is_done()) return dispatch();
    const double elapsed = std::chrono::duration<double>(Clock::now() - body_start_).count();
    if (elapsed > server_.options.body_stall_s && static_cast<double>(body_bytes_) < server_.options.min_body_rate * elapsed)
      return refuse(error_reply(408, "the body arrives slower than this server's minimum of " +
                                         std::to_string(static_cast<long>(server_.options.min_body_rate)) + " bytes/s"));
    read_body();
  }

  /// Hand the complete request to a worker; its reply comes back to the I/O thread.
  void dispatch() {
    phase_ = Phase::kProcessing;
    stream_.expires_never();
    auto request = std::make_shared<Request>(parser_->release());
    in_bytes_ = request->body().size();
    asio::post(server_.workers, [self = shared_from_this(), request, guard = asio::make_work_guard(server_.io)]() mutable {
      Reply reply;
      try {
        reply = self->server_.handle(*request, self->route_);
      } catch (const std::exception& e) {
        reply = error_reply(500, std::string("the server failed: ") + e.what());
      }
      request.reset();  // free the body on the worker
      auto& io = self->server_.io;
      asio::post(io, [self = std::move(self), reply = std::move(reply)]() mutable {
        self->release_body_budget();
        self->respond(std::move(reply));
      });
    });
  }

  /// A deadline passed while the client was sending: the stream has closed the socket, so
  /// there is no one to answer; the access log gets the 408.
  void timed_out() {
    server_.log(client_, method_, target_, 408, body_bytes_, 0,
                std::chrono::duration<double, std::milli>(Clock::now() - start_).count());
    close();
  }

  /// A refusal after which the connection is closed.
  void refuse(Reply reply) {
    reply.close = true;
    respond(std::move(reply));
  }

  void respond(Reply reply) {
    phase_ = Phase::kWriting;
    const bool close_after = reply.close || !keep_alive_ || server_.stopping;
    auto res = std::make_shared<Response>(static_cast<http::status>(reply.status), 11);
    res->set(http::field::server, "dne-serve");
    res->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res->set(name, value);
    res->body() = std::move(reply.body);
    res->keep_alive(!close_after);
    res->prepare_payload();
    status_ = reply.status;
    stream_.expires_after(seconds(server_.options.write_timeout_s));
    http::async_write(stream_, *res, [self = shared_from_this(), res, close_after](beast::error_code ec, std::size_t) {
      self->server_.log(self->client_, self->method_, self->target_, self->status_, self->in_bytes_, res->body().size(),
                        std::chrono::duration<double, std::milli>(Clock::now() - self->start_).count());
      if (ec) return self->close();
      if (close_after) return self->linger();
      self->first_ = false;
      self->in_bytes_ = 0;
      self->read_header();
    });
  }

  /// Shut the send side, read and drop what the client still sends (bounded), then close.
  void linger() {
    phase_ = Phase::kClosing;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    lingered_ = 0;
    stream_.expires_after(seconds(kLingerSeconds));
    drain();
  }
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->close();
      self->drain();
    });
  }

  void release_body_budget() {
    server_.body_bytes_reserved -= reserved_;
    reserved_ = 0;
  }

  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string client_, method_, target_;
  Route route_;
  Phase phase_ = Phase::kIdle;
  bool first_ = true, keep_alive_ = false;
  int status_ = 0;
  std::int64_t reserved_ = 0;
  std::size_t in_bytes_ = 0, body_bytes_ = 0, lingered_ = 0;
  Clock::time_point start_ = Clock::now(), body_start_;
  std::array<char, 4096> scratch_{};
};

void ModelServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (stopping) {
        beast::error_code ignored;
        socket.close(ignored);
      } else if (static_cast<std::int64_t>(sessions.size()) >= options.max_connections) {
        // Over the cap: one canned 503 written without reading anything, then closed.
        ++refused;
        auto s = std::make_shared<beast::tcp_stream>(std::move(socket));
        s->expires_after(std::chrono::seconds(1));
        asio::async_write(*s, asio::buffer(busy_reply), [s](beast::error_code, std::size_t) {
          beast::error_code ignored;
          s->socket().shutdown(tcp::socket::shutdown_both, ignored);
          s->close();
        });
      } else {
        std::make_shared<Session>(*this, std::move(socket))->start();
      }
    }
    accept();  // an accept error (say, out of descriptors) is transient: keep accepting
  });
}

void ModelServer::Impl::begin_stop() {
  if (stopping) return;
  stopping = true;
  beast::error_code ec;
  acceptor.close(ec);
  for (const auto& s : live_sessions()) s->stop();
  if (sessions.empty()) return;
  drain_timer.expires_after(seconds(options.drain_timeout_s));
  drain_timer.async_wait([this](beast::error_code e) {
    if (e) return;
    for (const auto& s : live_sessions()) s->close();
  });
}

ModelServer::ModelServer(ServedModel model, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options))) {}
ModelServer::~ModelServer() = default;

int ModelServer::bind() {
  auto& s = *impl_;
  const auto& o = s.options;
  const auto fail = [&o](const std::string& why) {
    return ConfigError("cannot listen on " + o.host + ":" + std::to_string(o.port) + " (" + why + ")");
  };
  beast::error_code ec;
  tcp::resolver resolver(s.io);
  const auto endpoints = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) throw fail("not an address of this host: " + ec.message());
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);  // not SO_REUSEPORT: a second server must fail
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw fail(ec.message());
  return s.acceptor.local_endpoint().port();
}

void ModelServer::serve() {
  auto& s = *impl_;
  if (!s.acceptor.is_open() && !s.stopping) bind();
  s.accept();
  s.io.run();
  s.workers.join();
}

void ModelServer::stop() {
  asio::post(impl_->io, [impl = impl_.get()] { impl->begin_stop(); });
}

ServerCounters ModelServer::counters() const { return impl_->counters(); }

api::ModelMetadata ModelServer::metadata() const { return impl_->metadata(); }

}  // namespace dne::serve
