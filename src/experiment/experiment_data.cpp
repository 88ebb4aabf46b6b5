// Where an experiment's data come from, and what an experiment costs (see experiment.hpp).
#include <algorithm>
#include <filesystem>

#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"
#include "dne/data/embedding_file.hpp"
#include "dne/experiment/component_options.hpp"
#include "dne/experiment/experiment.hpp"
#include "dne/store/index_file.hpp"

namespace dne::experiment {

data::Dataset load_dataset(const config::ExperimentConfig& c, const std::string& output_dir) {
  if (c.data.source == "phantom") return data::make_phantom(phantom_options(c));
  if (c.data.source == "embeddings") {
    if (!c.data_hash.empty() && embeddings_hash(c) != c.data_hash)
      throw DataError(c.data.embeddings + ": the file changed since the run started (its content hash is not the one "
                      "in the experiment's id)");
    return data::read_embeddings(c.data.embeddings, c.data.embeddings_group);
  }
  // `dne run` decoded the images once, before the sweep, into the run's cache.
  if (!c.data_hash.empty()) {
    const auto cache = data::image_cache_path(output_dir, c.data_hash, c.data.image_size, c.data.resize);
    if (std::filesystem::is_regular_file(cache))
      return data::read_image_cache(cache, c.data_hash, c.data.image_size, c.data.resize);
  }
  return data::decode_manifest(data::read_manifest(c.data.manifest, manifest_options(c)), decode_options(c, 1));
}

data::Dataset load_dataset_streamed(const config::ExperimentConfig& c, const std::string& output_dir,
                                    std::shared_ptr<const data::ImageCacheMap>& cache) {
  cache.reset();
  if (c.data.source == "manifest" && !c.data_hash.empty()) {
    const auto path = data::image_cache_path(output_dir, c.data_hash, c.data.image_size, c.data.resize);
    if (std::filesystem::is_regular_file(path)) {
      cache = std::make_shared<const data::ImageCacheMap>(path, c.data_hash, c.data.image_size, c.data.resize);
      return cache->tables();
    }
  }
  return load_dataset(c, output_dir);
}

std::string embeddings_hash(const config::ExperimentConfig& c) {
  return hex16(fnv1a64(file_content_hash(c.data.embeddings) + "\n" +
                       data::find_embedding_group(c.data.embeddings, c.data.embeddings_group)));
}

std::string data_hash(const config::ExperimentConfig& c, const data::Manifest& manifest, int threads) {
  return data::data_content_hash(manifest, manifest_options(c),
                                 c.data.image_hash == "stat" ? FileFingerprint::kStat : FileFingerprint::kContent, threads);
}

torch::Tensor to_tensor(const data::ImageSet& set) {
  auto t = torch::from_blob(const_cast<float*>(set.pixels.data()),
                            {set.size(), 1, set.height, set.width}, torch::kFloat32);
  return t.clone();
}

std::string experiment_path(const std::string& dir, const std::string& id) {
  return (std::filesystem::path(dir) / store::experiment_file(id)).string();
}

double estimated_cost(const config::ExperimentConfig& c) {
  const bool rows_known = c.data.source != "phantom" && c.data_rows_train >= 0;
  const double n_train = static_cast<double>(rows_known ? c.data_rows_train : c.data.n_train);
  const double n_test = static_cast<double>(rows_known ? c.data_rows_test : c.data.n_test);
  const auto& method = config::method_info(c.dne.method);
  // clean + debiased, and the norm-matched control's pass for every noise experiment; the
  // embedding methods embed once (an embeddings file not at all)
  const double passes = method.kind == config::MethodKind::kReference ? 2.0 : method.kind == config::MethodKind::kEmbedding ? 1.0 : 3.0;
  const double embed = c.data.source == "embeddings" ? 0.0 : passes * (n_train + n_test);
  return std::max(embed + method.edit_cost(c, n_train), 1.0);  // the probes: no experiment costs nothing
}

double estimated_memory_bytes(const config::ExperimentConfig& c) {
  const bool manifest_rows = c.data.source == "manifest" && c.data_rows_train >= 0 && c.data_rows_test >= 0;
  if (c.data.source != "phantom" && !manifest_rows) return 0.0;
  const auto n_train = static_cast<double>(manifest_rows ? c.data_rows_train : c.data.n_train);
  const auto n_test = static_cast<double>(manifest_rows ? c.data_rows_test : c.data.n_test);
  const double images = n_train + n_test + (manifest_rows ? 0.0 : static_cast<double>(c.data.n_val));
  const double pixels = images * static_cast<double>(c.data.image_size) * static_cast<double>(c.data.image_size);
  const double in_memory = manifest_rows ? 0.0 : pixels + 4.0 * pixels;  // the phantom: 8-bit while drawn, float32
  const double embeddings = 3.0 * 4.0 * images * static_cast<double>(c.fm.embed_dim);  // clean, method, control
  return in_memory + embeddings;
}

}  // namespace dne::experiment
