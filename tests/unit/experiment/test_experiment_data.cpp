// Where an experiment's data come from and what it costs in memory (experiment/experiment.hpp),
// and the progress hand-over of the editors (editing::ProgressReporter): hand-computed cases.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <regex>
#include <string>
#include <vector>

#include "dne/comm/device_choice.hpp"
#include "dne/config/config.hpp"
#include "dne/core/errors.hpp"
#include "dne/editing/noise_editor.hpp"
#include "dne/experiment/experiment.hpp"

namespace {

using dne::config::ExperimentConfig;

TEST(EstimatedMemory, PhantomImagesTwiceAndThreeSetsOfEmbeddings) {
  ExperimentConfig c;  // the phantom
  c.data.n_train = 100;
  c.data.n_test = 50;
  c.data.n_val = 10;
  c.data.image_size = 32;
  c.fm.embed_dim = 16;
  const double images = 160, pixels = images * 32 * 32;
  // 8-bit while drawn + float32, and clean / method / control float32 embeddings
  EXPECT_DOUBLE_EQ(dne::experiment::estimated_memory_bytes(c), pixels + 4 * pixels + 3 * 4 * images * 16);
  c.data.source = "manifest";  // its rows are counted by the run's data check; streamed from the cache
  c.data_rows_train = 1000;
  c.data_rows_test = 500;
  EXPECT_DOUBLE_EQ(dne::experiment::estimated_memory_bytes(c), 3 * 4 * 1500.0 * 16);
  c.data.source = "embeddings";
  EXPECT_DOUBLE_EQ(dne::experiment::estimated_memory_bytes(c), 0.0);
}

TEST(LoadDataset, ThePhantomOfTheConfigAndItsSeed) {
  ExperimentConfig c;
  c.data.n_train = 40;
  c.data.n_test = 20;
  c.data.image_size = 32;
  const auto a = dne::experiment::load_dataset(c, "unused");
  EXPECT_EQ(a.train.size(), 40);
  EXPECT_EQ(a.test.size(), 20);
  EXPECT_EQ(a.train.height, 32);
  const auto again = dne::experiment::load_dataset(c, "unused");
  EXPECT_EQ(again.train.pixels, a.train.pixels);  // same config and seed: the same images
  c.sweep.seed = 1;
  EXPECT_NE(dne::experiment::load_dataset(c, "unused").train.pixels, a.train.pixels);
  const auto t = dne::experiment::to_tensor(a.train);  // (N, 1, H, W), a copy
  EXPECT_EQ(t.sizes(), (std::vector<std::int64_t>{40, 1, 32, 32}));
  EXPECT_EQ(t[3][0][5][7].item<float>(), a.train.pixels[3 * 32 * 32 + 5 * 32 + 7]);
  c.data.source = "embeddings";
  c.data.embeddings = "/nonexistent/embeddings.h5";
  EXPECT_THROW(dne::experiment::load_dataset(c, "unused"), dne::Error);
}

TEST(ExperimentPath, UnderTheRunDirectorysExperimentsFolder) {
  EXPECT_EQ(dne::experiment::experiment_path("runs/x", "0123456789abcdef"), "runs/x/experiments/0123456789abcdef.h5");
}

TEST(ProgressReporter, AtEveryMarkPassedAndAtTheEndOnce) {
  // eval_every = 100: marks at 0, 100, 200, ...; a mark is reported at the first step boundary
  // at or after it; the end is reported unless it was just reported.
  dne::editing::EditProblem p{torch::zeros({2, 1, 4, 4}), torch::zeros({2}), nullptr, {}, 0};
  p.options.eval_every = 100;
  std::vector<std::int64_t> seen;
  p.progress = [&](const torch::Tensor&, std::int64_t queries) { seen.push_back(queries); };
  dne::editing::ProgressReporter r(p);
  const auto eps = torch::zeros({4, 4});
  for (const std::int64_t q : {0, 40, 80, 120, 160, 200, 230}) r.at(eps, q);
  r.finish(eps, 230);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 120, 200, 230}));
  r.finish(eps, 230);  // already reported at these queries
  EXPECT_EQ(seen.size(), 4u);
  p.options.eval_every = 0;  // off
  dne::editing::ProgressReporter off(p);
  off.at(eps, 0);
  off.finish(eps, 10);
  EXPECT_EQ(seen.size(), 4u);
}

TEST(DeviceChoice, LibTorchsCudaVersionOrNone) {
  const std::string v = dne::comm::libtorch_cuda_version();
  EXPECT_TRUE(v == "none" || std::regex_match(v, std::regex(R"(\d+\.\d+)"))) << v;
  if (v == "none") {
    EXPECT_FALSE(torch::cuda::is_available());  // a CPU LibTorch sees no device
  }
}

TEST(DeviceChoice, TheCpuChoice) {
  const dne::comm::DeviceChoice cpu;  // the default: what a CPU machine resolves to
  EXPECT_FALSE(cpu.cuda());
  EXPECT_EQ(cpu.cuda_index(), -1);
  EXPECT_EQ(cpu.backend(), "mpi");
  EXPECT_TRUE(cpu.torch_device().is_cpu());
  EXPECT_EQ(cpu.description(), "cpu");
  EXPECT_NO_THROW(cpu.synchronize());
  dne::config::RunSettings settings;
  settings.reason = "cpu (asked for)";
  EXPECT_EQ(dne::comm::DeviceChoice(settings).reason(), "cpu (asked for)");
}

}  // namespace
