// The rank group's shared embedding of many images: fixed chunks dealt round-robin over the
// group and summed, so every rank gets the same bits for any group size. Compiled into
// dne_torch with tensor_sum.hpp (the rest of comm stays Torch-free).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "dne/comm/communicator.hpp"

namespace dne::comm {

/// Batches of images (b_i, 1, H, W) -> their embeddings (b_i, D), no autograd.
using EmbedBatches = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

/// The embeddings (N, D) of N images computed in fixed chunks of `chunk` images (chunk c holds
/// rows [c * chunk, (c + 1) * chunk)) dealt round-robin over `group`, `window` chunks per call
/// of `embed`; the group sums the result (one contributor per row), so every rank gets the same
/// bits for any group size, and agrees on failures (agree_on_failure). `images(begin, end)`
/// makes the chunk's images (b, 1, H, W); `embed` returns embeddings on `device`, where the
/// result is built and summed.
torch::Tensor embed_over_group(std::int64_t n, std::int64_t chunk, std::int64_t dim, int window,
                               const std::function<torch::Tensor(std::int64_t, std::int64_t)>& images,
                               const EmbedBatches& embed, Communicator& group, const torch::Device& device = torch::kCPU);

}  // namespace dne::comm
