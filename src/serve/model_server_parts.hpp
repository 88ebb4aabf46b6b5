// The model server's shared parts (see model_server.hpp): the Boost.Beast names, the token-bucket
// rate limiter, the model's concurrency limit, a handler's reply, a request's route, and the
// server's state (ModelServer::Impl). model_server.cpp runs the connections (accepting, reading,
// deadlines, writing; ModelServer::Impl::Session); model_server_requests.cpp decides on and
// answers the requests (routes, refusals from the header, the handlers, the access log).
// Internal to the serve module; include it before any Boost header (it sets Beast's string_view).
#pragma once

#define BOOST_BEAST_USE_STD_STRING_VIEW  // beast::string_view is std::string_view (only the serve sources use Beast)
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dne/api/oip_protocol.hpp"
#include "dne/serve/model_server.hpp"

namespace dne::serve::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

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

Reply error_reply(int status, const std::string& message);

/// The route of a request target, decided from the request line alone.
struct Route {
  enum Kind { kNone, kLive, kReady, kServer, kStats, kModel, kModelReady, kInfer } kind = kNone;
  std::string name, version;  // for the model routes
  bool has_version = false;
  bool needs_token() const { return kind == kModel || kind == kModelReady || kind == kInfer; }
};

Route route_of(http::verb method, std::string_view target);

}  // namespace dne::serve::detail

namespace dne::serve {

// The serve sources name these parts unqualified, as when they were local to one file.
using namespace detail;

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

  Impl(ServedModel m, ServerOptions o);
  ~Impl();

  api::ModelMetadata metadata() const;

  /// The refusal a request gets from its header alone, if any (I/O thread, before its body).
  std::optional<Reply> refusal(const Request& req, const Route& route, const std::string& client,
                               std::optional<std::uint64_t> content_length, bool chunked);

  /// Bytes a body may need: its declared length, or the limit for a chunked one.
  std::int64_t reservation(std::optional<std::uint64_t> content_length) const {
    return content_length ? static_cast<std::int64_t>(*content_length) : options.max_request_bytes;
  }

  /// The answer to an admitted request (a worker thread).
  Reply handle(const Request& req, const Route& route);

  Reply infer(const Request& req);

  /// One access-log line (any thread). Client text is escaped, so a request cannot forge a
  /// line; a line that cannot be written is counted, and reported on stderr the first time.
  void log(const std::string& client, std::string_view method, std::string_view target, int status,
           std::size_t in, std::size_t out, double ms);

  ServerCounters counters() const {
    return ServerCounters{requests.load(), images.load(), errors.load(), refused.load(), log_failures.load()};
  }

  void accept();
  void begin_stop();
  /// The open sessions, held while a caller closes them (closing may end one).
  std::vector<std::shared_ptr<Session>> live_sessions() const;
};

}  // namespace dne::serve
