// FM forwards on a GPU at a chosen precision (see device_model.hpp).
#include "dne/fm/device_model.hpp"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "dne/core/errors.hpp"

namespace dne::fm {
namespace {

/// The precision of one forward, set for its scope and restored after (autocast state is
/// thread-local; the TF32 switches are process-wide and restored to what they were).
class PrecisionScope {
 public:
  explicit PrecisionScope(const std::string& precision) : precision_(precision) {
    auto& context = at::globalContext();
    if (precision_ == "tf32") {
      cublas_ = context.allowTF32CuBLAS();
      cudnn_ = context.allowTF32CuDNN();
      context.setAllowTF32CuBLAS(true);
      context.setAllowTF32CuDNN(true);
    } else if (precision_ == "bf16") {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    }
  }
  ~PrecisionScope() {
    auto& context = at::globalContext();
    if (precision_ == "tf32") {
      context.setAllowTF32CuBLAS(cublas_);
      context.setAllowTF32CuDNN(cudnn_);
    } else if (precision_ == "bf16") {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
      at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
      at::autocast::set_enabled(false);
#endif
      at::autocast::clear_cache();
    }
  }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  std::string precision_;
  bool cublas_ = false, cudnn_ = false;
};

class DeviceModel : public DifferentiableModel {
 public:
  DeviceModel(std::shared_ptr<DifferentiableModel> inner, const torch::Device& device, std::string precision)
      : inner_(std::move(inner)), device_(device), precision_(std::move(precision)) {
    if (precision_ != "fp32" && precision_ != "tf32" && precision_ != "bf16")
      throw ConfigError("run.precision: \"" + precision_ + "\" is not one of fp32, tf32, bf16");
    inner_->to(device_);
  }

  torch::Tensor forward(const torch::Tensor& images) override {  // (B, 1, H, W) host -> (B, D) host fp32
    // A batch without gradient goes through page-locked memory, so the copy is asynchronous.
    const auto host = images.requires_grad() || !images.device().is_cpu() ? images : images.pin_memory();
    const auto x = host.to(device_, /*non_blocking=*/true);
    torch::Tensor z;
    {
      const PrecisionScope precision(precision_);
      z = inner_->forward(x);
    }
    return z.to(torch::kFloat32).to(torch::kCPU);
  }
  std::int64_t embed_dim() const override { return inner_->embed_dim(); }
  std::string describe() const override { return inner_->describe() + " on " + device_.str() + " (" + precision_ + ")"; }
  std::map<std::string, std::string> provenance() const override { return inner_->provenance(); }
  double flops_per_image() const override { return inner_->flops_per_image(); }
  std::int64_t parameter_count() const override { return inner_->parameter_count(); }
  void to(const torch::Device& device) override {
    inner_->to(device);
    device_ = device;
  }

 private:
  std::shared_ptr<DifferentiableModel> inner_;
  torch::Device device_;
  std::string precision_;
};

}  // namespace

std::shared_ptr<DifferentiableModel> on_device(std::shared_ptr<DifferentiableModel> model, const torch::Device& device,
                                               const std::string& precision) {
  return std::make_shared<DeviceModel>(std::move(model), device, precision);
}

}  // namespace dne::fm
