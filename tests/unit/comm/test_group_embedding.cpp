// The rank group's shared embedding (comm::embed_over_group) and its failure agreement
// (comm::agree_on_failure) on one rank: which rows each chunk and each call cover, by hand, and
// an error in one chunk reaching the caller as itself. (Several ranks: tests/mpi and the e2e
// sweeps on 2 ranks compare bits with 1 rank.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "dne/comm/communicator.hpp"
#include "dne/comm/group_agreement.hpp"
#include "dne/comm/group_embedding.hpp"
#include "dne/core/errors.hpp"

namespace {

TEST(EmbedOverGroup, ChunksCoverEveryRowOnceInOrderWithWindowsOfChunks) {
  // 10 images in chunks of 3 (rows 0-2, 3-5, 6-8, 9), handed to `embed` two chunks per call.
  // The stand-in FM maps image i (all pixels = i) to (i, 2i); the result must be row i = (i, 2i).
  auto alone = dne::comm::make_self_communicator();
  std::vector<std::pair<std::int64_t, std::int64_t>> asked;  // (begin, end) of every chunk made
  std::vector<std::size_t> per_call;                          // chunks per embed call
  const auto z = dne::comm::embed_over_group(
      10, 3, 2, 2,
      [&](std::int64_t begin, std::int64_t end) {
        asked.emplace_back(begin, end);
        return torch::arange(begin, end, torch::kFloat32).reshape({end - begin, 1, 1, 1}).expand({end - begin, 1, 2, 2}).contiguous();
      },
      [&](const std::vector<torch::Tensor>& batches) {
        per_call.push_back(batches.size());
        std::vector<torch::Tensor> out;
        for (const auto& b : batches) {
          const auto v = b.flatten(1).select(1, 0);  // (b,)
          out.push_back(torch::stack({v, 2 * v}, 1));
        }
        return out;
      },
      *alone);
  EXPECT_EQ(asked, (std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 3}, {3, 6}, {6, 9}, {9, 10}}));
  EXPECT_EQ(per_call, (std::vector<std::size_t>{2, 2}));
  const auto i = torch::arange(10, torch::kFloat32);
  EXPECT_TRUE(torch::equal(z, torch::stack({i, 2 * i}, 1)));
}

TEST(EmbedOverGroup, AChunkThatFailsReachesTheCallerAsItsOwnError) {
  auto alone = dne::comm::make_self_communicator();
  const auto images = [](std::int64_t begin, std::int64_t end) { return torch::zeros({end - begin, 1, 2, 2}); };
  const auto failing = [](const std::vector<torch::Tensor>&) -> std::vector<torch::Tensor> {
    throw dne::ModelError("remote FM: gave up after 4 retries");
  };
  EXPECT_THROW(dne::comm::embed_over_group(4, 2, 3, 1, images, failing, *alone), dne::ModelError);
}

TEST(AgreeOnFailure, AloneItRethrowsItsOwnFailureAndPassesOtherwise) {
  auto alone = dne::comm::make_self_communicator();
  EXPECT_NO_THROW(dne::comm::agree_on_failure(*alone, nullptr));
  EXPECT_THROW(dne::comm::agree_on_failure(*alone, std::make_exception_ptr(dne::DataError("bad row 7"))), dne::DataError);
  EXPECT_NO_THROW(dne::comm::stop_point(*alone, "between steps"));  // no stop was requested
}

}  // namespace
