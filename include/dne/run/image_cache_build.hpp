// The run's image caches made by every rank of the job (`dne run`, before the sweep).
//
// World rank 0 has read, checked and hashed each manifest (prepare_data); what is left is to
// decode each distinct (data, image_size, resize) whose cache file is missing. Every rank reads
// the manifest, takes the rows i with i % world_size == rank (an interleave, so large and small
// files spread evenly), and decodes them on cores / ranks-on-node threads; rank 0 makes the file
// (data::ImageCacheFile) and every rank writes its images into it at their offsets; the file is
// renamed when all are in. A row that cannot be decoded ends the job on every rank with one line
// naming the first such row in file order, whichever rank met it, and leaves no cache behind.
#pragma once

#include <string>
#include <vector>

#include "dne/run/process.hpp"
#include "dne/config/config.hpp"

namespace dne::run {

/// Makes every missing image cache of the manifest experiments in out_dir/cache (collective over
/// MPI_COMM_WORLD; each experiment's data_hash must be set). Rank 0 prints what it made unless
/// `quiet`, and a progress line every 10 s while decoding.
void build_image_caches(const std::vector<config::ExperimentConfig>& experiments, const std::string& out_dir,
                        const ProcessInfo& process, bool quiet);

}  // namespace dne::run
