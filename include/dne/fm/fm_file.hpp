// The FM file: a ViT's weights, architecture and provenance in one HDF5 file (docs/fm-file.md).
//
// `dne pretrain` writes it (write_fm_file), scripts/import_vit.py writes the same layout from a
// timm / MAE checkpoint, and `fm.kind = "vit"` with `fm.weights = FILE` loads it (load_vit). A
// missing, truncated or foreign file, a missing or mis-shaped weight, a non-finite value, or an
// architecture other than the configured one is a ModelError naming the file and the first
// difference. The content hash (FNV-1a-64 over the architecture and every weight) identifies
// the weights in experiment ids and provenance.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dne/fm/vit_encoder.hpp"

namespace dne::fm {

/// Where the weights came from: string, integer and real attributes of /provenance, and the
/// pretraining loss curve (written to /pretrain/loss when not empty).
struct FmProvenance {
  std::map<std::string, std::string> text;
  std::map<std::string, std::int64_t> integers;
  std::map<std::string, double> reals;
  std::vector<double> loss;
};

/// A loaded FM file.
struct FmFile {
  std::string path;
  ViTArchitecture architecture;
  VisionTransformer vit{nullptr};  // weights loaded, not frozen
  std::string hash;                // 16 hex digits
  std::map<std::string, std::string> provenance;  // every /provenance attribute as text
};

/// 16 hex digits of FNV-1a-64 over the architecture's canonical text and, in name order, each
/// parameter's name, shape and float32 bytes.
std::string content_hash(VisionTransformerImpl& vit);

/// Read and validate an FM file (ModelError naming `path` on any problem).
FmFile read_fm_file(const std::string& path);

/// ModelError naming `path` and the first fm.* key whose configured value differs from the file.
void check_architecture(const ViTArchitecture& in_file, const ViTArchitecture& configured, const std::string& path);

/// Write `vit` with `provenance` to `path` atomically (temporary name, then rename).
void write_fm_file(const std::string& path, VisionTransformerImpl& vit, const FmProvenance& provenance);

/// Check the configured fm.weights once, before a sweep: read the file, compare its architecture
/// with the fm.* keys at `image_size`, and return its content hash (ModelError otherwise).
std::string verify_weights(const config::FmOptions& options, std::int64_t image_size);

/// The configured ViT: random weights from `seed` when fm.weights is empty, else the file's
/// weights after checking its architecture against the fm.* keys.
std::shared_ptr<ViTEncoder> load_vit(const config::FmOptions& options, std::int64_t image_size, std::uint64_t seed);

}  // namespace dne::fm
