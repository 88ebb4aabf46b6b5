// Config-to-component option translation (experiment/component_options.hpp) and the one place
// defaults are written (config::defaults(), which every component's option struct starts from).
// Expected values are written out by hand: the documented defaults (docs/config.md,
// --help-config), and for the translation a config whose every field differs from its default.
#include <gtest/gtest.h>

#include "dne/api/inference_client.hpp"
#include "dne/config/config.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/fm/vit_encoder.hpp"
#include "dne/pretrain/mae.hpp"

namespace {

using dne::config::ExperimentConfig;

TEST(ComponentOptions, ComponentsStartFromTheDocumentedDefaults) {
  const dne::data::PhantomOptions p;
  EXPECT_EQ(p.image_size, 64);
  EXPECT_EQ(p.n_train, 2000);
  EXPECT_EQ(p.n_test, 1000);
  EXPECT_EQ(p.n_val, 0);
  EXPECT_EQ(p.bias, 0.9);
  EXPECT_EQ(p.marker_rate_a1, 0.7);
  EXPECT_EQ(p.marker_rate_a0, 0.3);
  EXPECT_EQ(p.severity_min, 0.15);
  EXPECT_EQ(p.noise_std, 0.02);
  EXPECT_EQ(p.seed, 0u);
  const dne::data::ManifestOptions m;
  EXPECT_EQ(m.sa_column, "sex");
  EXPECT_EQ(m.limit_train, 0);
  const dne::data::DecodeOptions d;
  EXPECT_EQ(d.image_size, 64);
  EXPECT_EQ(d.resize, dne::data::ResizeMode::kStretch);
  EXPECT_EQ(d.max_pixels, 50'000'000);
  const dne::vae::VaeOptions v;
  EXPECT_EQ(v.latent, 32);
  EXPECT_EQ(v.hidden, (std::vector<std::int64_t>{128}));
  EXPECT_EQ(v.beta, 1e-3);
  EXPECT_EQ(v.adversary_steps, 5);
  EXPECT_EQ(v.adversary_objective, "neg_loss");
  EXPECT_EQ(v.epochs, 50);
  EXPECT_EQ(v.batch_size, 128);
  const dne::fm::ApiOptions a;
  EXPECT_EQ(a.budget_images, 0);
  EXPECT_EQ(a.max_batch, 0);
  EXPECT_EQ(a.latency_ms, 0.0);
  EXPECT_EQ(a.round_decimals, -1);
  const dne::api::ClientOptions client;
  EXPECT_EQ(client.concurrency, 1);
  EXPECT_EQ(client.timeout_s, 30.0);
  EXPECT_EQ(client.retries, 4);
  EXPECT_FALSE(client.binary);
  const dne::fm::ViTArchitecture vit;
  EXPECT_EQ(vit.patch_size, 8);
  EXPECT_EQ(vit.width, 256);
  EXPECT_EQ(vit.depth, 4);
  EXPECT_EQ(vit.heads, 4);
  EXPECT_EQ(vit.mean, (std::vector<double>{0.5}));
  EXPECT_EQ(vit.std, (std::vector<double>{0.25}));
  const dne::pretrain::DecoderOptions dec;
  EXPECT_EQ(dec.width, 64);
  EXPECT_EQ(dec.depth, 2);
  EXPECT_EQ(dec.heads, 4);
}

TEST(ComponentOptions, TheDefaultsAreTheDefaultConfigsAndBuiltOnce) {
  const ExperimentConfig fresh;
  EXPECT_EQ(dne::config::defaults().canonical_text(), fresh.canonical_text());
  EXPECT_EQ(&dne::config::defaults(), &dne::config::defaults());
}

TEST(ComponentOptions, EveryPhantomFieldReachesItsOwnField) {
  ExperimentConfig c;
  c.data.image_size = 96;
  c.data.n_train = 11;
  c.data.n_test = 12;
  c.data.n_val = 13;
  c.data.prevalence = 0.31;
  c.data.bias = 0.61;
  c.data.breast_contrast = 0.41;
  c.data.marker_rate_a1 = 0.51;
  c.data.marker_rate_a0 = 0.21;
  c.data.severity_min = 0.11;
  c.data.severity_max = 0.91;
  c.data.noise_std = 0.03;
  c.data.age_effect = 0.71;
  c.data.age_bias = 0.81;
  c.sweep.seed = 7;
  const auto p = dne::experiment::phantom_options(c);
  EXPECT_EQ(p.image_size, 96);
  EXPECT_EQ(p.n_train, 11);
  EXPECT_EQ(p.n_test, 12);
  EXPECT_EQ(p.n_val, 13);
  EXPECT_EQ(p.prevalence, 0.31);
  EXPECT_EQ(p.bias, 0.61);
  EXPECT_EQ(p.breast_contrast, 0.41);
  EXPECT_EQ(p.marker_rate_a1, 0.51);
  EXPECT_EQ(p.marker_rate_a0, 0.21);
  EXPECT_EQ(p.severity_min, 0.11);
  EXPECT_EQ(p.severity_max, 0.91);
  EXPECT_EQ(p.noise_std, 0.03);
  EXPECT_EQ(p.age_effect, 0.71);
  EXPECT_EQ(p.age_bias, 0.81);
  EXPECT_EQ(p.seed, 7u);
}

TEST(ComponentOptions, EveryVaeFieldReachesItsOwnField) {
  ExperimentConfig c;
  c.vae.latent = 9;
  c.vae.hidden = "64, 16";
  c.vae.beta = 0.25;
  c.vae.adversary_steps = 3;
  c.vae.adversary_objective = "confusion";
  c.vae.disease_weight = 0.5;
  c.vae.epochs = 4;
  c.vae.batch_size = 33;
  c.vae.lr = 0.01;
  c.sweep.seed = 5;
  const auto v = dne::experiment::vae_options(c, 0.0);  // the control's VAE: no adversary
  EXPECT_EQ(v.latent, 9);
  EXPECT_EQ(v.hidden, (std::vector<std::int64_t>{64, 16}));
  EXPECT_EQ(v.beta, 0.25);
  EXPECT_EQ(v.adversary_weight, 0.0);
  EXPECT_EQ(v.adversary_steps, 3);
  EXPECT_EQ(v.adversary_objective, "confusion");
  EXPECT_EQ(v.disease_weight, 0.5);
  EXPECT_EQ(v.epochs, 4);
  EXPECT_EQ(v.batch_size, 33);
  EXPECT_EQ(v.lr, 0.01);
  EXPECT_EQ(v.seed, 5u);
  EXPECT_EQ(dne::experiment::vae_options(c, 2.5).adversary_weight, 2.5);
}

TEST(ComponentOptions, ReaderDecoderAndApiFieldsReachTheirOwnFields) {
  ExperimentConfig c;
  c.data.sa_column = "gender";
  c.data.limit_train = 20;
  c.data.limit_test = 30;
  c.data.image_size = 48;
  c.data.resize = "pad";
  c.data.max_pixels = 1000;
  c.api.max_batch = 16;
  c.api.latency_ms = 2.5;
  c.api.round_decimals = 3;
  const auto m = dne::experiment::manifest_options(c);
  EXPECT_EQ(m.sa_column, "gender");
  EXPECT_EQ(m.limit_train, 20);
  EXPECT_EQ(m.limit_test, 30);
  const auto d = dne::experiment::decode_options(c, 3);
  EXPECT_EQ(d.image_size, 48);
  EXPECT_EQ(d.resize, dne::data::ResizeMode::kPad);
  EXPECT_EQ(d.threads, 3);
  EXPECT_EQ(d.max_pixels, 1000);
  const auto a = dne::experiment::api_options(c, 900);
  EXPECT_EQ(a.budget_images, 900);
  EXPECT_EQ(a.max_batch, 16);
  EXPECT_EQ(a.latency_ms, 2.5);
  EXPECT_EQ(a.round_decimals, 3);
}

TEST(ComponentOptions, HiddenWidthsAreWholePositiveNumbers) {
  EXPECT_EQ(dne::vae::hidden_widths("256,128"), (std::vector<std::int64_t>{256, 128}));
  EXPECT_THROW(dne::vae::hidden_widths("0"), dne::ConfigError);
  EXPECT_THROW(dne::vae::hidden_widths("12.5"), dne::ConfigError);
  EXPECT_THROW(dne::vae::hidden_widths("a"), dne::ConfigError);
  EXPECT_THROW(dne::vae::hidden_widths("1e30"), dne::ConfigError);  // no cast of an out-of-range value
  EXPECT_THROW(dne::vae::hidden_widths("65537"), dne::ConfigError);
}

}  // namespace
