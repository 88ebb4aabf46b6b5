// The images an experiment and its editor read, as float32 batches, wherever the pixels are.
//
// An ImageRows is N images of (H, W): either a float32 tensor (N, 1, H, W) on the host (the
// phantom, an in-memory data set, tests), or rows of one split of a run's image cache read
// through its shared read-only map (data::ImageCacheMap): then no rank holds the split, each
// batch is dequantized from the node's one copy when it is asked for. Both give the same
// batch for the same rows. Copies are cheap (a tensor handle or a shared map and a row list).
// An ImageRows converts implicitly from a tensor, so code that held (N, 1, H, W) tensors keeps
// working.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "dne/data/image_cache.hpp"

namespace dne::editing {

class ImageRows {
 public:
  ImageRows() = default;
  /// (N, 1, H, W) float32 on the host (an undefined tensor: no images, defined() false).
  ImageRows(torch::Tensor images);  // NOLINT(google-explicit-constructor): a view of the tensor
  /// Rows `rows` of split `split` of the mapped cache `map`.
  ImageRows(std::shared_ptr<const data::ImageCacheMap> map, data::Split split, std::vector<std::int64_t> rows);
  /// The images of `set`: its pixels in memory (viewed, not copied: `set` must outlive the
  /// result), or its rows of `map` when they are elsewhere (ImageSet::origin).
  static ImageRows of(const data::ImageSet& set, const std::shared_ptr<const data::ImageCacheMap>& map);

  bool defined() const { return images_.defined() || map_ != nullptr; }
  std::int64_t size() const;
  std::int64_t height() const;
  std::int64_t width() const;
  /// Images [begin, end) as (end - begin, 1, H, W) float32 (a view for a tensor).
  torch::Tensor slice(std::int64_t begin, std::int64_t end) const;
  /// Images idx (B,) int64 as (B, 1, H, W) float32, written into `out` when it is given (e.g.
  /// page-locked memory for an upload) and returned.
  torch::Tensor select(const torch::Tensor& idx, torch::Tensor out = {}) const;
  /// The tensor this was made from; throws std::logic_error for cache rows.
  const torch::Tensor& tensor() const;

 private:
  torch::Tensor images_;
  std::shared_ptr<const data::ImageCacheMap> map_;
  data::Split split_ = data::Split::kTrain;
  std::vector<std::int64_t> rows_;
};

}  // namespace dne::editing
