// Config-to-component option translation (see component_options.hpp).
#include "dne/experiment/component_options.hpp"

namespace dne::experiment {

data::PhantomOptions phantom_options(const config::ExperimentConfig& c) {
  data::PhantomOptions p;
  p.image_size = static_cast<int>(c.data.image_size);
  p.n_train = static_cast<int>(c.data.n_train);
  p.n_test = static_cast<int>(c.data.n_test);
  p.n_val = static_cast<int>(c.data.n_val);
  p.bias = c.data.bias;
  p.prevalence = c.data.prevalence;
  p.breast_contrast = c.data.breast_contrast;
  p.marker_rate_a1 = c.data.marker_rate_a1;
  p.marker_rate_a0 = c.data.marker_rate_a0;
  p.severity_min = c.data.severity_min;
  p.severity_max = c.data.severity_max;
  p.noise_std = c.data.noise_std;
  p.age_effect = c.data.age_effect;
  p.age_bias = c.data.age_bias;
  p.seed = static_cast<std::uint64_t>(c.sweep.seed);
  return p;
}

data::ManifestOptions manifest_options(const config::ExperimentConfig& c) {
  data::ManifestOptions m;
  m.sa_column = c.data.sa_column;
  m.limit_train = c.data.limit_train;
  m.limit_test = c.data.limit_test;
  return m;
}

data::DecodeOptions decode_options(const config::ExperimentConfig& c, int threads) {
  data::DecodeOptions d;
  d.image_size = c.data.image_size;
  d.resize = data::parse_resize_mode(c.data.resize);
  d.threads = threads;
  d.max_pixels = c.data.max_pixels;
  return d;
}

vae::VaeOptions vae_options(const config::ExperimentConfig& c, double adversary_weight) {
  vae::VaeOptions o;
  o.latent = c.vae.latent;
  o.hidden = vae::hidden_widths(c.vae.hidden);
  o.beta = c.vae.beta;
  o.adversary_weight = adversary_weight;
  o.adversary_steps = c.vae.adversary_steps;
  o.adversary_objective = c.vae.adversary_objective;
  o.disease_weight = c.vae.disease_weight;
  o.epochs = c.vae.epochs;
  o.batch_size = c.vae.batch_size;
  o.lr = c.vae.lr;
  o.seed = static_cast<std::uint64_t>(c.sweep.seed);
  return o;
}

fm::ApiOptions api_options(const config::ExperimentConfig& c, std::int64_t budget_images) {
  fm::ApiOptions o;
  o.budget_images = budget_images;
  o.max_batch = c.api.max_batch;
  o.latency_ms = c.api.latency_ms;
  o.round_decimals = c.api.round_decimals;
  return o;
}

}  // namespace dne::experiment
