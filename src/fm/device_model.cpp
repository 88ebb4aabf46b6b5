// FM forwards on a GPU at a chosen precision (see device_model.hpp).
#include "dne/fm/device_model.hpp"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "dne/core/errors.hpp"

namespace dne::fm {
namespace {

/// bf16 autocast for the scope of one forward (autocast state is thread-local), restored after.
class AutocastScope {
 public:
  explicit AutocastScope(bool bf16) : bf16_(bf16) {
    if (!bf16_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    was_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    was_enabled_ = at::autocast::is_enabled();
    was_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
  }
  ~AutocastScope() {
    if (!bf16_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, was_dtype_);
#else
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
#endif
    if (!was_enabled_) at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool bf16_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

class DeviceModel : public DifferentiableModel {
 public:
  DeviceModel(std::shared_ptr<DifferentiableModel> inner, const torch::Device& device, std::string precision)
      : inner_(std::move(inner)), device_(device), precision_(std::move(precision)) {
    if (precision_ != "fp32" && precision_ != "tf32" && precision_ != "bf16")
      throw ConfigError("run.precision: \"" + precision_ + "\" is not one of fp32, tf32, bf16");
    // TF32 tensor cores only when asked for: cuDNN allows them by default, which would make
    // "fp32" convolutions TF32. Process-wide switches, set for the experiment this model serves
    // (one at a time per process), so a white-box backward runs at the same precision.
    at::globalContext().setAllowTF32CuBLAS(precision_ == "tf32");
    at::globalContext().setAllowTF32CuDNN(precision_ == "tf32");
    inner_->to(device_);
  }

  // (B, 1, H, W) -> (B, D) float32 on the input's device: a host batch comes back to the host
  // (clean and downstream embeddings, which are stored), a batch already on the GPU (the editors')
  // stays there.
  torch::Tensor forward(const torch::Tensor& images) override {
    const bool host_input = images.device().is_cpu();
    // A host batch without gradient goes through page-locked memory, so the copy is asynchronous.
    const auto staged = host_input && !images.requires_grad() ? images.pin_memory() : images;
    const auto x = staged.to(device_, /*non_blocking=*/true);
    torch::Tensor z;
    {
      const AutocastScope autocast(precision_ == "bf16");
      z = inner_->forward(x);
    }
    return z.to(images.device(), torch::kFloat32);
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
