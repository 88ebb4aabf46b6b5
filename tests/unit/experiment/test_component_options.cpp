// Config-to-component option translation (experiment/component_options.hpp): each component
// keeps its own defaults, and config's key table has the user-facing ones; the default config
// must translate into exactly the component's defaults, field by field, so the two can never
// drift apart silently. And a set value reaches its field.
#include <gtest/gtest.h>

#include "dne/config/config.hpp"
#include "dne/experiment/component_options.hpp"

namespace {

using dne::config::ExperimentConfig;

TEST(ComponentOptions, TheDefaultConfigGivesThePhantomsDefaults) {
  const auto p = dne::experiment::phantom_options(ExperimentConfig{});
  const dne::data::PhantomOptions d;
  EXPECT_EQ(p.image_size, d.image_size);
  EXPECT_EQ(p.n_train, d.n_train);
  EXPECT_EQ(p.n_test, d.n_test);
  EXPECT_EQ(p.n_val, d.n_val);
  EXPECT_EQ(p.prevalence, d.prevalence);
  EXPECT_EQ(p.bias, d.bias);
  EXPECT_EQ(p.breast_contrast, d.breast_contrast);
  EXPECT_EQ(p.marker_rate_a1, d.marker_rate_a1);
  EXPECT_EQ(p.marker_rate_a0, d.marker_rate_a0);
  EXPECT_EQ(p.severity_min, d.severity_min);
  EXPECT_EQ(p.severity_max, d.severity_max);
  EXPECT_EQ(p.noise_std, d.noise_std);
  EXPECT_EQ(p.age_effect, d.age_effect);
  EXPECT_EQ(p.age_bias, d.age_bias);
  EXPECT_EQ(p.seed, d.seed);
}

TEST(ComponentOptions, TheDefaultConfigGivesTheVaesDefaults) {
  const dne::vae::VaeOptions d;
  const auto v = dne::experiment::vae_options(ExperimentConfig{}, d.adversary_weight);
  EXPECT_EQ(v.latent, d.latent);
  EXPECT_EQ(v.hidden, d.hidden);
  EXPECT_EQ(v.beta, d.beta);
  EXPECT_EQ(v.adversary_weight, d.adversary_weight);
  EXPECT_EQ(v.adversary_steps, d.adversary_steps);
  EXPECT_EQ(v.adversary_objective, d.adversary_objective);
  EXPECT_EQ(v.disease_weight, d.disease_weight);
  EXPECT_EQ(v.epochs, d.epochs);
  EXPECT_EQ(v.batch_size, d.batch_size);
  EXPECT_EQ(v.lr, d.lr);
  EXPECT_EQ(v.seed, d.seed);
}

TEST(ComponentOptions, TheDefaultConfigGivesTheReadersAndTheApisDefaults) {
  const ExperimentConfig c;
  const auto m = dne::experiment::manifest_options(c);
  const dne::data::ManifestOptions md;
  EXPECT_EQ(m.sa_column, md.sa_column);
  EXPECT_EQ(m.limit_train, md.limit_train);
  EXPECT_EQ(m.limit_test, md.limit_test);
  const auto dec = dne::experiment::decode_options(c, 1);
  const dne::data::DecodeOptions dd;
  EXPECT_EQ(dec.image_size, dd.image_size);
  EXPECT_EQ(dec.resize, dd.resize);
  EXPECT_EQ(dec.threads, dd.threads);
  EXPECT_EQ(dec.max_pixels, dd.max_pixels);
  const auto a = dne::experiment::api_options(c, 0);
  const dne::fm::ApiOptions ad;
  EXPECT_EQ(a.budget_images, ad.budget_images);
  EXPECT_EQ(a.max_batch, ad.max_batch);
  EXPECT_EQ(a.latency_ms, ad.latency_ms);
  EXPECT_EQ(a.round_decimals, ad.round_decimals);
}

TEST(ComponentOptions, SetValuesReachTheirFields) {
  ExperimentConfig c;
  c.sweep.seed = 7;
  c.data.bias = 0.6;
  c.vae.hidden = "64, 16";
  c.vae.lr = 0.01;
  c.data.resize = "pad";
  c.data.limit_test = 30;
  c.api.latency_ms = 2.5;
  EXPECT_EQ(dne::experiment::phantom_options(c).seed, 7u);
  EXPECT_EQ(dne::experiment::phantom_options(c).bias, 0.6);
  const auto v = dne::experiment::vae_options(c, 0.0);
  EXPECT_EQ(v.hidden, (std::vector<std::int64_t>{64, 16}));
  EXPECT_EQ(v.lr, 0.01);
  EXPECT_EQ(v.adversary_weight, 0.0);  // the control's VAE
  EXPECT_EQ(v.seed, 7u);
  EXPECT_EQ(dne::experiment::decode_options(c, 3).resize, dne::data::ResizeMode::kPad);
  EXPECT_EQ(dne::experiment::decode_options(c, 3).threads, 3);
  EXPECT_EQ(dne::experiment::manifest_options(c).limit_test, 30);
  EXPECT_EQ(dne::experiment::api_options(c, 900).latency_ms, 2.5);
  EXPECT_EQ(dne::experiment::api_options(c, 900).budget_images, 900);
}

}  // namespace
