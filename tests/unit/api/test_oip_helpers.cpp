// The Open Inference Protocol's small helpers (element counts, shape text, the error body) from
// hand-computed values, and the client's statistics (ClientStats) before and after calls that
// reach nothing.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dne/api/inference_client.hpp"
#include "dne/api/oip_protocol.hpp"

namespace dne::api {
namespace {

TEST(OipHelpers, ElementCountIsTheProductOfTheDimensions) {
  EXPECT_EQ(element_count({}), 1);  // a scalar
  EXPECT_EQ(element_count({7}), 7);
  EXPECT_EQ(element_count({2, 1, 32, 32}), 2048);
  EXPECT_EQ(element_count({3, 0, 5}), 0);
  EXPECT_EQ(element_count({std::int64_t{1} << 20, std::int64_t{1} << 20}), std::int64_t{1} << 40);
}

TEST(OipHelpers, ElementCountRefusesNegativeAndOverflowingShapes) {
  try {
    element_count({-1, 1, 32, 32});
    ADD_FAILURE() << "a negative dimension was counted";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("[-1,1,32,32]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("negative"), std::string::npos) << e.what();
  }
  // 2^32 * 2^32 = 2^64 values do not fit in an int64 (nor do their FP32 bytes).
  const std::int64_t big = std::int64_t{1} << 32;
  EXPECT_THROW(element_count({big, big}), ProtocolError);
  EXPECT_THROW(element_count({std::numeric_limits<std::int64_t>::max(), 2}), ProtocolError);
  // A zero dimension after a large one is not an overflow.
  EXPECT_EQ(element_count({big, 0, big}), 0);
}

TEST(OipHelpers, ShapeTextIsBracketedCommaSeparated) {
  EXPECT_EQ(shape_text({-1, 1, 32, 32}), "[-1,1,32,32]");
  EXPECT_EQ(shape_text({}), "[]");
  EXPECT_EQ(shape_text({5}), "[5]");
  EXPECT_EQ(shape_text({std::numeric_limits<std::int64_t>::max()}), "[9223372036854775807]");
}

TEST(OipHelpers, ErrorBodyIsAJsonObjectWithOneErrorMember) {
  EXPECT_EQ(error_body("model not ready"), R"({"error":"model not ready"})");
  // JSON string escapes: quote, backslash, newline and a control byte.
  EXPECT_EQ(error_body("bad \"x\"\\\n\x01"), R"({"error":"bad \"x\"\\\n\u0001"})");
  EXPECT_EQ(error_body(""), R"({"error":""})");
  // error_message reads it back.
  for (const std::string m : {"input 'images': shape [2,3] has 6 values", "tab\there", "caf\xc3\xa9"})
    EXPECT_EQ(error_message(error_body(m)), m);
}

TEST(ClientStats, StartAtZeroAndCountEveryAttemptAgainstNothing) {
  const ClientStats fresh;
  EXPECT_EQ(fresh.requests, 0);
  EXPECT_EQ(fresh.retries, 0);
  EXPECT_EQ(fresh.bytes_sent, 0);
  EXPECT_EQ(fresh.bytes_received, 0);
  EXPECT_TRUE(fresh.latency_ms.empty());

  ClientOptions options;
  options.url = "http://127.0.0.1:1";  // port 1: nothing listens (tcpmux is not served here)
  options.model = "dne";
  options.retries = 1;
  options.backoff_base_s = 0.01;
  options.timeout_s = 2;
  InferenceClient client(options);
  const ClientStats before = client.stats();
  EXPECT_EQ(before.requests, 0);
  EXPECT_EQ(before.retries, 0);
  EXPECT_THROW(client.connect(), RemoteError);
  const ClientStats after = client.stats();
  EXPECT_EQ(after.requests, 2);  // the first attempt and one retry, both refused
  EXPECT_EQ(after.retries, 1);
  EXPECT_EQ(after.bytes_received, 0);
  EXPECT_TRUE(after.latency_ms.empty());  // latencies are of successful requests only
}

}  // namespace
}  // namespace dne::api
