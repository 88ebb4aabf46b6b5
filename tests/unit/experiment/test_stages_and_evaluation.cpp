// The downstream evaluation (experiment/evaluation.hpp) on hand-made embeddings whose answers are
// known without the code (a column that carries the disease gives AUC 1, a constant column gives
// the SA probe AUC 0.5 exactly), and the stages of one experiment (experiment/stages.hpp) on a
// tiny phantom: what each stage leaves, and run_experiment's result file read back.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "dne/config/config.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/experiment/method_registry.hpp"
#include "dne/experiment/result_layout.hpp"
#include "dne/experiment/stages.hpp"
#include "dne/store/result_file.hpp"
#include "test_support.hpp"

namespace {

namespace dx = dne::experiment;

TEST(EvaluationHelpers, TensorsToVectorsRowMajorAndLabelsToInt64) {
  const auto t = torch::tensor({1.5, -2.0, 3.25, 4.0}, torch::kFloat64).reshape({2, 2}).t();  // not contiguous
  EXPECT_EQ(dx::to_doubles(t), (std::vector<double>{1.5, 3.25, -2.0, 4.0}));
  EXPECT_EQ(dx::to_floats(t), (std::vector<float>{1.5f, 3.25f, -2.0f, 4.0f}));
  const auto labels = dx::int_tensor({0, 1, 1});
  EXPECT_EQ(labels.scalar_type(), torch::kInt64);
  EXPECT_EQ(labels[1].item<std::int64_t>(), 1);
  EXPECT_EQ(labels.numel(), 3);
}

/// n rows: label i % 2, sa (i / 2) % 2 (every cell the same size).
dne::data::ImageSet rows(int n) {
  dne::data::ImageSet s;
  s.height = 1;
  s.width = 3;
  for (int i = 0; i < n; ++i) {
    s.label.push_back(i % 2);
    s.sa.push_back((i / 2) % 2);
  }
  return s;
}

/// Embeddings (N, 3): column 0 carries the label, column 1 the SA (or 0 when `hide_sa`), column
/// 2 a small row-dependent jitter, so no two rows are equal.
torch::Tensor embeddings(const dne::data::ImageSet& s, bool hide_sa) {
  auto z = torch::zeros({s.size(), 3}, torch::kFloat32);
  for (std::int64_t i = 0; i < s.size(); ++i) {
    z[i][0] = 2.0 * s.label[static_cast<std::size_t>(i)] - 1.0 + 0.01 * static_cast<double>(i % 5);
    z[i][1] = hide_sa ? 0.0 : 2.0 * s.sa[static_cast<std::size_t>(i)] - 1.0;
    z[i][2] = 0.1 * static_cast<double>(i % 7);
  }
  return z;
}

TEST(Evaluation, SeparableColumnsGiveAucOneAndAConstantColumnHidesTheSa) {
  dne::data::Dataset d;
  d.train = rows(40);
  d.test = rows(20);
  d.val = rows(12);
  dne::config::ProbeOptions probes;  // l2 1e-3
  const auto z_train = embeddings(d.train, false);
  dx::EvalContext e{d, dx::int_tensor(d.train.label), dx::int_tensor(d.train.sa), nullptr, {}, probes};
  e.g_clean_test.assign(d.test.sa.begin(), d.test.sa.end());  // a g that reads the SA perfectly
  const auto g = dne::probe::LinearProbe::fit(z_train, e.a_train, probes);
  e.frozen = &g;

  const dx::ScoredSplit shown = dx::score_split(z_train, embeddings(d.test, false), d.test, e, probes);
  EXPECT_EQ(shown.metrics.at("auc"), 1.0);
  EXPECT_EQ(shown.metrics.at("accuracy"), 1.0);
  EXPECT_EQ(shown.metrics.at("sa_leakage_auc"), 1.0);
  EXPECT_EQ(shown.metrics.at("frozen_sa_auc"), 1.0);
  EXPECT_EQ(shown.score.size(), 20u);
  EXPECT_EQ(shown.frozen_score.size(), 20u);

  // The SA column constant: the fresh SA probe's scores are all equal, so its AUC is 0.5 exactly.
  dx::Splits hidden{embeddings(d.train, true), embeddings(d.val, true), embeddings(d.test, true)};
  e.probes.l2_choices = "1e-4, 10";
  const dx::Downstream down = dx::evaluate(hidden, e);
  EXPECT_EQ(down.metrics.at("sa_leakage_auc"), 0.5);
  EXPECT_EQ(down.metrics.at("auc"), 1.0);
  EXPECT_EQ(down.metrics.at("sa_probe_clean_auc"), 1.0);  // g's clean scores were the SA itself
  EXPECT_EQ(down.metrics.at("sa_probe_clean_accuracy"), 1.0);
  // Both L2 values separate the validation rows (AUC 1): the tie keeps the first listed.
  EXPECT_EQ(down.val_auc, (std::vector<double>{1.0, 1.0}));
  EXPECT_EQ(down.disease_l2, 1e-4);
  EXPECT_EQ(down.metrics.count("age_leakage_r2"), 0u);  // the data have no age
}

TEST(Evaluation, AnAgeColumnIsFoundByTheRidgeAttack) {
  dne::data::Dataset d;
  d.train = rows(40);
  d.test = rows(20);
  auto z_train = embeddings(d.train, true), z_test = embeddings(d.test, true);
  for (auto* set : {&d.train, &d.test}) {
    auto& z = set == &d.train ? z_train : z_test;
    for (std::int64_t i = 0; i < set->size(); ++i) {
      set->age.push_back(static_cast<float>(20 + (i * 37) % 70));
      z[i][2] = (set->age.back() - 55.0f) / 35.0f;  // the age, linearly
    }
  }
  dx::EvalContext e{d, dx::int_tensor(d.train.label), dx::int_tensor(d.train.sa), nullptr,
                    std::vector<double>(20, 0.5), dne::config::ProbeOptions{}};
  const auto down = dx::evaluate(dx::Splits{z_train, {}, z_test}, e);
  EXPECT_GT(down.metrics.at("age_leakage_r2"), 0.999);
  EXPECT_EQ(down.metrics.count("frozen_sa_auc"), 0u);  // no g: the VAE's latent space
}

/// A tiny ERM experiment on the phantom: 32 x 32 images, a 4-channel CNN of 8 outputs.
dne::config::ExperimentConfig tiny_erm() {
  dne::config::ExperimentConfig c;
  c.data.image_size = 32;
  c.data.n_train = 40;
  c.data.n_test = 20;
  c.fm.width = 4;
  c.fm.embed_dim = 8;
  c.dne.method = "none";
  return c;
}

class Stages : public dne_test::TempDirTest {};

TEST_F(Stages, EachStageLeavesItsPart) {
  const auto c = tiny_erm();
  dx::ExperimentContext ctx;
  ctx.run.output_dir = path("run");
  dx::ExperimentState s(c, ctx);
  EXPECT_EQ(s.method_info.name, "none");
  EXPECT_EQ(&dx::method(c.dne.method).info, &s.method_info);  // the registry's entry

  dx::load_data(s);
  EXPECT_EQ(s.dataset.train.size(), 40);
  EXPECT_EQ(s.dataset.test.size(), 20);
  EXPECT_EQ(s.y_train.numel(), 40);
  EXPECT_EQ(s.a_train.numel(), 40);
  EXPECT_FALSE(s.has_val);
  ASSERT_NE(s.group, nullptr);  // no group given: this rank alone
  EXPECT_EQ(s.group->size(), 1);

  dx::embed_clean(s);
  ASSERT_TRUE(s.model != nullptr);
  EXPECT_EQ(s.clean.train.sizes(), (std::vector<std::int64_t>{40, 8}));
  EXPECT_EQ(s.clean.test.sizes(), (std::vector<std::int64_t>{20, 8}));
  EXPECT_FALSE(s.clean.val.defined());
  // The clean embeddings are the model's of the images, batch by batch.
  const auto direct = s.model->embed(dx::to_tensor(s.dataset.test));
  EXPECT_TRUE(torch::allclose(direct, s.clean.test, 1e-5, 1e-6));

  dx::fit_frozen_probe(s);
  ASSERT_TRUE(s.g.has_value());
  ASSERT_TRUE(s.eval.has_value());
  EXPECT_EQ(s.eval->frozen, &*s.g);
  EXPECT_EQ(s.eval->g_clean_test, dx::to_doubles(s.g->probability(s.clean.test)));

  dx::gather_traffic(s);  // an in-process model: no requests, nothing to gather
  EXPECT_EQ(s.client_stats.requests, 0);

  dx::method(c.dne.method).run(s);  // ERM: the clean embeddings, evaluated; no control
  const dx::MethodOutcome& o = s.outcome;
  EXPECT_TRUE(torch::equal(o.result.z.test, s.clean.test));
  EXPECT_TRUE(o.control.metrics.empty());
  if (o.noise.defined()) {
    EXPECT_EQ(o.noise.abs().sum().item<float>(), 0.0f);  // ERM: no noise
  }

  // The layout writer writes what it is given: a summary with a hand-set metric.
  dx::ExperimentSummary summary;
  summary.id = "00000000000000ab";
  summary.path = path("out/experiments/00000000000000ab.h5");
  summary.metrics = {{"auc", 0.25}};
  dx::write_result_file(s, summary, std::chrono::steady_clock::now());
  const dne::store::H5Reader file(summary.path);
  EXPECT_EQ(file.string_attribute("/", "id"), "00000000000000ab");
  EXPECT_EQ(file.double_attribute("/metrics", "auc"), 0.25);
  EXPECT_EQ(file.double_attribute("/timings", "total_s"), summary.wall_s);
  EXPECT_EQ(file.string_attribute("/provenance", "communicator"), s.group->name());
  std::vector<std::uint64_t> dims;
  EXPECT_EQ(file.doubles("/test/score", dims), o.result.score);
}

TEST_F(Stages, RunExperimentWritesItsSummaryToTheResultFile) {
  const auto c = tiny_erm();
  dx::ExperimentContext ctx;
  ctx.run.output_dir = path("run");
  ctx.run.save_embeddings = true;
  std::filesystem::create_directories(path("run/experiments"));
  const dx::ExperimentSummary summary = dx::run_experiment(c, ctx);
  EXPECT_EQ(summary.id, c.id());
  EXPECT_EQ(summary.path, dx::experiment_path(path("run"), c.id()));
  EXPECT_EQ(summary.status, "complete");
  EXPECT_TRUE(summary.control_metrics.empty());  // ERM has no control
  EXPECT_EQ(summary.queries, 0);
  ASSERT_TRUE(std::filesystem::exists(summary.path));
  const dne::store::H5Reader file(summary.path);
  EXPECT_EQ(file.string_attribute("/", "id"), c.id());
  EXPECT_EQ(file.string_attribute("/", "method"), "none");
  for (const auto& [name, value] : summary.metrics) {  // NaN where a metric is undefined on 20 rows
    const double stored = file.double_attribute("/metrics", name);
    EXPECT_TRUE(stored == value || (std::isnan(stored) && std::isnan(value))) << name;
  }
  std::vector<std::uint64_t> dims;
  EXPECT_EQ(file.doubles("/test/score", dims).size(), 20u);
  EXPECT_GE(file.double_attribute("/timings", "total_s"), 0.0);

  // Its saved embeddings as a data source: hashed by the file's bytes and the group read.
  auto from_file = c;
  from_file.data.source = "embeddings";
  from_file.data.embeddings = summary.path;
  const std::string hash = dx::embeddings_hash(from_file);
  EXPECT_EQ(hash.size(), 16u);
  EXPECT_EQ(dx::embeddings_hash(from_file), hash);
  std::filesystem::copy_file(summary.path, path("copy.h5"));
  { std::ofstream(path("copy.h5"), std::ios::app) << "x"; }  // one byte more
  from_file.data.embeddings = path("copy.h5");
  EXPECT_NE(dx::embeddings_hash(from_file), hash);
}

TEST_F(Stages, WithoutACacheTheStreamedLoadIsTheInMemoryOne) {
  const auto c = tiny_erm();
  std::shared_ptr<const dne::data::ImageCacheMap> cache;
  const auto streamed = dx::load_dataset_streamed(c, path("run"), cache);
  EXPECT_EQ(cache, nullptr);  // the phantom: generated, nothing mapped
  const auto in_memory = dx::load_dataset(c, path("run"));
  EXPECT_EQ(streamed.train.pixels, in_memory.train.pixels);
  EXPECT_EQ(streamed.test.label, in_memory.test.label);
}

TEST(SecondsSince, CountsWallTime) {
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double s = dx::seconds_since(start);
  EXPECT_GE(s, 0.02);
  EXPECT_LT(s, 60.0);
}

}  // namespace
