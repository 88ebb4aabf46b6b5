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
//
// This file: the connections (ModelServer::Impl::Session), accepting, stopping and the public
// ModelServer; the requests' routes, refusals and handlers are model_server_requests.cpp's, the
// shared parts model_server_parts.hpp's.
#include "dne/serve/model_server.hpp"

#include "model_server_parts.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"

namespace dne::serve {
namespace {

constexpr std::size_t kHeaderLimit = 16 * 1024;     // request line + headers (431 above)
constexpr std::size_t kReadBuffer = 64 * 1024;      // per connection, bodies pass through it in pieces
constexpr std::size_t kLingerBytes = 1 << 20;       // discarded after a refusal before closing
constexpr double kLingerSeconds = 2.0;

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

ModelServer::Impl::Impl(ServedModel m, ServerOptions o)
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
ModelServer::Impl::~Impl() {
  workers.join();
  if (log_fd >= 0) ::close(log_fd);
}

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

std::vector<std::shared_ptr<ModelServer::Impl::Session>> ModelServer::Impl::live_sessions() const {
  std::vector<std::shared_ptr<Session>> out;
  for (const auto& [raw, weak] : sessions)
    if (auto s = weak.lock()) out.push_back(std::move(s));
  return out;
}

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
