// The Open Inference Protocol codec, the client's retry rules and the server, from hand-written
// bodies and hand-computed values (the Python conformance suites in tests/remote check both sides
// against independent implementations).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "dne/api/inference_client.hpp"
#include "dne/api/oip_protocol.hpp"
#include "dne/core/errors.hpp"
#include "dne/serve/model_server.hpp"

namespace dne::api {
namespace {

TEST(OipProtocol, JsonRequestIsTheHandWrittenText) {
  InferRequest r;
  r.id = "7";
  r.input = Float32Tensor{"images", {1, 1, 1, 3}, {0.1f, -2.0f, 1e-3f}};
  const Body b = encode_request(r, false);
  EXPECT_EQ(b.json_length, -1);
  EXPECT_EQ(b.content_type, "application/json");
  EXPECT_EQ(b.bytes, R"({"id":"7","inputs":[{"name":"images","datatype":"FP32","shape":[1,1,1,3],"data":[0.1,-2,0.001]}]})");
}

TEST(OipProtocol, BinaryOutputIsAskedForByNameOrForAll) {
  InferRequest r;
  r.input = Float32Tensor{"images", {1, 1, 1, 1}, {1.0f}};
  r.binary_output = true;
  EXPECT_EQ(encode_request(r, false).bytes,
            R"({"inputs":[{"name":"images","datatype":"FP32","shape":[1,1,1,1],"data":[1]}],"parameters":{"binary_data_output":true}})");
  r.output_name = "embeddings";
  EXPECT_EQ(encode_request(r, false).bytes,
            R"({"inputs":[{"name":"images","datatype":"FP32","shape":[1,1,1,1],"data":[1]}],"outputs":[{"name":"embeddings","parameters":{"binary_data":true}}]})");
  EXPECT_TRUE(decode_request(encode_request(r, false).bytes, -1).binary_output);
}

TEST(OipProtocol, NestedDataIsFlattenedRowMajor) {
  const auto r = decode_response(
      R"({"model_name":"m","outputs":[{"name":"e","datatype":"FP32","shape":[2,2],"data":[[1,2.5],[-3,4e-3]]}]})", -1);
  EXPECT_EQ(r.model_name, "m");
  EXPECT_EQ(r.output.shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(r.output.data, (std::vector<float>{1.0f, 2.5f, -3.0f, 0.004f}));
}

TEST(OipProtocol, Float32SurvivesJsonBitForBit) {
  // Values whose shortest decimal is long, a subnormal, the extremes and a negative zero.
  const std::vector<float> values{1.0f / 3.0f, 0.1f, FLT_MIN / 3.0f, FLT_MAX, -FLT_MAX, FLT_EPSILON, -0.0f, 16777217.0f};
  InferResponse out;
  out.model_name = "m";
  out.output = Float32Tensor{"e", {1, static_cast<std::int64_t>(values.size())}, values};
  const auto back = decode_response(encode_response(out, false).bytes, -1);
  ASSERT_EQ(back.output.data.size(), values.size());
  EXPECT_EQ(std::memcmp(back.output.data.data(), values.data(), values.size() * sizeof(float)), 0);
}

TEST(OipProtocol, BinaryBodyFollowsTritonsLayout) {
  InferResponse out;
  out.model_name = "m";
  out.output = Float32Tensor{"e", {1, 2}, {1.5f, -2.0f}};
  const Body b = encode_response(out, true);
  const std::string header = R"({"model_name":"m","outputs":[{"name":"e","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]})";
  ASSERT_EQ(b.json_length, static_cast<std::int64_t>(header.size()));
  EXPECT_EQ(b.content_type, "application/octet-stream");
  EXPECT_EQ(b.bytes.substr(0, header.size()), header);
  // 1.5f = 0x3fc00000 and -2.0f = 0xc0000000, little-endian.
  EXPECT_EQ(b.bytes.substr(header.size()), std::string("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8));
  EXPECT_EQ(decode_response(b.bytes, b.json_length).output.data, (std::vector<float>{1.5f, -2.0f}));
}

TEST(OipProtocol, RequestWithBinaryInputAndOutputFlags) {
  const std::string header =
      R"({"inputs":[{"name":"images","shape":[1,1,1,1],"datatype":"FP32","parameters":{"binary_data_size":4}}],)"
      R"("outputs":[{"name":"embeddings","parameters":{"binary_data":true}}]})";
  const float v = 0.25f;
  const auto r = decode_request(header + std::string(reinterpret_cast<const char*>(&v), 4), static_cast<std::int64_t>(header.size()));
  EXPECT_EQ(r.input.data, std::vector<float>{0.25f});
  EXPECT_EQ(r.output_name, "embeddings");
  EXPECT_TRUE(r.binary_output);
}

void expect_protocol_error(const std::string& body, const std::string& fragment, std::int64_t json_length = -1) {
  try {
    decode_response(body, json_length);
    ADD_FAILURE() << "accepted: " << body;
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(OipProtocol, BrokenBodiesAreNamed) {
  expect_protocol_error(R"({"outputs": [)", "not valid JSON");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP32","shape":[1],"data":[NaN]}]})", "not valid JSON");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP64","shape":[1],"data":[1]}]})", "FP64");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP32","shape":[3],"data":[1,2]}]})", "2 values");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP32","shape":[1],"data":[true]}]})", "boolean");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP32","shape":[1],"data":[1e39]}]})", "float32");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP32","shape":[1],"data":0}]})", "not an array");
  expect_protocol_error(R"({"outputs":[{"name":"e","datatype":"FP32","shape":[-1],"data":[]}]})", "shape");
  expect_protocol_error(R"({"outputs":[]})", "non-empty");
  expect_protocol_error(R"([1])", "not a JSON object");
  const std::string header = R"({"outputs":[{"name":"e","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  expect_protocol_error(header + "1234", "4 binary bytes", static_cast<std::int64_t>(header.size()));
  expect_protocol_error(header, "larger than the body", static_cast<std::int64_t>(header.size()) + 1);
}

TEST(OipProtocol, NestingIsBoundedAt32Levels) {
  // {"inputs":[{... "data": k arrays}]}: the object, the inputs array and the tensor object are
  // 3 levels, so k = 29 nested data arrays make 32 (accepted) and k = 30 make 33 (refused).
  const auto body = [](int k) {
    return R"({"inputs":[{"name":"images","datatype":"FP32","shape":[1],"data":)" + std::string(k, '[') + "0.5" +
           std::string(k, ']') + "}]}";
  };
  EXPECT_EQ(decode_request(body(29), -1).input.data, std::vector<float>{0.5f});
  try {
    decode_request(body(30), -1);
    FAIL() << "33 levels were accepted";
  } catch (const ProtocolError& e) {
    EXPECT_STREQ(e.what(), "JSON nested deeper than 32 levels");
  }
  // 100,000 levels around the shape (a 200 KB body): refused while parsing, no recursion.
  const std::string deep = R"({"inputs":[{"name":"images","datatype":"FP32","shape":)" + std::string(100000, '[') +
                           std::string(100000, ']') + R"(,"data":[0]}]})";
  EXPECT_THROW(decode_request(deep, -1), ProtocolError);
  EXPECT_THROW(decode_metadata(R"({"name":"m","inputs":)" + std::string(100000, '[') + std::string(100000, ']') + "}"),
               ProtocolError);
  // The client's reading of an error body is depth-limited too (and falls back to a prefix).
  EXPECT_EQ(error_message(std::string(100000, '[')).size(), 203u);
}

TEST(OipProtocol, ErrorMessagesQuoteAShortPrefixOfWhatWasSent) {
  const std::string name(100000, 'n');
  const std::string body = R"({"inputs":[{"name":")" + name + R"(","datatype":"FP64","shape":[1],"data":[0]}]})";
  try {
    decode_request(body, -1);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_EQ(std::string(e.what()), "inputs[0] (\"" + std::string(64, 'n') + "...\"): datatype FP64, expected FP32");
  }
  const std::string shape = R"({"inputs":[{"name":"images","datatype":"FP32","shape":[")" + name + R"("],"data":[0]}]})";
  try {
    decode_request(shape, -1);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_LT(std::strlen(e.what()), 200u) << e.what();
  }
}

TEST(OipProtocol, TwoThousandMutatedServerAnswersAreDecodedOrRefusedNeverCrash) {
  // What a hostile server can send the client: a valid JSON and a valid binary answer, and a
  // valid metadata body, mutated by truncation, byte flips, nesting wraps and type swaps.
  InferResponse r;
  r.model_name = "m";
  r.output = Float32Tensor{"embeddings", {2, 3}, {0.5f, -1.0f, 2.0f, 0.0f, 1e-3f, 7.0f}};
  const Body json_body = encode_response(r, false), binary_body = encode_response(r, true);
  ModelMetadata meta;
  meta.name = "m";
  meta.inputs = {TensorSpec{"images", "FP32", {-1, 1, 8, 8}}};
  meta.outputs = {TensorSpec{"embeddings", "FP32", {-1, 3}}};
  const std::string meta_body = encode_metadata(meta);
  std::mt19937_64 rng(25);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % std::max<std::size_t>(1, n)); };
  const std::vector<std::string> values = {"null", "true", "\"s\"", "{}", "[]", "-1", "1e400", "3e38", "[[[[1]]]]"};
  int decoded = 0, refused = 0;
  for (int i = 0; i < 2000; ++i) {
    const int kind = static_cast<int>(rng() % 5);
    const Body& base = i % 3 == 0 ? binary_body : json_body;
    std::string body = i % 4 == 3 ? meta_body : base.bytes;
    std::int64_t json_length = i % 4 == 3 ? -1 : base.json_length;
    if (kind == 0) body = body.substr(0, pick(body.size()));
    if (kind == 1)
      for (int k = 0, n = 1 + static_cast<int>(pick(10)); k < n; ++k) body[pick(body.size())] = static_cast<char>(rng());
    if (kind == 2) {  // wrap a random '[' ... in more nesting
      const std::size_t at = body.find('[', pick(body.size()));
      const std::size_t depth = std::vector<std::size_t>{1, 30, 40, 5000}[pick(4)];
      if (at != std::string::npos) body = body.substr(0, at) + std::string(depth, '[') + body.substr(at);
    }
    if (kind == 3) {  // a value of another type after a random colon
      const std::size_t at = body.find(':', pick(body.size()));
      if (at != std::string::npos) body.insert(at + 1, values[pick(values.size())] + ",\"x\":");
    }
    if (kind == 4) json_length = static_cast<std::int64_t>(pick(body.size() + 20)) - 5;
    try {
      if (i % 4 == 3) decode_metadata(body);
      else decode_response(body, json_length);
      ++decoded;
    } catch (const ProtocolError&) {
      ++refused;
    }
    (void)error_message(body);  // the client's reading of an error body never throws
  }
  EXPECT_EQ(decoded + refused, 2000);
  EXPECT_GT(refused, 1000);
}

TEST(OipProtocol, NonFiniteValuesCannotBeWrittenAsJson) {
  InferResponse out;
  out.output = Float32Tensor{"e", {1, 1}, {std::nanf("")}};
  EXPECT_THROW(encode_response(out, false), ProtocolError);
  EXPECT_NO_THROW(encode_response(out, true));  // binary can carry it; the client rejects it
}

TEST(OipProtocol, MetadataRoundTripAndErrors) {
  const auto m = decode_metadata(
      R"({"name":"m","versions":["1","2"],"platform":"onnx_onnxv1","inputs":[{"name":"x","datatype":"FP32","shape":[-1,1,8,8]}],)"
      R"("outputs":[{"name":"y","datatype":"FP32","shape":[-1,4]}]})");
  EXPECT_EQ(m.versions, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(m.inputs.at(0).shape, (std::vector<std::int64_t>{-1, 1, 8, 8}));
  EXPECT_EQ(decode_metadata(encode_metadata(m)).outputs.at(0).shape, (std::vector<std::int64_t>{-1, 4}));
  EXPECT_THROW(decode_metadata(R"({"name":"m","inputs":[]})"), ProtocolError);  // no outputs
  EXPECT_EQ(error_message(R"({"error":"busy"})"), "busy");
  EXPECT_EQ(error_message(std::string("oops\x01\xff", 6)), "oops\\x01\\xff");
}

TEST(PrintablePrefix, EscapesWhatCouldForgeALineAndCutsAtTheLimit) {
  // Hand-computed: '\n' is 0x0a, '\\' is 0x5c, 0x7f (DEL) and 0xe9 are outside 0x20..0x7e.
  EXPECT_EQ(printable_prefix("a\nb", 8), "a\\x0ab");
  EXPECT_EQ(printable_prefix("c:\\x y", 8), "c:\\x5cx y");
  EXPECT_EQ(printable_prefix("c:\\x y", 8, true), "c:\\x5cx\\x20y");
  EXPECT_EQ(printable_prefix(std::string("\x7f\xe9", 2), 8), "\\x7f\\xe9");
  EXPECT_EQ(printable_prefix("abcdef", 3), "abc...");
  EXPECT_EQ(printable_prefix("abc", 3), "abc");
  EXPECT_EQ(printable_prefix("", 3), "");
}

TEST(RetryAfter, SecondsAndTheThreeHttpDateForms) {
  // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch (RFC 9110's example date:
  // 9075 days = 24 years incl. 6 leap days + 309 days of 1994, then 8:49:37); t is 12 s before it.
  const double t = 784111777.0 - 12.0;
  EXPECT_EQ(parse_retry_after("3", t), 3.0);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t), 12.0);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t), 12.0);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", t), 12.0);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + 100.0), 0.0);  // in the past: now
  EXPECT_LT(parse_retry_after("soon", t), 0.0);
  EXPECT_LT(parse_retry_after("", t), 0.0);
}

TEST(Endpoint, OriginPrefixAndRefusals) {
  const auto e = parse_endpoint("http://models.example:8000/kserve/");
  EXPECT_EQ(e.origin, "http://models.example:8000");
  EXPECT_EQ(e.prefix, "/kserve");
  EXPECT_EQ(parse_endpoint("http://127.0.0.1:9").prefix, "");
  EXPECT_THROW(parse_endpoint("http://user:secret@host:1"), ConfigError);
  EXPECT_THROW(parse_endpoint("ftp://host"), ConfigError);
  EXPECT_THROW(parse_endpoint("http://host:1/?q=1"), ConfigError);
}

/// A server on a free port around a model whose embedding of an image is (sum, max) of its
/// pixels: easy to compute by hand.
struct LiveServer {
  serve::ModelServer server;
  int port;
  std::thread thread;
  explicit LiveServer(serve::ServerOptions o)
      : server(serve::ServedModel{{1, 2, 2}, 2, "test", [](const std::vector<float>& x, std::int64_t b) {
                                    std::vector<float> z;
                                    for (std::int64_t i = 0; i < b; ++i) {
                                      const float* p = x.data() + 4 * i;
                                      z.push_back(p[0] + p[1] + p[2] + p[3]);
                                      z.push_back(std::max(std::max(p[0], p[1]), std::max(p[2], p[3])));
                                    }
                                    return z;
                                  }},
               o),
        port(server.bind()),
        thread([this] { server.serve(); }) {}
  ~LiveServer() {
    server.stop();
    thread.join();
  }
  ClientOptions client(int retries = 0) const {
    ClientOptions c;
    c.url = "http://127.0.0.1:" + std::to_string(port);
    c.model = "dne";
    c.retries = retries;
    c.backoff_base_s = 0.01;
    c.timeout_s = 5;
    return c;
  }
};

/// `call` throws a RemoteError whose message holds every fragment.
void expect_remote_error(const std::function<void()>& call, const std::vector<std::string>& fragments) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one holding " << fragments.front();
  } catch (const RemoteError& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

Float32Tensor images(std::vector<float> pixels) {
  const auto b = static_cast<std::int64_t>(pixels.size() / 4);
  return Float32Tensor{"images", {b, 1, 2, 2}, std::move(pixels)};
}

TEST(ClientAndServer, MetadataAndHandComputedEmbeddings) {
  LiveServer live(serve::ServerOptions{});
  for (const bool binary : {false, true}) {
    auto options = live.client();
    options.binary = binary;
    options.concurrency = 2;
    InferenceClient client(options);
    const auto meta = client.connect();
    EXPECT_EQ(meta.inputs.at(0).shape, (std::vector<std::int64_t>{-1, 1, 2, 2}));
    EXPECT_EQ(meta.outputs.at(0).shape, (std::vector<std::int64_t>{-1, 2}));
    const auto out = client.infer({images({1, 2, 3, 4, 0.5f, 0, 0, 0}), images({-1, -2, -3, -4})}, 2);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].data, (std::vector<float>{10, 4, 0.5f, 0.5f}));
    EXPECT_EQ(out[1].data, (std::vector<float>{-10, -1}));
    EXPECT_EQ(client.stats().retries, 0);
    EXPECT_EQ(client.stats().requests, 4);  // ready, metadata, two inferences
  }
  const serve::ServerCounters counters = live.server.counters();
  EXPECT_EQ(counters.images, 6);
  EXPECT_EQ(counters.requests, 8);  // twice: ready, metadata, two inferences
  EXPECT_EQ(counters.errors, 0);
  EXPECT_EQ(counters.connections_refused, 0);
}

TEST(ClientAndServer, ServerErrorsAreRetriedThenNamed) {
  serve::ServerOptions o;
  o.failure_rate = 1.0;
  LiveServer live(o);
  InferenceClient client(live.client(3));
  client.connect();
  expect_remote_error([&] { client.infer({images({1, 2, 3, 4})}, 2); }, {"gave up after 4 attempts", "HTTP 500"});
  EXPECT_EQ(client.stats().retries, 3);
}

TEST(ClientAndServer, ClientErrorsAreNotRetried) {
  serve::ServerOptions o;
  o.max_batch = 1;
  LiveServer live(o);
  InferenceClient client(live.client(5));
  client.connect();
  expect_remote_error([&] { client.infer({images({1, 2, 3, 4, 5, 6, 7, 8})}, 2); }, {"HTTP 400", "--max-batch"});
  EXPECT_EQ(client.stats().retries, 0);
  auto other = live.client();
  other.model = "nope";
  EXPECT_THROW(InferenceClient(other).connect(), RemoteError);  // 404
}

TEST(ClientAndServer, RateLimitAnswersWithRetryAfterAndTheClientWaits) {
  serve::ServerOptions o;
  o.rate_limit = 1.0;  // one request per second, bursts of one
  LiveServer live(o);
  InferenceClient client(live.client(3));
  const auto t0 = std::chrono::steady_clock::now();
  client.connect();  // ready (open), metadata (takes the token)
  client.infer({images({1, 2, 3, 4})}, 2);  // 429, Retry-After: 1, then served
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(client.stats().retries, 1);
  EXPECT_GE(waited, 0.9);
}

TEST(ClientAndServer, BearerToken) {
  serve::ServerOptions o;
  o.token = "s3cret";
  LiveServer live(o);
  EXPECT_THROW(InferenceClient(live.client()).connect(), RemoteError);  // 401, not retried
  auto with = live.client();
  with.token = "s3cret";
  EXPECT_NO_THROW(InferenceClient(with).connect());
}

TEST(ClientAndServer, UnreachableServerEndsWithinItsBound) {
  int port = 0;
  {
    LiveServer live(serve::ServerOptions{});  // a port that was free a moment ago, closed again
    port = live.port;
  }
  ClientOptions c;
  c.url = "http://127.0.0.1:" + std::to_string(port);
  c.model = "dne";
  c.retries = 2;
  c.backoff_base_s = 0.01;
  InferenceClient client(c);
  expect_remote_error([&] { client.connect(); }, {"could not connect", "gave up after 3 attempts"});
  EXPECT_EQ(client.stats().requests, 3);
}

}  // namespace
}  // namespace dne::api
