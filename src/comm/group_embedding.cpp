// The group's shared embedding of many images (see group_embedding.hpp).
#include "dne/comm/group_embedding.hpp"

#include <algorithm>

#include "dne/comm/group_agreement.hpp"
#include "dne/comm/tensor_sum.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"

namespace dne::comm {

torch::Tensor embed_over_group(std::int64_t n, std::int64_t chunk, std::int64_t dim, int window,
                               const std::function<torch::Tensor(std::int64_t, std::int64_t)>& images,
                               const EmbedBatches& embed, Communicator& group, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  auto z = torch::zeros({n, dim}, torch::TensorOptions().device(device));  // (N, D), each chunk filled by exactly one rank
  std::vector<std::int64_t> mine;   // first rows of this rank's chunks
  for (std::int64_t begin = 0, index = 0; begin < n; begin += chunk, ++index)
    if (index % group.size() == group.rank()) mine.push_back(begin);
  std::exception_ptr failure;
  try {
    const std::size_t step = static_cast<std::size_t>(std::max(1, window));
    for (std::size_t w = 0; w < mine.size(); w += step) {
      throw_if_stop_requested("while embedding");  // agreed on below, with the failures
      std::vector<torch::Tensor> batches;
      for (std::size_t k = w; k < std::min(mine.size(), w + step); ++k) batches.push_back(images(mine[k], std::min(n, mine[k] + chunk)));
      const auto zs = embed(batches);
      for (std::size_t k = 0; k < zs.size(); ++k) z.slice(0, mine[w + k], mine[w + k] + zs[k].size(0)).copy_(zs[k]);
    }
  } catch (const Error&) {
    failure = std::current_exception();
  }
  agree_on_failure(group, failure);
  allreduce_sum(group, z);
  return z;
}

}  // namespace dne::comm
