// The smallest ViT the unit tests use (16 x 16 images, 2 x 2 patches of 8, width 8, 2 blocks of
// 2 heads): shared by the ViT / FM file tests and the MAE tests.
#pragma once

#include <cstdint>

#include "dne/fm/vit_encoder.hpp"

namespace dne_test {

inline dne::fm::ViTArchitecture tiny_vit(std::int64_t in_chans = 1) {
  dne::fm::ViTArchitecture a;
  a.image_size = 16;
  a.patch_size = 8;
  a.in_chans = in_chans;
  a.width = 8;
  a.depth = 2;
  a.heads = 2;
  a.mlp_ratio = 2.0;
  a.mean.assign(static_cast<std::size_t>(in_chans), 0.5);
  a.std.assign(static_cast<std::size_t>(in_chans), 0.25);
  return a;
}

}  // namespace dne_test
