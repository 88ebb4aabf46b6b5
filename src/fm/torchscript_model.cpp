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

class TorchScriptModel : public DifferentiableModel {
 public:
  TorchScriptModel(torch::jit::Module module, std::string path, std::string hash, std::int64_t embed_dim)
      : module_(std::move(module)), path_(std::move(path)), hash_(std::move(hash)), embed_dim_(embed_dim) {}

  torch::Tensor forward(const torch::Tensor& images) override {
    return module_.forward({images}).toTensor();
  }
  std::int64_t embed_dim() const override { return embed_dim_; }
  std::string describe() const override {
    return "torchscript(" + path_ + ", embed_dim=" + std::to_string(embed_dim_) +
           ", params=" + std::to_string(parameter_count()) + ")";
  }
  double flops_per_image() const override { return std::nan(""); }
  /// The file and the FNV-1a-64 of the very bytes the module was loaded from (the id's fm hash).
  std::map<std::string, std::string> provenance() const override { return {{"file", path_}, {"hash", hash_}}; }
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
  torch::Tensor out;
  try {
    torch::NoGradGuard no_grad;
    out = module.forward({torch::full({2, 1, image_size, image_size}, 0.5f)}).toTensor();
  } catch (const std::exception& e) {
    throw ModelError("fm.torchscript: '" + path + "': forward on a (2, 1, " +
                     std::to_string(image_size) + ", " + std::to_string(image_size) +
                     ") float tensor failed");
  }
  if (out.dim() != 2 || out.size(0) != 2 || out.scalar_type() != torch::kFloat32)
    throw ModelError("fm.torchscript: '" + path + "': forward must return (B, D) float32, got " +
                     std::to_string(out.dim()) + "-d " + std::string(c10::toString(out.scalar_type())));
  if (!torch::isfinite(out).all().item<bool>())
    throw ModelError("fm.torchscript: '" + path + "': forward returned non-finite values");
  return std::make_shared<TorchScriptModel>(std::move(module), path, hash, out.size(1));
}

}  // namespace dne::fm
