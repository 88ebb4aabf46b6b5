// Config-to-component option translation, in one place: each component (the phantom generator,
// the manifest reader and decoder, the adversarial VAE, the query-only API) keeps its own
// options struct with its own defaults, and the experiment's resolved config is turned into
// them here, field by field. (fm::RemoteModel and fm::ViTArchitecture read config::ApiOptions
// and config::FmOptions themselves: the fm module is one layer above config and owns that
// mapping.)
#pragma once

#include "dne/config/config.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/vae/adversarial_vae.hpp"

namespace dne::experiment {

/// The phantom generator's options for a config's [data] section and seed.
data::PhantomOptions phantom_options(const config::ExperimentConfig& config);

/// The manifest row selection (data.sa_column, data.limit_*) of an experiment.
data::ManifestOptions manifest_options(const config::ExperimentConfig& config);

/// How an experiment's manifest images are decoded (data.image_size, data.resize) on `threads`.
data::DecodeOptions decode_options(const config::ExperimentConfig& config, int threads);

/// The model options of a config's [vae] section (seed: sweep.seeds), with this adversary weight
/// (vae.adversary_weight for the method, 0 for its control).
vae::VaeOptions vae_options(const config::ExperimentConfig& config, double adversary_weight);

/// The query-only API's options (api.max_batch, api.latency_ms, api.round_decimals) with a
/// per-rank budget of `budget_images` images (0: unlimited).
fm::ApiOptions api_options(const config::ExperimentConfig& config, std::int64_t budget_images);

}  // namespace dne::experiment
