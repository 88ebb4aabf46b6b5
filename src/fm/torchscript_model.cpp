// TorchScript foundation model (see torchscript_model.hpp).
#include "dne/fm/torchscript_model.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <torch/script.h>

#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"

namespace dne::fm {
namespace {

/// The module's own message: the last line of the error without Torch's C++ backtrace (for a
/// TorchScript `raise`, "RuntimeError: <what the module said>").
std::string module_message(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error != nullptr ? c10_error->what_without_backtrace() : e.what();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto cut = text.find_last_of('\n');
  return cut == std::string::npos ? text : text.substr(cut + 1);
}

/// The module's result for a batch of `batch` images as a (B, D) float32 tensor with D >= 1;
/// ModelError naming what came back otherwise.
torch::Tensor checked_output(const c10::IValue& result, std::int64_t batch, const std::string& where) {
  if (!result.isTensor())
    throw ModelError(where + ": forward returned a " + result.tagKind() + "; it must return one (B, D) float32 tensor");
  auto out = result.toTensor();
  // Under bf16 autocast (run.precision, fm/device_model.hpp) a float32 module returns bfloat16.
  if (out.dim() == 2 && (out.scalar_type() == torch::kBFloat16 || out.scalar_type() == torch::kHalf))
    out = out.to(torch::kFloat32);
  if (out.dim() != 2 || out.scalar_type() != torch::kFloat32)
    throw ModelError(where + ": forward must return (B, D) float32, got a " + std::to_string(out.dim()) + "-d " +
                     std::string(c10::toString(out.scalar_type())) + " tensor of shape " + c10::str(out.sizes()));
  if (out.size(0) != batch)
    throw ModelError(where + ": forward returned " + c10::str(out.sizes()) + " for a batch of " + std::to_string(batch) +
                     " images (the first dimension must be the batch)");
  if (out.size(1) < 1) throw ModelError(where + ": forward returned " + c10::str(out.sizes()) + ": embeddings need D >= 1");
  return out;
}

class TorchScriptModel : public DifferentiableModel {
 public:
  TorchScriptModel(torch::jit::Module module, std::string path, std::string hash, std::int64_t embed_dim)
      : module_(std::move(module)), path_(std::move(path)), hash_(std::move(hash)), embed_dim_(embed_dim) {}

  torch::Tensor forward(const torch::Tensor& images) override {
    const std::string where = "fm.torchscript '" + path_ + "'";
    c10::IValue result;
    try {
      result = module_.forward({images});
    } catch (const std::exception& e) {
      throw ModelError(where + ": forward failed: " + module_message(e));
    }
    auto out = checked_output(result, images.size(0), where);
    if (images.requires_grad() && !out.requires_grad())
      throw ModelError(where + ": the output does not depend on the input through differentiable operations (it is "
                       "detached): white-box DNE needs its gradient; use a zeroth-order method (gezo, rge, spsa)");
    return out;
  }
  std::int64_t embed_dim() const override { return embed_dim_; }
  std::string describe() const override {
    return "torchscript(" + path_ + ", embed_dim=" + std::to_string(embed_dim_) +
           ", params=" + std::to_string(parameter_count()) + ")";
  }
  double flops_per_image() const override { return std::nan(""); }
  /// The file and the FNV-1a-64 of the very bytes the module was loaded from (the id's fm hash).
  std::map<std::string, std::string> provenance() const override { return {{"file", path_}, {"hash", hash_}}; }
  void to(const torch::Device& device) override { module_.to(device); }
  std::int64_t parameter_count() const override {
    std::int64_t n = 0;
    for (const auto& p : module_.parameters()) n += p.numel();
    return n;
  }

 private:
  mutable torch::jit::Module module_;
  std::string path_, hash_;
  std::int64_t embed_dim_;
};

}  // namespace

std::shared_ptr<DifferentiableModel> load_torchscript(const std::string& path,
                                                      std::int64_t image_size) {
  if (!std::filesystem::is_regular_file(path))
    throw ModelError("fm.torchscript: '" + path + "' does not exist or is not a file");
  // Loaded from the bytes that are hashed, so the hash describes exactly the module in use.
  std::ifstream file(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!file && !file.eof()) throw ModelError("fm.torchscript: '" + path + "' cannot be read");
  const std::string hash = hex16(fnv1a64(bytes));
  torch::jit::Module module;
  try {
    std::istringstream in(bytes);
    module = torch::jit::load(in);
  } catch (const c10::Error& e) {
    throw ModelError("fm.torchscript: '" + path + "' is not a loadable TorchScript module");
  }
  module.eval();
  for (auto p : module.parameters()) p.set_requires_grad(false);
  // Probe: two different images must give finite (2, D) embeddings that differ.
  const std::string where = "fm.torchscript '" + path + "'";
  const auto probe = torch::stack({torch::full({1, image_size, image_size}, 0.25f), torch::full({1, image_size, image_size}, 0.75f)});
  torch::Tensor out;
  try {
    torch::NoGradGuard no_grad;
    out = checked_output(module.forward({probe}), 2, where);
  } catch (const ModelError&) {
    throw;
  } catch (const std::exception& e) {
    throw ModelError(where + ": forward on a (2, 1, " + std::to_string(image_size) + ", " + std::to_string(image_size) +
                     ") float tensor failed: " + module_message(e));
  }
  if (!torch::isfinite(out).all().item<bool>()) throw ModelError(where + ": forward returned non-finite values");
  if (torch::equal(out[0], out[1]))
    throw ModelError(where + ": the output does not depend on the input (two different images give the same embedding)");
  return std::make_shared<TorchScriptModel>(std::move(module), path, hash, out.size(1));
}

}  // namespace dne::fm
