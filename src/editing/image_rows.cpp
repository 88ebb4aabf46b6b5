// Float32 batches of images held in a tensor or in a run's mapped image cache (image_rows.hpp).
#include "dne/editing/image_rows.hpp"

#include <stdexcept>
#include <string>

namespace dne::editing {

ImageRows::ImageRows(torch::Tensor images) : images_(std::move(images)) {}

ImageRows::ImageRows(std::shared_ptr<const data::ImageCacheMap> map, data::Split split, std::vector<std::int64_t> rows)
    : map_(std::move(map)), split_(split), rows_(std::move(rows)) {
  for (const auto r : rows_)
    if (r < 0 || r >= map_->rows(split_)) throw std::out_of_range("ImageRows: cache row " + std::to_string(r));
}

ImageRows ImageRows::of(const data::ImageSet& set, const std::shared_ptr<const data::ImageCacheMap>& map) {
  if (!set.pixels_elsewhere())
    return ImageRows(torch::from_blob(const_cast<float*>(set.pixels.data()), {set.size(), 1, set.height, set.width}, torch::kFloat32));
  if (map == nullptr) throw std::logic_error("ImageRows::of: the images are in an image cache that is not mapped");
  return ImageRows(map, static_cast<data::Split>(set.origin_split), set.origin);
}

std::int64_t ImageRows::size() const {
  if (map_) return static_cast<std::int64_t>(rows_.size());
  return images_.defined() ? images_.size(0) : 0;
}

std::int64_t ImageRows::height() const { return map_ ? map_->image_size() : images_.size(2); }
std::int64_t ImageRows::width() const { return map_ ? map_->image_size() : images_.size(3); }

torch::Tensor ImageRows::slice(std::int64_t begin, std::int64_t end) const {
  if (!map_) return images_.slice(0, begin, end);
  if (begin < 0 || end < begin || end > size()) throw std::out_of_range("ImageRows::slice");
  auto out = torch::empty({end - begin, 1, height(), width()}, torch::kFloat32);
  const auto hw = height() * width();
  float* p = out.data_ptr<float>();
  for (std::int64_t i = begin; i < end; ++i) map_->read(split_, rows_[static_cast<std::size_t>(i)], p + (i - begin) * hw);
  return out;
}

torch::Tensor ImageRows::select(const torch::Tensor& idx, torch::Tensor out) const {
  const auto index = idx.to(torch::kInt64).contiguous();
  const std::int64_t b = index.size(0);
  if (!out.defined()) out = torch::empty({b, 1, height(), width()}, torch::kFloat32);
  if (!map_) return torch::index_select_out(out, images_, 0, index);
  const auto hw = height() * width();
  const auto* k = index.data_ptr<std::int64_t>();
  float* p = out.data_ptr<float>();
  for (std::int64_t j = 0; j < b; ++j) {
    if (k[j] < 0 || k[j] >= size()) throw std::out_of_range("ImageRows::select: row " + std::to_string(k[j]));
    map_->read(split_, rows_[static_cast<std::size_t>(k[j])], p + j * hw);
  }
  return out;
}

const torch::Tensor& ImageRows::tensor() const {
  if (map_) throw std::logic_error("ImageRows::tensor: these images are rows of the image cache");
  return images_;
}

}  // namespace dne::editing
