// Precomputed embeddings as a data source (data.source = "embeddings"), and the same layout
// written by output.save_embeddings, so that one run's embeddings are the next run's input.
//
// Layout (docs/datasets.md), inside a group G of an HDF5 file:
//   G/train/x      (N, D) float   one embedding per row
//   G/train/label  (N,)   0/1     disease y
//   G/train/sa     (N,)   0/1     the binary sensitive attribute
//   G/train/age    (N,)   float   optional: a continuous attribute (the VAE's age adversary)
//   G/test/...     the same (M rows, the same D); G/val/... optional, the same
// G is "/" for a hand-made file and "/embeddings" in a result file. The splits come back as
// ImageSets of rows of height 1 and width D (dataset.hpp), so validation carving, poisoning and
// checks are shared with images. No Torch here.
#pragma once

#include <string>

#include "dne/data/dataset.hpp"

namespace dne::store {
class H5Writer;
}

namespace dne::data {

/// The group of `path` that holds the splits: `group` when given, else "/" when the file has
/// /train/x, else "/embeddings" when it has /embeddings/train/x. DataError naming the file otherwise.
std::string find_embedding_group(const std::string& path, const std::string& group);

/// Reads the splits of group `group` (see find_embedding_group) of `path`. Throws DataError
/// "<path>: ..." naming the dataset for a missing split, a wrong shape or type, labels or
/// attributes other than 0/1, a non-finite value, or splits of different widths D.
Dataset read_embeddings(const std::string& path, const std::string& group);

/// Writes `rows` (height 1, width D) as `group`/x, label, sa and (if it has one) age.
void write_embedding_split(store::H5Writer& writer, const std::string& group, const ImageSet& rows);

}  // namespace dne::data
