// The Open Inference Protocol (KServe "V2" REST protocol) as bytes: model metadata, inference
// requests and responses with one FP32 tensor each, in JSON or with Triton's binary tensor
// extension, and the {"error": ...} body.
//
// Both `fm.kind = "remote"` (api/inference_client.hpp) and `dne serve` (serve/model_server.hpp)
// speak through these functions, so they agree on the format by construction; the conformance
// tests check each against an independent Python implementation. float32 values cross JSON
// exactly: they are written as the shortest decimal that reads back as the same float
// (std::to_chars) and read from their decimal text with std::from_chars, never through a
// double. Nested "data" arrays are flattened in row-major order (the protocol allows both).
// Binary tensor bytes are little-endian, row-major, without padding. Torch-free.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dne::api {

/// A body that breaks the protocol (bad JSON, wrong types, sizes that do not add up).
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A row-major float32 tensor.
struct Float32Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};

/// A tensor's description in model metadata; -1 marks a variable dimension.
struct TensorSpec {
  std::string name;
  std::string datatype;
  std::vector<std::int64_t> shape;
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorSpec> inputs, outputs;
};

/// An HTTP body and the headers that describe it.
struct Body {
  std::string bytes;
  std::string content_type = "application/json";
  /// Inference-Header-Content-Length: bytes of JSON before the binary tensors; -1 = all JSON.
  std::int64_t json_length = -1;
};

struct InferRequest {
  std::string id;             // echoed by the server; "" = none
  Float32Tensor input;        // exactly one input
  std::string output_name;    // "" = every output
  bool binary_output = false; // ask for the output in binary
};

struct InferResponse {
  std::string model_name, model_version, id;
  Float32Tensor output;       // the first (here: only) output
};

/// The product of a shape's dimensions; ProtocolError for a negative one or an overflow.
std::int64_t element_count(const std::vector<std::int64_t>& shape);
/// "[-1,1,32,32]".
std::string shape_text(const std::vector<std::int64_t>& shape);

Body encode_request(const InferRequest& request, bool binary_input);
/// Throws ProtocolError naming what is wrong (the server answers it with 400).
InferRequest decode_request(const std::string& body, std::int64_t json_length);

/// Throws ProtocolError if the output holds a value JSON cannot carry (NaN, Inf).
Body encode_response(const InferResponse& response, bool binary);
/// Throws ProtocolError naming what is wrong; the data's length is checked against its shape.
InferResponse decode_response(const std::string& body, std::int64_t json_length);

std::string encode_metadata(const ModelMetadata& metadata);
ModelMetadata decode_metadata(const std::string& body);

/// {"error": message}.
std::string error_body(const std::string& message);
/// The message of an {"error": ...} body, or the body's first 200 bytes with non-printable
/// bytes escaped when it is not one.
std::string error_message(const std::string& body);

/// At most `limit` bytes of peer text fit for a message or a log line: control bytes, bytes
/// above 0x7e and the backslash become \xNN (spaces too when `escape_space`, for a log field),
/// and "..." marks a cut. Example: printable_prefix("a\nb", 8) == "a\\x0ab".
std::string printable_prefix(std::string_view text, std::size_t limit, bool escape_space = false);

}  // namespace dne::api
