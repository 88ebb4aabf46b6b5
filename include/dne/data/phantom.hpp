// Deterministic synthetic chest X-ray "phantom" with a controllable spurious correlation.
//
// Each image is a frontal (PA) chest radiograph drawn from a few dozen random anatomical
// parameters: body outline, two lung fields, ribs, clavicles, spine, heart shadow, hilar vessels.
// The disease y = 1 is a pleural effusion (basal fluid opacity with a meniscus, blunting the
// costophrenic angle of one lung). The sensitive attribute a = 1 ("female") is made visible as
// breast soft-tissue shadows over the lower lateral lung fields, and both groups may carry a
// corner acquisition marker whose rate depends on a. In the train split a is correlated with y
// (`bias`); the test split is balanced. Image i of a split depends only on (seed, split, i): all of
// its randomness comes from dne::CounterStream(seed, kPhantom, split, i), so it is the same
// whatever n_train / n_test are. Every per-image draw is made unconditionally in a fixed order, so
// changing an option that only affects one layer (breast_contrast, prevalence, marker rates, bias)
// leaves the rest of that image (anatomy, noise) bit-identical. See docs/phantom.md.
#pragma once

#include <cstdint>
#include <vector>

#include "dne/config/config.hpp"
#include "dne/data/dataset.hpp"

namespace dne::data {

/// Options of the phantom generator (filled from the `data.*` config keys).
struct PhantomOptions {
  // Every default is the [data] key's (config::defaults(): written once, shown by --help-config).
  int image_size = static_cast<int>(config::defaults().data.image_size);  // H = W, in [32, 4096]
  int n_train = static_cast<int>(config::defaults().data.n_train);
  int n_test = static_cast<int>(config::defaults().data.n_test);
  int n_val = static_cast<int>(config::defaults().data.n_val);  // a validation split drawn like the test split (balanced); 0 = none
  double prevalence = config::defaults().data.prevalence;       // P(y = 1) in both splits
  double bias = config::defaults().data.bias;  // train: P(a=1 | y=1) = bias, P(a=1 | y=0) = 1 - bias; test: 0.5
  double breast_contrast = config::defaults().data.breast_contrast;  // scale of the breast soft-tissue shadow (a = 1 only); 0 disables
  double marker_rate_a1 = config::defaults().data.marker_rate_a1;    // P(acquisition corner marker | a = 1)
  double marker_rate_a0 = config::defaults().data.marker_rate_a0;    // P(acquisition corner marker | a = 0)
  double severity_min = config::defaults().data.severity_min;  // effusion severity ~ U[min, max], in [0, 1]
  double severity_max = config::defaults().data.severity_max;
  double noise_std = config::defaults().data.noise_std;  // additive Gaussian pixel noise (intensity units)
  // Age (a continuous attribute; recorded when age_effect > 0 or age_bias > 0): age ~ U[20, 90]
  // from its own stream (seed, kPhantomAge, split, index), so the other draws are untouched.
  double age_effect = config::defaults().data.age_effect;  // heart half-widths scale by 1 + age_effect * (age - 50) / 40 (0: invisible)
  double age_bias = config::defaults().data.age_bias;  // train: with this probability a diseased image takes the older of two
                                                       // draws and a healthy one the younger (test: never)
  std::uint64_t seed = static_cast<std::uint64_t>(config::defaults().sweep.seed);
};

/// Split numbers used as the `step` of the phantom's random stream.
constexpr int kTrainSplit = 0;
constexpr int kTestSplit = 1;
constexpr int kValSplit = 2;  // drawn like the test split (no bias), from its own streams

/// What was drawn for one phantom image (its ground truth; handy for tests and analysis).
struct PhantomTruth {
  int label = 0;              // y: 1 = pleural effusion
  int sa = 0;                 // a: 1 = breast shadow drawn (scaled by breast_contrast)
  double severity = 0.0;      // effusion severity (drawn for every image, used only if y = 1)
  int effusion_side = 0;      // -1 = image left (patient's right lung), +1 = image right
  bool marker = false;        // acquisition marker drawn
  char marker_letter = 'L';   // 'L' or 'R'
  bool marker_right = false;  // marker in the top-right (true) or top-left (false) corner
  double age = 0.0;           // years in [20, 90] (drawn for every image; see PhantomOptions)
};

/// Throws dne::ConfigError naming the option ("data.bias must be in [0, 1], got 1.5") if any
/// option is out of range or not finite.
void check_options(const PhantomOptions& options);

/// Renders image `index` of `split` (kTrainSplit or kTestSplit) into `out`, (S, S) row-major with
/// S = image_size, values in [0, 1]; bit-identical to image `index` of make_phantom's split.
/// Throws dne::ConfigError for bad options, std::out_of_range for a bad split or index.
PhantomTruth render_phantom_image(const PhantomOptions& options, int split, std::int64_t index,
                                  float* out);

/// Generates the whole data set: train (n_train images) and test (n_test images), each of size
/// (image_size, image_size), with sources "phantom:train:<i>" / "phantom:test:<i>", and the
/// images' ages when age_effect > 0 or age_bias > 0.
/// Throws dne::ConfigError for out-of-range options.
Dataset make_phantom(const PhantomOptions& options);

/// Where the phantom draws its cues, measured by rendering the first `images` test images with
/// and without each layer (every other pixel is bit-identical, see above): the mean absolute
/// contribution of the breast shadows (breast_contrast as given vs 0), of the corner marker
/// (marker rates 1 vs 0) and of the effusion (prevalence 1 vs 0; on the test split the attribute
/// does not depend on the label). A region is the pixels whose contribution is at least
/// `threshold` of its layer's peak; the SA region is the breast region united with the marker's.
/// Maps and masks are (S, S) row-major. Throws dne::ConfigError for bad options.
struct PhantomRegions {
  int size = 0;
  std::vector<float> breast, marker, effusion;                // mean |I_with - I_without|
  std::vector<std::uint8_t> sa_region, disease_region;        // 1 inside, 0 outside
};
PhantomRegions phantom_regions(const PhantomOptions& options, int images = 400, double threshold = 0.1);

}  // namespace dne::data
