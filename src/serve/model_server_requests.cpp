// The model server's requests (see model_server.hpp and model_server_parts.hpp): the route of a
// request target, the refusal decided from a request's header alone, the handlers of the
// endpoints (health, metadata, stats, infer), and the access log and counters. The connections
// that carry them are model_server.cpp's.
#include "dne/serve/model_server.hpp"

#include "model_server_parts.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

namespace dne::serve {
namespace {

constexpr const char* kInput = "images";
constexpr const char* kOutput = "embeddings";
constexpr std::size_t kQuoted = 64;  // bytes of client text an error message repeats

/// GET/POST paths of one model, with an optional version: (name)(version)?(suffix).
const std::regex kModelPath(R"(^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$)");

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

}  // namespace

namespace detail {

Reply error_reply(int status, const std::string& message) {
  Reply r;
  r.status = status;
  r.body = api::error_body(message);
  return r;
}

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

}  // namespace detail

api::ModelMetadata ModelServer::Impl::metadata() const {
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

std::optional<Reply> ModelServer::Impl::refusal(const Request& req, const Route& route, const std::string& client,
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

Reply ModelServer::Impl::handle(const Request& req, const Route& route) {
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

Reply ModelServer::Impl::infer(const Request& req) {
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

void ModelServer::Impl::log(const std::string& client, std::string_view method, std::string_view target,
                            int status, std::size_t in, std::size_t out, double ms) {
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

}  // namespace dne::serve
