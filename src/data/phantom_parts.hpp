// The phantom's internal part shared by phantom.cpp, which draws one image, and
// phantom_dataset.cpp, which draws many (see phantom.hpp). Internal to the data module.
#pragma once

#include <cstdint>

#include "dne/data/phantom.hpp"

namespace dne::data::phantom_detail {

// Image `index` of `split` with already-checked options.
PhantomTruth render_unchecked(const PhantomOptions& options, int split, std::int64_t index,
                              float* out);

}  // namespace dne::data::phantom_detail
