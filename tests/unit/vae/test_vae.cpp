// The adversarial VAE on synthetic embeddings with planted structure: the disease in dimensions
// 0-3, the sensitive attribute in dimensions 4-7 (independent of the disease), noise elsewhere.
// A fresh linear probe (the project's LinearProbe, fitted after training) on the latent means
// measures what is left: the adversary must remove the attribute and keep the disease; without
// the adversary (weight 0) the attribute must stay readable, so it is the adversary, not the
// bottleneck, that removes it.
//
// Measured while writing this test (fresh-probe SA AUC on the latent means; raw 1.000; disease AUC
// 0.998-1.000 throughout): "neg_loss" (gradient reversal) with 5 head steps per batch and weight
// 1 / 3: 0.58 / 0.66 after 40 epochs, 10 head steps and weight 3: 0.51; "confusion" (pull the
// head's output to 1/2) stays at 0.84-0.999 even at weight 30: against a head that re-learns
// every batch, pulling its current output to 1/2 only hides the attribute from that head.
#include <gtest/gtest.h>

#include "dne/config/config.hpp"
#include "dne/core/random.hpp"
#include "dne/metrics/metrics.hpp"
#include "dne/probe/linear_probe.hpp"
#include "dne/vae/adversarial_vae.hpp"

namespace {

struct Planted {
  torch::Tensor x, y, a;  // (N, 32), (N,), (N,)
};

Planted planted(std::int64_t n, std::uint32_t step) {
  dne::CounterStream s(42, dne::StreamPurpose::kTest, step, 0);
  std::vector<float> x(static_cast<std::size_t>(n * 32));
  std::vector<float> y(static_cast<std::size_t>(n)), a(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    y[static_cast<std::size_t>(i)] = s.bernoulli(0.5) ? 1.f : 0.f;
    a[static_cast<std::size_t>(i)] = s.bernoulli(0.5) ? 1.f : 0.f;
    for (int d = 0; d < 32; ++d) {
      float v = static_cast<float>(s.normal());
      if (d < 4) v += 1.5f * (2 * y[static_cast<std::size_t>(i)] - 1);
      else if (d < 8) v += 1.5f * (2 * a[static_cast<std::size_t>(i)] - 1);
      x[static_cast<std::size_t>(i * 32 + d)] = v;
    }
  }
  return {torch::tensor(x).reshape({n, 32}), torch::tensor(y), torch::tensor(a)};
}

double probe_auc(const torch::Tensor& z_train, const torch::Tensor& t_train, const torch::Tensor& z_test,
                 const torch::Tensor& t_test) {
  const auto p = dne::probe::LinearProbe::fit(z_train, t_train, dne::config::ProbeOptions{});
  const auto score = p.probability(z_test).to(torch::kFloat64).contiguous();
  const auto label = t_test.to(torch::kInt32).contiguous();
  return dne::metrics::roc_auc(std::vector<double>(score.data_ptr<double>(), score.data_ptr<double>() + score.numel()),
                               std::vector<int>(label.data_ptr<int>(), label.data_ptr<int>() + label.numel()));
}

dne::vae::VaeOptions small_options(double adversary_weight) {
  dne::vae::VaeOptions o;
  o.latent = 8;
  o.hidden = {64};
  o.epochs = 40;
  o.batch_size = 100;
  o.lr = 3e-3;
  o.adversary_weight = adversary_weight;
  o.adversary_steps = 10;
  o.adversary_objective = "neg_loss";
  o.seed = 3;
  return o;
}

struct Outcome {
  double sa_auc, disease_auc;
};

Outcome train_and_probe(double adversary_weight) {
  const auto train = planted(1500, 0), test = planted(800, 1);
  dne::vae::AdversarialVae vae(32, {{"sex", train.a, true, 1.0}}, small_options(adversary_weight));
  vae.train(train.x, torch::Tensor());
  const auto z_train = vae.encode_mean(train.x), z_test = vae.encode_mean(test.x);
  return {probe_auc(z_train, train.a, z_test, test.a), probe_auc(z_train, train.y, z_test, test.y)};
}

TEST(AdversarialVae, RemovesAPlantedAttributeAndKeepsTheDisease) {
  const auto train = planted(1500, 0), test = planted(800, 1);
  const double raw_disease = probe_auc(train.x, train.y, test.x, test.y);
  const double raw_sa = probe_auc(train.x, train.a, test.x, test.a);
  ASSERT_GT(raw_sa, 0.95);  // the attribute is plainly there before
  const auto with = train_and_probe(3.0);
  EXPECT_LE(with.sa_auc, 0.6) << "raw " << raw_sa;
  EXPECT_GE(with.disease_auc, 0.95 * raw_disease) << "raw " << raw_disease;
  const auto without = train_and_probe(0.0);  // the same VAE without its adversary
  EXPECT_GT(without.sa_auc, 0.9);
}

TEST(AdversarialVae, TheAdversaryGradientReachesTheEncoder) {
  const auto train = planted(200, 2);
  auto o = small_options(1.0);
  o.epochs = 1;
  dne::vae::AdversarialVae vae(32, {{"sex", train.a, true, 1.0}, {"age", train.y * 40 + 30, false, 0.5}}, o);
  vae.train(train.x, torch::Tensor());
  for (auto& p : vae.encoder_parameters()) p.mutable_grad() = torch::Tensor();
  const auto age = (train.y * 40 + 30 - (train.y * 40 + 30).mean()) / (train.y * 40 + 30).std(false);
  vae.adversarial_term(train.x, {train.a, age}).backward();
  double total = 0.0;
  for (const auto& p : vae.encoder_parameters()) {
    ASSERT_TRUE(p.grad().defined());
    total += p.grad().abs().sum().item<double>();
  }
  EXPECT_GT(total, 0.0);
}

TEST(AdversarialVae, SameSeedSameBitsAndTracesPerEpoch) {
  const auto train = planted(300, 3);
  auto o = small_options(1.0);
  o.epochs = 3;
  const dne::vae::Attribute sex{"sex", train.a, true, 1.0};
  dne::vae::AdversarialVae a(32, {sex}, o), b(32, {sex}, o);
  a.train(train.x, torch::Tensor());
  b.train(train.x, torch::Tensor());
  EXPECT_TRUE(torch::equal(a.encode_mean(train.x), b.encode_mean(train.x)));
  const dne::vae::VaeTrace& trace = a.trace();  // one value per epoch, one row per attribute
  EXPECT_EQ(trace.loss.size(), 3u);
  EXPECT_EQ(trace.reconstruction.size(), 3u);
  EXPECT_EQ(trace.adversary_loss.size(), 1u);
  EXPECT_EQ(trace.adversary_loss.at(0).size(), 3u);
  for (const double acc : trace.adversary_accuracy.at(0)) EXPECT_TRUE(acc >= 0.0 && acc <= 1.0) << acc;  // binary: an accuracy
  for (std::size_t e = 0; e < 3; ++e)  // the encoder's loss is its parts: reconstruction + beta KL + w adversarial term
    EXPECT_NEAR(trace.loss[e], trace.reconstruction[e] + o.beta * trace.kl[e] + o.adversary_weight * trace.adversarial_term[e],
                1e-5 * (1.0 + std::abs(trace.loss[e])));
  o.seed = 4;
  dne::vae::AdversarialVae c(32, {{"sex", train.a, true, 1.0}}, o);
  c.train(train.x, torch::Tensor());
  EXPECT_FALSE(torch::equal(a.encode_mean(train.x), c.encode_mean(train.x)));
}

}  // namespace
