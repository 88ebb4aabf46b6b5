// FM file reading, writing, hashing and architecture checks (see fm_file.hpp).
#include "dne/fm/fm_file.hpp"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "dne/config/config.hpp"
#include "dne/core/build_info.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/store/result_file.hpp"

namespace dne::fm {
namespace {

constexpr const char* kFormat = "dne-fm";
constexpr std::int64_t kFormatVersion = 1;

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

std::string format_real(double v) {
  std::ostringstream out;
  out << std::setprecision(17) << v;
  return out.str();
}

ViTArchitecture read_architecture(const store::H5Reader& file) {
  ViTArchitecture a;
  const std::string g = "/architecture";
  a.image_size = file.int_attribute(g, "image_size");
  a.patch_size = file.int_attribute(g, "patch_size");
  a.in_chans = file.int_attribute(g, "in_chans");
  a.width = file.int_attribute(g, "width");
  a.depth = file.int_attribute(g, "depth");
  a.heads = file.int_attribute(g, "heads");
  a.mlp_ratio = file.double_attribute(g, "mlp_ratio");
  a.layer_norm_eps = file.double_attribute(g, "layer_norm_eps");
  std::vector<std::uint64_t> dims;
  a.mean = file.doubles(g + "/mean", dims);
  a.std = file.doubles(g + "/std", dims);
  const auto bad = [&](const std::string& why) { throw ModelError(file.path() + ": architecture: " + why); };
  if (a.image_size < 1 || a.patch_size < 1 || a.in_chans < 1 || a.width < 1 || a.depth < 1 || a.heads < 1)
    bad("sizes must be positive");
  if (a.image_size % a.patch_size != 0) bad("image_size is not a multiple of patch_size");
  if (a.width % a.heads != 0) bad("heads do not divide width");
  if (static_cast<std::int64_t>(a.mean.size()) != a.in_chans || static_cast<std::int64_t>(a.std.size()) != a.in_chans)
    bad("mean and std need in_chans = " + std::to_string(a.in_chans) + " values");
  for (double s : a.std)
    if (!(s > 0.0)) bad("std values must be positive");
  if (!(a.mlp_ratio > 0.0) || !(a.layer_norm_eps > 0.0)) bad("mlp_ratio and layer_norm_eps must be positive");
  return a;
}

}  // namespace

std::string content_hash(VisionTransformerImpl& vit) {
  std::uint64_t h = kFnvOffset;
  const auto mix = [&h](const void* data, std::size_t bytes) { h = fnv1a64(data, bytes, h); };
  const std::string arch = vit.architecture().canonical_text();
  mix(arch.data(), arch.size());
  auto params = vit.named_parameters();
  std::vector<std::string> names;
  for (const auto& item : params) names.push_back(item.key());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const auto t = params[name].detach().to(torch::kFloat32).contiguous();
    const std::string head = name + "\n" + shape_text(t.sizes().vec()) + "\n";
    mix(head.data(), head.size());
    mix(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()) * sizeof(float));
  }
  return hex16(h);
}

FmFile read_fm_file(const std::string& path) {
  try {
    const store::H5Reader file(path);
    if (!file.has_attribute("/", "format") || file.string_attribute("/", "format") != kFormat)
      throw ModelError(path + ": not an FM file (root attribute format = \"" + std::string(kFormat) + "\" missing)");
    const auto version = file.int_attribute("/", "format_version");
    if (version != kFormatVersion)
      throw ModelError(path + ": FM file format version " + std::to_string(version) + " (this build reads " +
                       std::to_string(kFormatVersion) + ")");
    const auto kind = file.string_attribute("/", "kind");
    if (kind != "vit") throw ModelError(path + ": FM kind \"" + kind + "\" (this build loads \"vit\")");

    FmFile out;
    out.path = path;
    out.architecture = read_architecture(file);
    out.vit = VisionTransformer(out.architecture);
    // Every parameter of the architecture must be in the file with its exact shape, and nothing else.
    auto params = out.vit->named_parameters();
    const auto stored = file.children("/weights");
    for (const auto& name : stored)
      if (!params.contains(name))
        throw ModelError(path + ": /weights/" + name + " is not a parameter of this ViT architecture");
    torch::NoGradGuard no_grad;
    for (auto& item : params) {
      std::vector<std::uint64_t> dims;
      const std::string dataset = "/weights/" + item.key();
      if (!file.exists(dataset)) throw ModelError(path + ": weight " + item.key() + " is missing");
      auto values = file.floats(dataset, dims);
      const std::vector<std::int64_t> shape(dims.begin(), dims.end());
      if (shape != item.value().sizes().vec())
        throw ModelError(path + ": weight " + item.key() + " has shape " + shape_text(shape) + ", the architecture needs " +
                         shape_text(item.value().sizes().vec()));
      for (float v : values)
        if (!std::isfinite(v)) throw ModelError(path + ": weight " + item.key() + " holds NaN or Inf");
      item.value().copy_(torch::from_blob(values.data(), item.value().sizes(), torch::kFloat32));
    }
    out.hash = content_hash(*out.vit);
    if (file.exists("/provenance"))
      for (const auto& key : {"source", "created", "git_commit", "data", "source_file", "source_sha256"})
        if (file.has_attribute("/provenance", key)) out.provenance[key] = file.string_attribute("/provenance", key);
    if (file.has_attribute("/provenance", "steps"))
      out.provenance["steps"] = std::to_string(file.int_attribute("/provenance", "steps"));
    if (file.has_attribute("/provenance", "final_loss"))
      out.provenance["final_loss"] = format_real(file.double_attribute("/provenance", "final_loss"));
    return out;
  } catch (const StoreError& e) {
    throw ModelError(std::string("FM file ") + e.what());
  }
}

void check_architecture(const ViTArchitecture& f, const ViTArchitecture& c, const std::string& path) {
  const auto differ = [&](const std::string& key, const std::string& in_file, const std::string& configured) {
    throw ModelError(path + ": " + key + " = " + in_file + " in the FM file, " + configured +
                     " in the config (an FM file runs only with the architecture it was made with)");
  };
  const auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ",") + format_real(x);
    return s;
  };
  if (f.image_size != c.image_size)
    differ("data.image_size", std::to_string(f.image_size), std::to_string(c.image_size));
  if (f.patch_size != c.patch_size) differ("fm.patch_size", std::to_string(f.patch_size), std::to_string(c.patch_size));
  if (f.in_chans != c.in_chans) differ("fm.in_chans", std::to_string(f.in_chans), std::to_string(c.in_chans));
  if (f.width != c.width) differ("fm.embed_dim", std::to_string(f.width), std::to_string(c.width));
  if (f.depth != c.depth) differ("fm.depth", std::to_string(f.depth), std::to_string(c.depth));
  if (f.heads != c.heads) differ("fm.heads", std::to_string(f.heads), std::to_string(c.heads));
  if (f.mlp_hidden() != c.mlp_hidden()) differ("fm.mlp_ratio", format_real(f.mlp_ratio), format_real(c.mlp_ratio));
  // Normalisation: float32 is what the encoder uses, so compare at that precision.
  const auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (static_cast<float>(a[i]) != static_cast<float>(b[i])) return false;
    return true;
  };
  if (!same(f.mean, c.mean)) differ("fm.mean", "\"" + list(f.mean) + "\"", "\"" + list(c.mean) + "\"");
  if (!same(f.std, c.std)) differ("fm.std", "\"" + list(f.std) + "\"", "\"" + list(c.std) + "\"");
}

void write_fm_file(const std::string& path, VisionTransformerImpl& vit, const FmProvenance& provenance) {
  const auto& a = vit.architecture();
  store::H5Writer w(path);
  w.attribute("/", "format", std::string(kFormat));
  w.attribute("/", "format_version", kFormatVersion);
  w.attribute("/", "kind", std::string("vit"));
  w.attribute("/architecture", "image_size", a.image_size);
  w.attribute("/architecture", "patch_size", a.patch_size);
  w.attribute("/architecture", "in_chans", a.in_chans);
  w.attribute("/architecture", "width", a.width);
  w.attribute("/architecture", "depth", a.depth);
  w.attribute("/architecture", "heads", a.heads);
  w.attribute("/architecture", "mlp_ratio", a.mlp_ratio);
  w.attribute("/architecture", "layer_norm_eps", a.layer_norm_eps);
  const auto channels = static_cast<std::uint64_t>(a.in_chans);
  w.dataset("/architecture/mean", a.mean, {channels});
  w.dataset("/architecture/std", a.std, {channels});
  for (const auto& item : vit.named_parameters()) {
    const auto t = item.value().detach().to(torch::kFloat32).contiguous();
    std::vector<float> values(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    std::vector<std::uint64_t> dims(t.sizes().begin(), t.sizes().end());
    w.dataset("/weights/" + item.key(), values, dims);
  }
  for (const auto& [k, v] : provenance.text) w.attribute("/provenance", k, v);
  for (const auto& [k, v] : provenance.integers) w.attribute("/provenance", k, v);
  for (const auto& [k, v] : provenance.reals) w.attribute("/provenance", k, v);
  w.attribute("/provenance", "content_hash", content_hash(vit));
  if (!provenance.loss.empty()) w.dataset("/pretrain/loss", provenance.loss, {provenance.loss.size()});
  w.commit();
}

std::string verify_weights(const config::FmOptions& options, std::int64_t image_size) {
  const auto configured = ViTArchitecture::from_config(options, image_size);
  const FmFile file = read_fm_file(options.weights);
  check_architecture(file.architecture, configured, options.weights);
  return file.hash;
}

std::shared_ptr<ViTEncoder> load_vit(const config::FmOptions& options, std::int64_t image_size, std::uint64_t seed) {
  const auto configured = ViTArchitecture::from_config(options, image_size);
  if (options.weights.empty()) return std::make_shared<ViTEncoder>(configured, options.pool, seed);
  FmFile file = read_fm_file(options.weights);
  check_architecture(file.architecture, configured, options.weights);
  std::map<std::string, std::string> provenance = file.provenance;
  provenance["file"] = options.weights;
  provenance["hash"] = file.hash;
  const std::string source = options.weights + " (" + (file.provenance.count("source") ? file.provenance.at("source") : "unknown source") +
                             ", hash " + file.hash + ")";
  return std::make_shared<ViTEncoder>(std::move(file.vit), options.pool, source, std::move(provenance));
}

}  // namespace dne::fm
