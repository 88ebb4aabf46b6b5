// Open Inference Protocol codec (see oip_protocol.hpp). JSON is read with nlohmann-json's SAX
// interface: the document outside the tensors' "data" arrays becomes a small DOM, and each
// "data" array is streamed straight into a float vector from the numbers' own text, so a
// float32 survives the round trip bit for bit and no DOM node is built per element.
// The bodies come from untrusted peers (a client of `dne serve`, or the server behind
// fm.kind = "remote"): nesting is refused beyond kMaxDepth while parsing (the SAX parser itself
// is iterative; what would recurse is the DOM's printing and destruction), and an error message
// repeats at most kQuoted bytes of what was sent.
#include "dne/api/oip_protocol.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the binary tensor extension is little-endian; a big-endian host needs byte swapping here"
#endif

namespace dne::api {
namespace {

using json = nlohmann::json;

constexpr int kMaxDepth = 32;          // objects and arrays inside each other; OIP needs 5
constexpr std::size_t kQuoted = 64;    // bytes of peer text an error message repeats

/// At most `limit` bytes of peer text, "..." when cut.
std::string brief(const std::string& text, std::size_t limit = kQuoted) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

/// SAX handler: a DOM for everything but arrays under a "data" key, whose numbers go to
/// `tensors` (the DOM keeps the tensor's index in their place).
class TensorSax : public nlohmann::json_sax<json> {
 public:
  json root;
  std::vector<std::vector<float>> tensors;
  std::string error;

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return diverting() ? fail("a boolean inside \"data\"") : value(json(v)); }
  bool number_integer(number_integer_t v) override {
    return diverting() ? append(static_cast<float>(v)) : value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return diverting() ? append(static_cast<float>(v)) : value(json(v));
  }
  bool number_float(number_float_t v, const string_t& text) override {
    if (!diverting()) return value(json(v));
    float f = 0.0f;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), f);
    if (ec != std::errc() || end != text.data() + text.size())
      return fail("the number " + brief(text) + " inside \"data\" is not a float32 (out of range)");
    return append(f);
  }
  bool string(string_t& v) override { return diverting() ? fail("a string inside \"data\"") : value(json(v)); }
  bool binary(binary_t&) override { return fail("binary JSON values are not supported"); }
  bool start_object(std::size_t) override {
    if (!deeper()) return false;
    if (diverting()) return fail("an object inside \"data\"");
    return open(json::object());
  }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool end_object() override {
    --depth_;
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (!deeper()) return false;
    if (diverting()) {
      ++data_depth_;
      return true;
    }
    if (!stack_.empty() && stack_.back()->is_object() && key_ == "data") {
      data_depth_ = 1;  // divert: the DOM gets the tensor's index as a binary value's subtype,
      tensors.emplace_back();  // something JSON text cannot spell
      return value(json::binary(json::binary_t::container_type{}, static_cast<std::uint64_t>(tensors.size() - 1)));
    }
    return open(json::array());
  }
  bool end_array() override {
    --depth_;
    if (diverting()) {
      --data_depth_;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    std::string what = e.what();
    const auto colon = what.rfind(": ");
    error = "not valid JSON at byte " + std::to_string(position) + (colon == std::string::npos ? "" : ": " + brief(what.substr(colon + 2)));
    return false;
  }

 private:
  std::vector<json*> stack_;  // the open objects and arrays, innermost last
  std::string key_;
  int data_depth_ = 0;
  int depth_ = 0;  // open objects and arrays, "data" arrays included

  bool diverting() const { return data_depth_ > 0; }
  bool deeper() {
    if (++depth_ <= kMaxDepth) return true;
    return fail("JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  bool fail(const std::string& why) {
    error = why;
    return false;
  }
  bool append(float v) {
    tensors.back().push_back(v);
    return true;
  }
  json* place(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    top[key_] = std::move(v);
    return &top[key_];
  }
  bool value(json v) {
    place(std::move(v));
    return true;
  }
  bool open(json v) {
    stack_.push_back(place(std::move(v)));
    return true;
  }
};

/// The parsed JSON part of a body, and the binary bytes that follow it.
struct Parsed {
  json root;
  std::vector<std::vector<float>> tensors;
  std::string binary;  // the bytes after the JSON header
};

Parsed parse(const std::string& body, std::int64_t json_length) {
  if (json_length > static_cast<std::int64_t>(body.size()))
    throw ProtocolError("Inference-Header-Content-Length " + std::to_string(json_length) +
                        " is larger than the body (" + std::to_string(body.size()) + " bytes)");
  const std::size_t n = json_length < 0 ? body.size() : static_cast<std::size_t>(json_length);
  TensorSax sax;
  if (!json::sax_parse(body.data(), body.data() + n, &sax) || !sax.error.empty())
    throw ProtocolError(sax.error.empty() ? "not valid JSON" : sax.error);
  if (!sax.root.is_object()) throw ProtocolError("the body is not a JSON object");
  return Parsed{std::move(sax.root), std::move(sax.tensors), body.substr(n)};
}

const json& member(const json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) throw ProtocolError(where + " has no \"" + key + "\"");
  return *it;
}

std::string string_member(const json& object, const char* key, const std::string& where) {
  const json& v = member(object, key, where);
  if (!v.is_string()) throw ProtocolError(where + ": \"" + key + "\" is not a string");
  return v.get<std::string>();
}

std::vector<std::int64_t> shape_member(const json& object, const std::string& where, bool allow_variable) {
  const json& v = member(object, "shape", where);
  if (!v.is_array()) throw ProtocolError(where + ": \"shape\" is not an array");
  std::vector<std::int64_t> shape;
  for (const auto& d : v) {
    if (!d.is_number_integer() || d.get<std::int64_t>() < (allow_variable ? -1 : 0))
      throw ProtocolError(where + ": \"shape\" " + brief(v.dump(-1, ' ', false, json::error_handler_t::replace)) + " holds something other than " +
                          (allow_variable ? "integers >= -1" : "integers >= 0"));
    shape.push_back(d.get<std::int64_t>());
  }
  return shape;
}

/// The one tensor of `array` (inputs or outputs): its name, shape, datatype and data.
Float32Tensor read_tensor(Parsed& parsed, const char* array, const std::string& what) {
  const json& list = member(parsed.root, array, "the " + what);
  if (!list.is_array() || list.empty()) throw ProtocolError("the " + what + "'s \"" + array + "\" is not a non-empty array");
  if (list.size() != 1)
    throw ProtocolError("the " + what + " has " + std::to_string(list.size()) + " " + array + "; this model has one");
  const json& t = list.front();
  const std::string where = std::string(array) + "[0]";
  if (!t.is_object()) throw ProtocolError(where + " is not an object");
  Float32Tensor out;
  out.name = string_member(t, "name", where);
  out.shape = shape_member(t, where, false);
  const std::string datatype = string_member(t, "datatype", where);
  if (datatype != "FP32")
    throw ProtocolError(where + " (\"" + brief(out.name) + "\"): datatype " + brief(datatype) + ", expected FP32");
  const std::int64_t count = element_count(out.shape);
  std::int64_t binary_size = -1;
  if (const auto p = t.find("parameters"); p != t.end() && p->is_object())
    if (const auto b = p->find("binary_data_size"); b != p->end()) {
      if (!b->is_number_integer() || b->get<std::int64_t>() < 0)
        throw ProtocolError(where + ": binary_data_size is not a non-negative integer");
      binary_size = b->get<std::int64_t>();
    }
  if (binary_size >= 0) {
    if (binary_size != count * 4)
      throw ProtocolError(where + ": binary_data_size " + std::to_string(binary_size) + " for shape " +
                          shape_text(out.shape) + " of FP32 (" + std::to_string(count * 4) + " bytes expected)");
    if (static_cast<std::int64_t>(parsed.binary.size()) != binary_size)
      throw ProtocolError(where + ": " + std::to_string(parsed.binary.size()) + " binary bytes after the JSON header, " +
                          std::to_string(binary_size) + " announced");
    out.data.resize(static_cast<std::size_t>(count));
    if (count > 0) std::memcpy(out.data.data(), parsed.binary.data(), static_cast<std::size_t>(binary_size));
    return out;
  }
  if (!parsed.binary.empty())
    throw ProtocolError(std::to_string(parsed.binary.size()) + " bytes after the JSON header, but no tensor is binary");
  const json& data = member(t, "data", where);
  if (!data.is_binary() || data.get_binary().subtype() >= parsed.tensors.size())
    throw ProtocolError(where + ": \"data\" is not an array of numbers");
  out.data = std::move(parsed.tensors[static_cast<std::size_t>(data.get_binary().subtype())]);
  if (static_cast<std::int64_t>(out.data.size()) != count)
    throw ProtocolError(where + ": " + std::to_string(out.data.size()) + " values in \"data\" for shape " +
                        shape_text(out.shape) + " (" + std::to_string(count) + " expected)");
  return out;
}

/// JSON text of a string (quoted, escaped).
std::string quoted(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

void append_shape(std::string& out, const std::vector<std::int64_t>& shape) {
  out += '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  out += ']';
}

/// One tensor object: "data" as shortest-round-trip floats, or binary_data_size (its bytes
/// appended to `tail`).
void append_tensor(std::string& out, std::string& tail, const Float32Tensor& t, bool binary) {
  out += "{\"name\":" + quoted(t.name) + ",\"datatype\":\"FP32\",\"shape\":";
  append_shape(out, t.shape);
  if (binary) {
    const std::size_t bytes = t.data.size() * sizeof(float);
    out += ",\"parameters\":{\"binary_data_size\":" + std::to_string(bytes) + "}}";
    tail.append(reinterpret_cast<const char*>(t.data.data()), bytes);
    return;
  }
  out += ",\"data\":[";
  char buffer[32];
  for (std::size_t i = 0; i < t.data.size(); ++i) {
    if (!std::isfinite(t.data[i]))
      throw ProtocolError("tensor \"" + t.name + "\" holds a value JSON cannot carry (element " + std::to_string(i) + " is not finite)");
    if (i) out += ',';
    if (t.data[i] == 0.0f && std::signbit(t.data[i])) {  // "-0" would read back as the integer 0
      out += "-0.0";
      continue;
    }
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, t.data[i]);
    out.append(buffer, end);
  }
  out += "]}";
}

Body finish(std::string json_text, std::string tail) {
  Body b;
  if (tail.empty()) {
    b.bytes = std::move(json_text);
    return b;
  }
  b.json_length = static_cast<std::int64_t>(json_text.size());
  b.content_type = "application/octet-stream";
  b.bytes = std::move(json_text) + tail;
  return b;
}

std::vector<TensorSpec> read_specs(const json& root, const char* key) {
  const json& list = member(root, key, "the model metadata");
  if (!list.is_array()) throw ProtocolError(std::string("the model metadata's \"") + key + "\" is not an array");
  std::vector<TensorSpec> specs;
  for (const auto& t : list) {
    const std::string where = std::string(key) + "[" + std::to_string(specs.size()) + "]";
    if (!t.is_object()) throw ProtocolError(where + " is not an object");
    specs.push_back(TensorSpec{string_member(t, "name", where), string_member(t, "datatype", where), shape_member(t, where, true)});
  }
  return specs;
}

json spec_json(const std::vector<TensorSpec>& specs) {
  json list = json::array();
  for (const auto& s : specs) list.push_back({{"name", s.name}, {"datatype", s.datatype}, {"shape", s.shape}});
  return list;
}

}  // namespace

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (const auto d : shape) {
    if (d < 0) throw ProtocolError("shape " + shape_text(shape) + " has a negative dimension");
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / 4 / d)
      throw ProtocolError("shape " + shape_text(shape) + " is too large");
    n *= d;
  }
  return n;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s;
  append_shape(s, shape);
  return s;
}

Body encode_request(const InferRequest& request, bool binary_input) {
  std::string out = "{", tail;
  if (!request.id.empty()) out += "\"id\":" + quoted(request.id) + ",";
  out += "\"inputs\":[";
  append_tensor(out, tail, request.input, binary_input);
  out += "]";
  if (!request.output_name.empty()) {
    out += ",\"outputs\":[{\"name\":" + quoted(request.output_name);
    if (request.binary_output) out += ",\"parameters\":{\"binary_data\":true}";
    out += "}]";
  } else if (request.binary_output) {
    out += ",\"parameters\":{\"binary_data_output\":true}";
  }
  out += "}";
  return finish(std::move(out), std::move(tail));
}

InferRequest decode_request(const std::string& body, std::int64_t json_length) {
  Parsed parsed = parse(body, json_length);
  InferRequest r;
  if (const auto id = parsed.root.find("id"); id != parsed.root.end()) {
    if (!id->is_string()) throw ProtocolError("the request's \"id\" is not a string");
    r.id = id->get<std::string>();
  }
  if (const auto p = parsed.root.find("parameters"); p != parsed.root.end() && p->is_object())
    if (const auto b = p->find("binary_data_output"); b != p->end() && b->is_boolean()) r.binary_output = b->get<bool>();
  if (const auto outputs = parsed.root.find("outputs"); outputs != parsed.root.end()) {
    if (!outputs->is_array()) throw ProtocolError("the request's \"outputs\" is not an array");
    for (const auto& o : *outputs) {
      if (!o.is_object()) throw ProtocolError("the request's \"outputs\" holds something other than objects");
      r.output_name = string_member(o, "name", "outputs[]");
      if (const auto p = o.find("parameters"); p != o.end() && p->is_object())
        if (const auto b = p->find("binary_data"); b != p->end() && b->is_boolean()) r.binary_output = b->get<bool>();
    }
  }
  r.input = read_tensor(parsed, "inputs", "request");
  return r;
}

Body encode_response(const InferResponse& response, bool binary) {
  std::string out = "{\"model_name\":" + quoted(response.model_name), tail;
  if (!response.model_version.empty()) out += ",\"model_version\":" + quoted(response.model_version);
  if (!response.id.empty()) out += ",\"id\":" + quoted(response.id);
  out += ",\"outputs\":[";
  append_tensor(out, tail, response.output, binary);
  out += "]}";
  return finish(std::move(out), std::move(tail));
}

InferResponse decode_response(const std::string& body, std::int64_t json_length) {
  Parsed parsed = parse(body, json_length);
  InferResponse r;
  if (const auto v = parsed.root.find("model_name"); v != parsed.root.end() && v->is_string()) r.model_name = v->get<std::string>();
  if (const auto v = parsed.root.find("model_version"); v != parsed.root.end() && v->is_string())
    r.model_version = v->get<std::string>();
  if (const auto v = parsed.root.find("id"); v != parsed.root.end()) {
    if (!v->is_string()) throw ProtocolError("the response's \"id\" is not a string");
    r.id = v->get<std::string>();
  }
  r.output = read_tensor(parsed, "outputs", "response");
  return r;
}

std::string encode_metadata(const ModelMetadata& m) {
  json j = {{"name", m.name}, {"versions", m.versions}, {"platform", m.platform},
            {"inputs", spec_json(m.inputs)}, {"outputs", spec_json(m.outputs)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ModelMetadata decode_metadata(const std::string& body) {
  const Parsed parsed = parse(body, -1);
  ModelMetadata m;
  m.name = string_member(parsed.root, "name", "the model metadata");
  if (const auto v = parsed.root.find("versions"); v != parsed.root.end() && v->is_array())
    for (const auto& s : *v)
      if (s.is_string()) m.versions.push_back(s.get<std::string>());
  if (const auto v = parsed.root.find("platform"); v != parsed.root.end() && v->is_string()) m.platform = v->get<std::string>();
  m.inputs = read_specs(parsed.root, "inputs");
  m.outputs = read_specs(parsed.root, "outputs");
  return m;
}

std::string error_body(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_message(const std::string& body) {
  try {
    const Parsed parsed = parse(body, -1);  // depth-limited, like every peer body
    if (const auto e = parsed.root.find("error"); e != parsed.root.end() && e->is_string()) return brief(e->get<std::string>(), 400);
  } catch (const ProtocolError&) {
  }
  return body.empty() ? "(empty body)" : printable_prefix(body, 200);
}

std::string printable_prefix(std::string_view text, std::size_t limit, bool escape_space) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && !(escape_space && c == ' ')) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (text.size() > limit) out += "...";
  return out;
}

}  // namespace dne::api
