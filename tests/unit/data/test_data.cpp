// Unit tests for dne::data: the phantom generator, image I/O, resizing, montages and manifests.
//
// Expected values are hand-checkable properties, never snapshots of the generator's own output:
// bit-identity under the determinism contract, label rates against the configured probabilities
// (binomial tolerances in the comments), paired comparisons that switch one layer on (the effusion
// only brightens the lung base of one side and leaves the rest bit-identical; the breast shadow
// never darkens a pixel), hand-computed bilinear values, and PNG files built byte by byte by an
// encoder in this file (stored-deflate zlib + CRC32), independent of stb. Bad manifests must throw
// dne::DataError naming "manifest.csv:<line>".
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <limits>
#include <string>
#include <vector>

#include "dne/core/errors.hpp"
#include "dne/core/files.hpp"
#include "dne/core/random.hpp"
#include "dne/core/system_memory.hpp"
#include "test_support.hpp"
#include "dne/data/dataset.hpp"
#include "dne/data/image_io.hpp"
#include "dne/data/image_cache.hpp"
#include "dne/data/manifest.hpp"
#include "dne/data/phantom.hpp"

namespace dd = dne::data;
namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------------------------------------
// helpers

using dne_test::expect_error;
using TempDir = dne_test::TempDirTest;

// Minimal PNG encoder, independent of stb: zlib stream of stored (uncompressed) deflate blocks.
std::uint32_t crc32(const std::vector<std::uint8_t>& data, std::size_t begin) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = begin; i < data.size(); ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

void put_chunk(std::vector<std::uint8_t>& png, const char* type,
               const std::vector<std::uint8_t>& data) {
  put32(png, static_cast<std::uint32_t>(data.size()));
  std::vector<std::uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put32(png, crc32(body, 0));
}

// rows: raw scanline bytes without filter bytes (bytes_per_row each).
void write_png_raw(const std::string& path, int width, int height, int bit_depth, int color_type,
                   const std::vector<std::uint8_t>& pixels) {
  const std::size_t bytes_per_row = pixels.size() / static_cast<std::size_t>(height);
  std::vector<std::uint8_t> raw;
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), pixels.begin() + static_cast<std::ptrdiff_t>(y * bytes_per_row),
               pixels.begin() + static_cast<std::ptrdiff_t>((y + 1) * bytes_per_row));
  }
  std::vector<std::uint8_t> z = {0x78, 0x01};
  std::size_t pos = 0;
  do {
    const std::size_t len = std::min<std::size_t>(65535, raw.size() - pos);
    const bool last = pos + len == raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(static_cast<std::uint8_t>(len & 0xFF));
    z.push_back(static_cast<std::uint8_t>(len >> 8));
    z.push_back(static_cast<std::uint8_t>(~len & 0xFF));
    z.push_back(static_cast<std::uint8_t>((~len >> 8) & 0xFF));
    z.insert(z.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos),
             raw.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  } while (pos < raw.size());
  std::uint32_t a = 1, b = 0;
  for (std::uint8_t c : raw) {
    a = (a + c) % 65521u;
    b = (b + a) % 65521u;
  }
  put32(z, (b << 16) | a);

  std::vector<std::uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<std::uint8_t> ihdr;
  put32(ihdr, static_cast<std::uint32_t>(width));
  put32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back(static_cast<std::uint8_t>(bit_depth));
  ihdr.push_back(static_cast<std::uint8_t>(color_type));
  ihdr.push_back(0);
  ihdr.push_back(0);
  ihdr.push_back(0);
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", z);
  put_chunk(png, "IEND", {});
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
}

dd::PhantomOptions small_options() {
  dd::PhantomOptions o;
  o.n_train = 40;
  o.n_test = 30;
  o.seed = 7;
  return o;
}

bool same_bits(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// Mean of rows [y0, y1] x columns [x0, x1] (inclusive) of a 64 x 64 image.
double box_mean(const float* im, int y0, int y1, int x0, int x1) {
  double s = 0.0;
  for (int y = y0; y <= y1; ++y) {
    for (int x = x0; x <= x1; ++x) s += im[y * 64 + x];
  }
  return s / ((y1 - y0 + 1) * (x1 - x0 + 1));
}

// Lower lateral lung fields at 64 x 64, chosen from the geometry in docs/phantom.md: rows 40..47
// (v = 0.63..0.74, above the costophrenic angles at v ~ 0.74..0.80), columns 11..21 and 42..52
// (15..31% of the width from the midline: lateral half of each lung).
double lung_base_left(const float* im) { return box_mean(im, 40, 47, 11, 21); }
double lung_base_right(const float* im) { return box_mean(im, 40, 47, 42, 52); }
double lung_base(const float* im) { return 0.5 * (lung_base_left(im) + lung_base_right(im)); }

}  // namespace

// ------------------------------------------------------------------------------------------------
// phantom: determinism

TEST(Phantom, ShapesSourcesAndRange) {
  const auto o = small_options();
  const dd::Dataset ds = dd::make_phantom(o);
  EXPECT_EQ(ds.train.size(), 40);
  EXPECT_EQ(ds.test.size(), 30);
  EXPECT_EQ(ds.train.height, 64);
  EXPECT_EQ(ds.train.width, 64);
  EXPECT_EQ(ds.train.pixels.size(), 40u * 64u * 64u);
  EXPECT_EQ(ds.train.source[17], "phantom:train:17");
  EXPECT_EQ(ds.test.source[0], "phantom:test:0");
  for (float v : ds.train.pixels) {
    ASSERT_GE(v, 0.f);
    ASSERT_LE(v, 1.f);
  }
  EXPECT_NO_THROW(dd::validate(ds.train, "train"));
  EXPECT_NO_THROW(dd::validate(ds.test, "test"));
}

TEST(Phantom, SameSeedGivesIdenticalBits) {
  const auto o = small_options();
  const dd::Dataset a = dd::make_phantom(o), b = dd::make_phantom(o);
  ASSERT_EQ(a.train.pixels.size(), b.train.pixels.size());
  EXPECT_TRUE(same_bits(a.train.pixels.data(), b.train.pixels.data(), a.train.pixels.size()));
  EXPECT_TRUE(same_bits(a.test.pixels.data(), b.test.pixels.data(), a.test.pixels.size()));
  EXPECT_EQ(a.train.label, b.train.label);
  EXPECT_EQ(a.train.sa, b.train.sa);
  EXPECT_EQ(a.test.label, b.test.label);
  EXPECT_EQ(a.test.sa, b.test.sa);
}

TEST(Phantom, ImageIDoesNotDependOnSplitSizes) {
  auto o = small_options();
  const dd::Dataset big = dd::make_phantom(o);
  o.n_train = 20;
  o.n_test = 3;
  const dd::Dataset small = dd::make_phantom(o);
  const std::size_t hw = 64 * 64;
  EXPECT_TRUE(same_bits(big.train.pixels.data(), small.train.pixels.data(), 20 * hw));
  EXPECT_TRUE(same_bits(big.test.pixels.data(), small.test.pixels.data(), 3 * hw));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(big.train.label[static_cast<std::size_t>(i)],
              small.train.label[static_cast<std::size_t>(i)]);
    EXPECT_EQ(big.train.sa[static_cast<std::size_t>(i)],
              small.train.sa[static_cast<std::size_t>(i)]);
  }
  // and a single image rendered on its own is the same as image 17 of the whole set
  std::vector<float> one(hw);
  const dd::PhantomTruth t = dd::render_phantom_image(o, dd::kTrainSplit, 17, one.data());
  EXPECT_TRUE(same_bits(one.data(), big.train.image(17), hw));
  EXPECT_EQ(t.label, big.train.label[17]);
  EXPECT_EQ(t.sa, big.train.sa[17]);
}

TEST(Phantom, ThreadedGenerationMatchesSingleImages) {
  // 710 images of 64 x 64 are enough for make_phantom to use several threads on a multi-core
  // machine; every image must still equal the one rendered on its own.
  dd::PhantomOptions o;
  o.n_train = 700;
  o.n_test = 10;
  o.seed = 5;
  const dd::Dataset ds = dd::make_phantom(o);
  std::vector<float> one(64 * 64);
  for (int i : {0, 349, 350, 351, 699}) {
    const dd::PhantomTruth t = dd::render_phantom_image(o, dd::kTrainSplit, i, one.data());
    EXPECT_TRUE(same_bits(one.data(), ds.train.image(i), one.size())) << "train " << i;
    EXPECT_EQ(t.label, ds.train.label[static_cast<std::size_t>(i)]);
    EXPECT_EQ(ds.train.source[static_cast<std::size_t>(i)], "phantom:train:" + std::to_string(i));
  }
  dd::render_phantom_image(o, dd::kTestSplit, 9, one.data());
  EXPECT_TRUE(same_bits(one.data(), ds.test.image(9), one.size()));
}

TEST(Phantom, DifferentSeedsAndSplitsDiffer) {
  auto o = small_options();
  const dd::Dataset a = dd::make_phantom(o);
  o.seed = 8;
  const dd::Dataset b = dd::make_phantom(o);
  const std::size_t hw = 64 * 64;
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(same_bits(a.train.image(i), b.train.image(i), hw)) << "image " << i;
  }
  // train image i and test image i come from different streams
  EXPECT_FALSE(same_bits(a.train.image(0), a.test.image(0), hw));
}

// ------------------------------------------------------------------------------------------------
// phantom: label model

TEST(Phantom, TrainBiasAndBalancedTestRealised) {
  dd::PhantomOptions o;
  o.image_size = 32;
  o.n_train = 4000;
  o.n_test = 4000;
  o.seed = 3;
  const dd::Dataset ds = dd::make_phantom(o);
  auto rates = [](const dd::ImageSet& s, double* prev, double* a_y1, double* a_y0) {
    int n1 = 0, n0 = 0, a1 = 0, a0 = 0;
    for (std::size_t i = 0; i < s.label.size(); ++i) {
      if (s.label[i] == 1) {
        ++n1;
        a1 += s.sa[i];
      } else {
        ++n0;
        a0 += s.sa[i];
      }
    }
    *prev = static_cast<double>(n1) / static_cast<double>(s.label.size());
    *a_y1 = static_cast<double>(a1) / n1;
    *a_y0 = static_cast<double>(a0) / n0;
  };
  double prev, a_y1, a_y0;
  // binomial sd with ~2000 per class: sqrt(0.9 * 0.1 / 2000) = 0.0067, sqrt(0.25 / 2000) = 0.011,
  // prevalence sqrt(0.25 / 4000) = 0.008; tolerances are 4-5 sd
  rates(ds.train, &prev, &a_y1, &a_y0);
  EXPECT_NEAR(prev, 0.5, 0.04);
  EXPECT_NEAR(a_y1, 0.9, 0.03);
  EXPECT_NEAR(a_y0, 0.1, 0.03);
  rates(ds.test, &prev, &a_y1, &a_y0);
  EXPECT_NEAR(prev, 0.5, 0.04);
  EXPECT_NEAR(a_y1, 0.5, 0.05);
  EXPECT_NEAR(a_y0, 0.5, 0.05);
  EXPECT_EQ(ds.val.size(), 0);  // data.n_val = 0: no validation split

  // data.n_val: a validation split drawn like the test split, from its own streams; train and
  // test are bit for bit what they were without it.
  o.n_val = 4000;
  const dd::Dataset with_val = dd::make_phantom(o);
  EXPECT_EQ(with_val.train.pixels, ds.train.pixels);
  EXPECT_EQ(with_val.test.pixels, ds.test.pixels);
  EXPECT_EQ(with_val.test.label, ds.test.label);
  ASSERT_EQ(with_val.val.size(), 4000);
  EXPECT_NE(with_val.val.pixels, with_val.test.pixels);
  EXPECT_EQ(with_val.val.source[7], "phantom:val:7");
  rates(with_val.val, &prev, &a_y1, &a_y0);
  EXPECT_NEAR(prev, 0.5, 0.04);
  EXPECT_NEAR(a_y1, 0.5, 0.05);
  EXPECT_NEAR(a_y0, 0.5, 0.05);
  std::vector<float> one(32 * 32);
  dd::render_phantom_image(o, dd::kValSplit, 7, one.data());
  EXPECT_TRUE(std::equal(one.begin(), one.end(), with_val.val.pixels.begin() + 7 * 32 * 32));
}

TEST(Phantom, ExtremeRatesAreExact) {
  dd::PhantomOptions o;
  o.image_size = 32;
  o.n_train = 200;
  o.n_test = 10;
  o.prevalence = 1.0;
  o.bias = 1.0;
  const dd::Dataset ds = dd::make_phantom(o);
  for (std::size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(ds.train.label[i], 1);
    EXPECT_EQ(ds.train.sa[i], 1);  // P(a=1 | y=1) = bias = 1
  }
  o.prevalence = 0.0;
  const dd::Dataset ds0 = dd::make_phantom(o);
  for (std::size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(ds0.train.label[i], 0);
    EXPECT_EQ(ds0.train.sa[i], 0);  // P(a=1 | y=0) = 1 - bias = 0
  }
}

// ------------------------------------------------------------------------------------------------
// phantom: what the layers draw


/// Default options, 600 test images: mean lung_base() of images whose `field` (label or sa) is 1
/// minus that of images whose field is 0.
double unpaired_lung_base_gap(std::vector<int> dd::ImageSet::*field) {
  dd::PhantomOptions d = small_options();
  d.n_test = 600;
  const dd::Dataset ds = dd::make_phantom(d);
  double m[2] = {0, 0};
  int n[2] = {0, 0};
  for (int i = 0; i < 600; ++i) {
    const int group = (ds.test.*field)[static_cast<std::size_t>(i)];
    m[group] += lung_base(ds.test.image(i));
    ++n[group];
  }
  return m[1] / n[1] - m[0] / n[0];
}

TEST(Phantom, AnatomyOrderOfBrightness) {
  // Noise-free images: background (outside the body) < lung fields < mediastinum (spine).
  dd::PhantomOptions o = small_options();
  o.noise_std = 0.0;
  o.marker_rate_a0 = o.marker_rate_a1 = 0.0;
  const dd::Dataset ds = dd::make_phantom(o);
  for (int i = 0; i < ds.test.size(); ++i) {
    const float* im = ds.test.image(i);
    const double background = box_mean(im, 0, 2, 0, 2);  // top-left corner, above the shoulders
    const double lungs = 0.5 * (box_mean(im, 22, 28, 14, 18) + box_mean(im, 22, 28, 45, 49));
    const double spine = box_mean(im, 22, 28, 31, 32);  // upper mediastinum on the midline
    EXPECT_LT(background, 0.1) << "image " << i;
    EXPECT_GT(lungs, background + 0.05) << "image " << i;
    EXPECT_GT(spine, lungs + 0.2) << "image " << i;
  }
}

TEST(Phantom, EffusionBrightensTheLungBaseOfOneSideOnly) {
  // Paired: prevalence 0 vs 1 changes only the label draw (all other draws are unconditional), so
  // image i is the same anatomy with and without effusion. Test split: a does not depend on y.
  dd::PhantomOptions o = small_options();
  o.n_test = 300;
  o.prevalence = 0.0;
  const dd::Dataset healthy = dd::make_phantom(o);
  o.prevalence = 1.0;
  const dd::Dataset sick = dd::make_phantom(o);
  double sum = 0.0;
  int severe = 0;
  for (int i = 0; i < 300; ++i) {
    const float* h = healthy.test.image(i);
    const float* s = sick.test.image(i);
    std::vector<float> tmp(64 * 64);
    const dd::PhantomTruth t = dd::render_phantom_image(o, dd::kTestSplit, i, tmp.data());
    ASSERT_EQ(t.label, 1);
    ASSERT_EQ(healthy.test.sa[static_cast<std::size_t>(i)],
              sick.test.sa[static_cast<std::size_t>(i)]);
    // the top quarter (rows 0..15, v < 0.25) is far above any fluid level: bit-identical
    EXPECT_TRUE(same_bits(h, s, 16 * 64)) << "image " << i;
    // the other side of the chest is untouched: columns 0..25 (u < 0.41, left of the midline) or
    // 38..63 (u > 0.59)
    const int x0 = t.effusion_side > 0 ? 0 : 38, x1 = t.effusion_side > 0 ? 25 : 63;
    for (int y = 0; y < 64; ++y) {
      for (int x = x0; x <= x1; ++x)
        ASSERT_EQ(h[y * 64 + x], s[y * 64 + x]) << i << " " << y << " " << x;
    }
    const double gain = t.effusion_side > 0 ? lung_base_right(s) - lung_base_right(h)
                                            : lung_base_left(s) - lung_base_left(h);
    sum += gain;
    // severity >= 0.5 fills at least ~12% of the lung height plus the meniscus: the whole
    // region's air (density ~0.2-0.35) is largely replaced by fluid
    if (t.severity >= 0.5) {
      ++severe;
      EXPECT_GT(gain, 0.05) << "image " << i << " severity " << t.severity;
    }
    EXPECT_GT(gain, 0.0) << "image " << i << " severity " << t.severity;
  }
  EXPECT_GT(severe, 100);
  EXPECT_GT(sum / 300, 0.08);

  // Unpaired, default options: y = 1 images are brighter at the lung bases on average.
  EXPECT_GT(unpaired_lung_base_gap(&dd::ImageSet::label), 0.03);
}

TEST(Phantom, BreastShadowBrightensLowerLateralLungsForA1Only) {
  // Paired: breast_contrast 0 vs 1 (all draws unconditional, so only the breast layer changes).
  dd::PhantomOptions o = small_options();
  o.n_test = 300;
  o.breast_contrast = 0.0;
  const dd::Dataset off = dd::make_phantom(o);
  o.breast_contrast = 1.0;
  const dd::Dataset on = dd::make_phantom(o);
  const std::size_t hw = 64 * 64;
  int n_a1 = 0;
  for (int i = 0; i < 300; ++i) {
    const float* a = off.test.image(i);
    const float* b = on.test.image(i);
    if (on.test.sa[static_cast<std::size_t>(i)] == 0) {
      EXPECT_TRUE(same_bits(a, b, hw)) << "a = 0 image " << i << " changed";
      continue;
    }
    ++n_a1;
    // breast tissue only adds density: no pixel gets darker; rows 0..18 (v < 0.3) are above it
    for (std::size_t p = 0; p < hw; ++p) ASSERT_GE(b[p], a[p]) << "image " << i << " pixel " << p;
    EXPECT_TRUE(same_bits(a, b, 19 * 64)) << "image " << i;
    // smallest shadow: strength 0.05 * 0.85, >= 35% of it at the top of the shadow
    EXPECT_GT(lung_base(b) - lung_base(a), 0.01) << "image " << i;
  }
  EXPECT_GT(n_a1, 100);

  // Unpaired, default options, balanced test split: a = 1 brighter at the lower lateral lungs.
  EXPECT_GT(unpaired_lung_base_gap(&dd::ImageSet::sa), 0.02);
}

TEST(Phantom, AgeIsDrawnApartAndWidensOnlyTheHeart) {
  // age_bias alone records an age but leaves every pixel as it was (its own stream).
  dd::PhantomOptions o = small_options();
  o.n_train = 400;
  const dd::Dataset plain = dd::make_phantom(o);
  EXPECT_TRUE(plain.train.age.empty());
  o.age_bias = 1.0;
  const dd::Dataset biased = dd::make_phantom(o);
  ASSERT_EQ(biased.train.age.size(), 400u);
  ASSERT_EQ(biased.test.age.size(), 30u);
  EXPECT_TRUE(same_bits(plain.train.pixels.data(), biased.train.pixels.data(), plain.train.pixels.size()));
  EXPECT_EQ(plain.train.label, biased.train.label);
  // ages in [20, 90]; with age_bias = 1 every diseased train image takes the older of two uniform
  // draws (mean 20 + 70 * 2/3 = 66.7) and every healthy one the younger (mean 20 + 70 / 3 = 43.3)
  double sum[2] = {0, 0};
  int n[2] = {0, 0};
  for (std::size_t i = 0; i < 400; ++i) {
    ASSERT_GE(biased.train.age[i], 20.f);
    ASSERT_LE(biased.train.age[i], 90.f);
    sum[biased.train.label[i]] += biased.train.age[i];
    ++n[biased.train.label[i]];
  }
  EXPECT_NEAR(sum[1] / n[1], 66.7, 4.0);
  EXPECT_NEAR(sum[0] / n[0], 43.3, 4.0);
  // age_effect: the same ages, a wider heart for the old (more dense pixels in the lower middle,
  // rows 34..46, columns 22..46) and a narrower one for the young; the lung apices are untouched
  o.age_effect = 0.3;
  const dd::Dataset visible = dd::make_phantom(o);
  EXPECT_EQ(visible.train.age, biased.train.age);
  for (int i = 0; i < 400; ++i) {
    const double age = visible.train.age[static_cast<std::size_t>(i)];
    const float* a = biased.train.image(i);
    const float* b = visible.train.image(i);
    EXPECT_TRUE(same_bits(a, b, 12 * 64)) << "image " << i;  // rows 0..11: above the heart
    const double change = box_mean(b, 34, 46, 22, 46) - box_mean(a, 34, 46, 22, 46);
    if (age > 60) {
      EXPECT_GT(change, 0.0) << "image " << i << " age " << age;
    }
    if (age < 40) {
      EXPECT_LT(change, 0.0) << "image " << i << " age " << age;
    }
  }
}

TEST(Phantom, MarkerIsABrightCornerGlyphWithGroupRates) {
  dd::PhantomOptions o;
  o.noise_std = 0.0;
  o.n_train = 1;
  o.n_test = 1;
  std::vector<float> im(64 * 64);
  for (int i = 0; i < 200; ++i) {
    const dd::PhantomTruth t = dd::render_phantom_image(o, dd::kTestSplit, i, im.data());
    // glyph: 5 x 7 font pixels, 2..4 pixels from the top and the side edge -> within rows 2..10,
    // columns 2..8 (left) or 55..61 (right), always covering rows 4..6. Rows 0..6 of those
    // columns lie above the shoulders (body top >= v 0.065 at the midline, lower laterally), so
    // they are dark unless a marker is there.
    auto corner_max = [&](int y1, int x0) {
      float m = 0.f;
      for (int y = 0; y <= y1; ++y) {
        for (int x = x0; x <= x0 + 6; ++x)
          m = std::max(m, im[static_cast<std::size_t>(y * 64 + x)]);
      }
      return m;
    };
    const int marked_x0 = t.marker_right ? 55 : 2, other_x0 = t.marker_right ? 2 : 55;
    if (t.marker) {
      EXPECT_GE(corner_max(10, marked_x0), 0.85f) << "image " << i;
    } else {
      EXPECT_LT(corner_max(6, marked_x0), 0.2f) << "image " << i;
    }
    EXPECT_LT(corner_max(6, other_x0), 0.2f) << "image " << i;
  }
  // Rates from the test split's ground truth (the draws do not depend on image_size, so a small
  // size is enough). Default rates 0.7 / 0.3; ~1000 per group: sd sqrt(0.21 / 1000) = 0.0145,
  // tolerance ~4 sd.
  o.image_size = 32;
  o.n_test = 2000;
  std::vector<float> small(32 * 32);
  int n[2] = {0, 0}, marked[2] = {0, 0};
  for (int i = 0; i < 2000; ++i) {
    const dd::PhantomTruth t = dd::render_phantom_image(o, dd::kTestSplit, i, small.data());
    ++n[t.sa];
    marked[t.sa] += t.marker ? 1 : 0;
  }
  EXPECT_NEAR(static_cast<double>(marked[1]) / n[1], 0.7, 0.06);
  EXPECT_NEAR(static_cast<double>(marked[0]) / n[0], 0.3, 0.06);
}

TEST(Phantom, RegionsAreWhereTheLayersAreDrawn) {
  dd::PhantomOptions o;  // 64 x 64
  const dd::PhantomRegions r = dd::phantom_regions(o, 200);
  ASSERT_EQ(r.size, 64);
  ASSERT_EQ(r.sa_region.size(), 64u * 64u);
  // Marker glyphs live in rows 2..10 at columns 2..8 or 55..61 (see the marker test); the breast
  // shadow starts below row 18 (v >= 0.3); the effusion fills the lung bases (lower half).
  int marker_pixels = 0, breast_pixels = 0, effusion_pixels = 0, effusion_low = 0;
  const float marker_peak = *std::max_element(r.marker.begin(), r.marker.end());
  ASSERT_GT(marker_peak, 0.f);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      const std::size_t p = static_cast<std::size_t>(y * 64 + x);
      if (r.marker[p] >= 0.1f * marker_peak) {
        ++marker_pixels;
        EXPECT_TRUE(y >= 2 && y <= 10 && ((x >= 2 && x <= 8) || (x >= 55 && x <= 61))) << y << "," << x;
        EXPECT_EQ(r.sa_region[p], 1);
      }
      if (y < 19) {
        EXPECT_EQ(r.breast[p], 0.f) << y << "," << x;
      }
      breast_pixels += r.breast[p] > 0.f;
      if (r.disease_region[p]) {
        ++effusion_pixels;
        effusion_low += y >= 32;
      }
    }
  EXPECT_GT(marker_pixels, 20);
  EXPECT_GT(breast_pixels, 200);
  EXPECT_GT(effusion_pixels, 100);
  EXPECT_GT(effusion_low, 0.9 * effusion_pixels);
  // Without breast shadows the SA region is the marker's alone.
  o.breast_contrast = 0.0;
  const dd::PhantomRegions m = dd::phantom_regions(o, 200);
  EXPECT_EQ(std::count(m.sa_region.begin(), m.sa_region.end(), 1), marker_pixels);
}

TEST(Validation, CarvesEveryCellStratifiedDisjointAndDeterministic) {
  dd::PhantomOptions o = small_options();
  o.n_train = 300;
  dd::Dataset ds = dd::make_phantom(o);
  const dd::ImageSet original = ds.train;
  int cells[4] = {0, 0, 0, 0};
  for (std::int64_t i = 0; i < original.size(); ++i) ++cells[2 * original.sa[i] + original.label[i]];
  dd::carve_validation(ds, 0.2, 7);
  int val_cells[4] = {0, 0, 0, 0};
  for (std::int64_t i = 0; i < ds.val.size(); ++i) ++val_cells[2 * ds.val.sa[i] + ds.val.label[i]];
  for (int c = 0; c < 4; ++c) EXPECT_EQ(val_cells[c], std::llround(0.2 * cells[c])) << "cell " << c;
  EXPECT_EQ(ds.train.size() + ds.val.size(), original.size());
  // Disjoint, together the original, each split in the original order, pixels carried along.
  std::vector<std::string> merged = ds.train.source;
  merged.insert(merged.end(), ds.val.source.begin(), ds.val.source.end());
  std::vector<std::string> sorted_merged = merged, sorted_original = original.source;
  std::sort(sorted_merged.begin(), sorted_merged.end());
  std::sort(sorted_original.begin(), sorted_original.end());
  EXPECT_EQ(sorted_merged, sorted_original);
  for (const auto* set : {&ds.train, &ds.val}) {
    std::int64_t last = -1;
    for (std::int64_t i = 0; i < set->size(); ++i) {
      const auto at = std::find(original.source.begin(), original.source.end(), set->source[i]) - original.source.begin();
      EXPECT_GT(at, last);
      last = at;
      EXPECT_TRUE(same_bits(set->image(i), original.image(at), 64 * 64));
    }
  }
  dd::Dataset again = dd::make_phantom(o);
  dd::carve_validation(again, 0.2, 7);
  EXPECT_EQ(again.val.source, ds.val.source);
  dd::Dataset other = dd::make_phantom(o);
  dd::carve_validation(other, 0.2, 8);
  EXPECT_NE(other.val.source, ds.val.source);
  dd::Dataset none = dd::make_phantom(o);
  dd::carve_validation(none, 0.0, 7);
  EXPECT_EQ(none.val.size(), 0);
  EXPECT_EQ(none.train.source, original.source);
}

TEST(Validation, RefusesToEmptyAClassOfTheTrainingSplit) {
  dd::PhantomOptions o = small_options();
  o.n_train = 40;
  dd::Dataset ds = dd::make_phantom(o);
  // Keep one diseased image only: round(0.5 * 1) = 1 moves it, and training loses label 1.
  std::vector<std::int64_t> keep;
  bool kept_one = false;
  for (std::int64_t i = 0; i < ds.train.size(); ++i)
    if (ds.train.label[i] == 0 || !kept_one) {
      kept_one |= ds.train.label[i] == 1;
      keep.push_back(i);
    }
  ds.train = dd::subset(ds.train, keep);
  try {
    dd::carve_validation(ds, 0.5, 1);
    FAIL() << "expected DataError";
  } catch (const dne::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("without label 1"), std::string::npos) << e.what();
  }
}

TEST(Resample, SubsampleKeepsEveryCellsShareBootstrapDrawsWithinCells) {
  dd::PhantomOptions o = small_options();
  o.n_train = 300;
  const dd::Dataset base = dd::make_phantom(o);
  const dd::ImageSet& original = base.train;
  std::array<std::int64_t, 4> cells{};
  for (std::int64_t i = 0; i < original.size(); ++i) ++cells[static_cast<std::size_t>(2 * original.sa[i] + original.label[i])];
  const auto cell_of = [](const dd::ImageSet& set, std::int64_t i) { return 2 * set.sa[i] + set.label[i]; };
  const auto row_in_original = [&](const std::string& source) {
    return std::find(original.source.begin(), original.source.end(), source) - original.source.begin();
  };

  // Subsample: round(0.7 n_c) distinct rows of every cell, in the original order, pixels carried.
  dd::Dataset sub = base;
  dd::resample_training(sub, "subsample", 0.7, 3);
  std::array<std::int64_t, 4> sub_cells{};
  std::int64_t last = -1;
  for (std::int64_t i = 0; i < sub.train.size(); ++i) {
    ++sub_cells[static_cast<std::size_t>(cell_of(sub.train, i))];
    const auto at = row_in_original(sub.train.source[i]);
    EXPECT_GT(at, last);  // ascending, hence distinct
    last = at;
    EXPECT_TRUE(same_bits(sub.train.image(i), original.image(at), 64 * 64));
  }
  for (std::size_t c = 0; c < 4; ++c) EXPECT_EQ(sub_cells[c], std::llround(0.7 * static_cast<double>(cells[c]))) << c;
  EXPECT_EQ(sub.test.source, base.test.source);  // the test split is never touched

  // Bootstrap: n_c draws per cell, each from its own cell, repeats allowed (and present).
  dd::Dataset boot = base;
  dd::resample_training(boot, "bootstrap", 0.7, 3);
  EXPECT_EQ(boot.train.size(), original.size());
  std::array<std::int64_t, 4> boot_cells{};
  std::set<std::string> distinct;
  for (std::int64_t i = 0; i < boot.train.size(); ++i) {
    ++boot_cells[static_cast<std::size_t>(cell_of(boot.train, i))];
    const auto at = row_in_original(boot.train.source[i]);
    EXPECT_EQ(cell_of(original, at), cell_of(boot.train, i));
    distinct.insert(boot.train.source[i]);
  }
  EXPECT_EQ(boot_cells, cells);
  // About 1 - 1/e = 63% distinct rows: far from all, far from few.
  EXPECT_GT(distinct.size(), 0.5 * static_cast<double>(original.size()));
  EXPECT_LT(distinct.size(), 0.75 * static_cast<double>(original.size()));

  // Deterministic per seed, different across seeds; "none" changes nothing.
  for (const char* how : {"subsample", "bootstrap"}) {
    dd::Dataset again = base, other = base;
    dd::resample_training(again, how, 0.7, 3);
    dd::resample_training(other, how, 0.7, 4);
    EXPECT_EQ(again.train.source, (std::string(how) == "subsample" ? sub : boot).train.source) << how;
    EXPECT_NE(other.train.source, again.train.source) << how;
  }
  dd::Dataset none = base;
  dd::resample_training(none, "none", 0.7, 3);
  EXPECT_EQ(none.train.source, original.source);
  EXPECT_THROW(dd::resample_training(none, "jackknife", 0.7, 3), std::invalid_argument);
}

TEST(Phantom, ScalesToLargerImages) {
  dd::PhantomOptions o;
  o.image_size = 128;
  o.n_train = 3;
  o.n_test = 2;
  const dd::Dataset ds = dd::make_phantom(o);
  EXPECT_EQ(ds.train.height, 128);
  EXPECT_EQ(ds.train.pixels.size(), 3u * 128u * 128u);
  // the 64 x 64 rendering of the same image matches a 2x downsample closely (same anatomy)
  o.image_size = 64;
  o.noise_std = 0.0;
  std::vector<float> small(64 * 64), big(128 * 128);
  dd::render_phantom_image(o, dd::kTrainSplit, 1, small.data());
  o.image_size = 128;
  dd::render_phantom_image(o, dd::kTrainSplit, 1, big.data());
  const auto down = dd::resize_bilinear(big.data(), 128, 128, 64, 64);
  double err = 0.0;
  for (std::size_t p = 0; p < small.size(); ++p) err += std::fabs(down[p] - small[p]);
  EXPECT_LT(err / static_cast<double>(small.size()), 0.03);
}

TEST(Phantom, AgeOptionsAreChecked) {
  auto o = small_options();
  o.age_effect = 0.6;
  EXPECT_THROW(dd::make_phantom(o), dne::ConfigError);
  o.age_effect = 0.0;
  o.age_bias = -0.1;
  EXPECT_THROW(dd::make_phantom(o), dne::ConfigError);
}

TEST(Phantom, OutOfRangeOptionsNameTheOption) {
  auto check = [](void (*edit)(dd::PhantomOptions&), const std::string& name) {
    dd::PhantomOptions o;
    edit(o);
    expect_error<dne::ConfigError>([&] { dd::make_phantom(o); }, {name});
  };
  check([](dd::PhantomOptions& o) { o.image_size = 16; }, "data.image_size");
  check([](dd::PhantomOptions& o) { o.n_train = 0; }, "data.n_train");
  check([](dd::PhantomOptions& o) { o.n_test = -1; }, "data.n_test");
  check([](dd::PhantomOptions& o) { o.prevalence = 1.5; }, "data.prevalence");
  check([](dd::PhantomOptions& o) { o.bias = -0.1; }, "data.bias");
  check([](dd::PhantomOptions& o) { o.bias = std::nan(""); }, "data.bias");
  check([](dd::PhantomOptions& o) { o.breast_contrast = -1.0; }, "data.breast_contrast");
  check([](dd::PhantomOptions& o) { o.marker_rate_a1 = 2.0; }, "data.marker_rate_a1");
  check([](dd::PhantomOptions& o) { o.marker_rate_a0 = -2.0; }, "data.marker_rate_a0");
  check(
      [](dd::PhantomOptions& o) {
        o.severity_min = 0.8;
        o.severity_max = 0.2;
      },
      "data.severity_min");
  check([](dd::PhantomOptions& o) { o.noise_std = -0.01; }, "data.noise_std");
}

// ------------------------------------------------------------------------------------------------
// validate

TEST(Validate, RejectsInconsistentSets) {
  dd::ImageSet s;
  s.height = 2;
  s.width = 2;
  s.pixels.assign(8, 0.5f);
  s.label = {0, 1};
  s.sa = {1, 0};
  s.source = {"a", "b"};
  EXPECT_NO_THROW(dd::validate(s, "set"));
  dd::ImageSet bad = s;
  bad.pixels.pop_back();
  expect_error<dne::DataError>([&] { dd::validate(bad, "myset"); }, {"myset", "pixels"});
  bad = s;
  bad.label[1] = 2;
  expect_error<dne::DataError>([&] { dd::validate(bad, "myset"); },
                               {"myset", "image 1", "label 2"});
  bad = s;
  bad.sa.push_back(0);
  expect_error<dne::DataError>([&] { dd::validate(bad, "myset"); }, {"sensitive"});
  bad = s;
  bad.pixels[6] = std::numeric_limits<float>::quiet_NaN();
  expect_error<dne::DataError>([&] { dd::validate(bad, "myset"); }, {"image 1", "non-finite"});
  EXPECT_THROW(s.image(2), std::out_of_range);
}

// ------------------------------------------------------------------------------------------------
// image I/O

class ImageIo : public TempDir {};

TEST_F(ImageIo, PngRoundTripWithinHalfAStep) {
  std::vector<float> im(7 * 5);
  for (std::size_t i = 0; i < im.size(); ++i) im[i] = static_cast<float>(i) / 34.f;  // 0..1
  dd::write_grayscale_png(path("a.png"), im.data(), 7, 5);
  std::int64_t h = 0, w = 0;
  const auto back = dd::read_grayscale_image(path("a.png"), h, w);
  ASSERT_EQ(h, 7);
  ASSERT_EQ(w, 5);
  for (std::size_t i = 0; i < im.size(); ++i) EXPECT_NEAR(back[i], im[i], 0.5 / 255 + 1e-6);
}

TEST_F(ImageIo, WriteClampsToUnitRange) {
  const std::vector<float> im = {-0.5f, 1.5f, std::numeric_limits<float>::quiet_NaN(), 0.5f};
  dd::write_grayscale_png(path("c.png"), im.data(), 2, 2);
  std::int64_t h = 0, w = 0;
  const auto back = dd::read_grayscale_image(path("c.png"), h, w);
  EXPECT_EQ(back[0], 0.f);
  EXPECT_EQ(back[1], 1.f);
  EXPECT_EQ(back[2], 0.f);
  EXPECT_NEAR(back[3], 128.f / 255.f, 1e-6);  // round(0.5 * 255) = 128
}

TEST_F(ImageIo, Reads16BitGrayscale) {
  // 2 x 2 16-bit big-endian samples 0, 65535, 32768, 1000
  const std::vector<std::uint8_t> px = {0x00, 0x00, 0xFF, 0xFF, 0x80, 0x00, 0x03, 0xE8};
  write_png_raw(path("g16.png"), 2, 2, 16, 0, px);
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_grayscale_image(path("g16.png"), h, w);
  ASSERT_EQ(h, 2);
  ASSERT_EQ(w, 2);
  EXPECT_NEAR(im[0], 0.0, 1e-7);
  EXPECT_NEAR(im[1], 1.0, 1e-7);
  EXPECT_NEAR(im[2], 32768.0 / 65535.0, 1e-6);
  EXPECT_NEAR(im[3], 1000.0 / 65535.0, 1e-6);  // finer than any 8-bit step
}

TEST_F(ImageIo, ConvertsRgbToLuminance) {
  // 4 x 1 RGB: red, green, blue, white; luminance 0.299 R + 0.587 G + 0.114 B (stb's integer
  // version is within 1/255)
  const std::vector<std::uint8_t> px = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
  write_png_raw(path("rgb.png"), 4, 1, 8, 2, px);
  std::int64_t h = 0, w = 0;
  const auto im = dd::read_grayscale_image(path("rgb.png"), h, w);
  ASSERT_EQ(h, 1);
  ASSERT_EQ(w, 4);
  EXPECT_NEAR(im[0], 0.299, 1.5 / 255);
  EXPECT_NEAR(im[1], 0.587, 1.5 / 255);
  EXPECT_NEAR(im[2], 0.114, 1.5 / 255);
  EXPECT_NEAR(im[3], 1.0, 1.5 / 255);
}

TEST_F(ImageIo, ReadErrorsNameThePath) {
  std::int64_t h = 0, w = 0;
  expect_error<dne::DataError>([&] { dd::read_grayscale_image(path("missing.png"), h, w); },
                               {"missing.png"});
  write_text("garbage.png", "this is not an image at all");
  expect_error<dne::DataError>([&] { dd::read_grayscale_image(path("garbage.png"), h, w); },
                               {"garbage.png", "decode"});
  write_text("empty.png", "");
  expect_error<dne::DataError>([&] { dd::read_grayscale_image(path("empty.png"), h, w); },
                               {"empty.png"});
}

TEST_F(ImageIo, WriteToMissingDirectoryThrowsStoreError) {
  const std::vector<float> im(4, 0.5f);
  expect_error<dne::StoreError>(
      [&] { dd::write_grayscale_png(path("no/such/dir/a.png"), im.data(), 2, 2); }, {"a.png"});
}

TEST(Resize, ConstantStaysConstant) {
  const std::vector<float> c(7 * 5, 0.37f);
  for (auto [oh, ow] : std::vector<std::pair<int, int>>{{13, 3}, {2, 11}, {64, 64}, {1, 1}}) {
    const auto r = dd::resize_bilinear(c.data(), 7, 5, oh, ow);
    ASSERT_EQ(r.size(), static_cast<std::size_t>(oh * ow));
    for (float v : r) EXPECT_NEAR(v, 0.37f, 1e-6f);
  }
}

TEST(Resize, TwoByTwoToFourByFourByHand) {
  // in = [[0, 1], [2, 3]] = 2 * row + col, which bilinear interpolation reproduces exactly.
  // Output centre i maps to source (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to
  // [0, 1]: a = {0, 0.25, 0.75, 1}, so out[r][c] = 2 * a[r] + a[c].
  const std::vector<float> in = {0.f, 1.f, 2.f, 3.f};
  const auto out = dd::resize_bilinear(in.data(), 2, 2, 4, 4);
  const float expected[4][4] = {{0.00f, 0.25f, 0.75f, 1.00f},
                                {0.50f, 0.75f, 1.25f, 1.50f},
                                {1.50f, 1.75f, 2.25f, 2.50f},
                                {2.00f, 2.25f, 2.75f, 3.00f}};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(out[static_cast<std::size_t>(r * 4 + c)], expected[r][c], 1e-6f);
  }
}

TEST(Resize, SameSizeIsIdentityAndShrinkingAverages) {
  const std::vector<float> in = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  EXPECT_EQ(dd::resize_bilinear(in.data(), 2, 3, 2, 3), in);
  // 1 x 8 stripes 0,1,0,1,... shrunk to 1 x 4: interior output 1 is centred at source 3.0 with
  // triangle half-width 2: sources 1..4 weigh 0.25, 0.75, 0.75, 0.25 -> (0.25 + 0.25) / 2 = 0.5
  // (a point sampler would return 0 or 1)
  const std::vector<float> stripes = {0, 1, 0, 1, 0, 1, 0, 1};
  const auto out = dd::resize_bilinear(stripes.data(), 1, 8, 1, 4);
  EXPECT_NEAR(out[1], 0.5f, 1e-6f);
  EXPECT_NEAR(out[2], 0.5f, 1e-6f);
  expect_error<dne::DataError>([&] { dd::resize_bilinear(in.data(), 2, 3, 0, 3); }, {"resize"});
}

TEST_F(ImageIo, MontageLayoutByHand) {
  // three 2 x 3 images with values 0.2, 0.4, 0.6; 2 columns, scale 2 -> tiles 4 x 6,
  // canvas (2 * 4 + 2) x (2 * 6 + 2) = 10 x 14, white 2-pixel separators, empty 4th cell black
  dd::ImageSet s;
  s.height = 2;
  s.width = 3;
  s.label = {0, 1, 0};
  s.sa = {0, 0, 1};
  s.source = {"a", "b", "c"};
  for (float v : {0.2f, 0.4f, 0.6f}) s.pixels.insert(s.pixels.end(), 6, v);
  dd::write_montage(path("m.png"), s, {0, 1, 2}, 2, 2);
  std::int64_t h = 0, w = 0;
  const auto m = dd::read_grayscale_image(path("m.png"), h, w);
  ASSERT_EQ(h, 10);
  ASSERT_EQ(w, 14);
  auto at = [&](int y, int x) { return m[static_cast<std::size_t>(y * 14 + x)]; };
  EXPECT_NEAR(at(0, 0), 0.2f, 0.5f / 255);
  EXPECT_NEAR(at(3, 5), 0.2f, 0.5f / 255);
  EXPECT_EQ(at(0, 6), 1.f);  // vertical separator columns 6, 7
  EXPECT_EQ(at(9, 7), 1.f);
  EXPECT_NEAR(at(0, 8), 0.4f, 0.5f / 255);
  EXPECT_EQ(at(4, 0), 1.f);  // horizontal separator rows 4, 5
  EXPECT_NEAR(at(6, 0), 0.6f, 0.5f / 255);
  EXPECT_EQ(at(6, 8), 0.f);  // unused cell
  expect_error<dne::DataError>([&] { dd::write_montage(path("x.png"), s, {3}, 2, 2); },
                               {"index 3"});
  expect_error<dne::DataError>([&] { dd::write_montage(path("x.png"), s, {}, 2, 2); }, {"x.png"});
}

// ------------------------------------------------------------------------------------------------
// manifests

class Manifest : public TempDir {
 protected:
  // A valid 16 x 16 PNG at `rel` (relative to the test directory): `value` everywhere but the
  // bottom-right pixel, 2/255 brighter (manifests refuse images below 16 x 16 and constant ones;
  // that pixel is outside the taps of the top-left pixel at every size the tests resize to).
  void good_png(const std::string& rel, float value = 0.5f) {
    std::vector<float> im(256, value);
    im.back() = value < 0.9f ? value + 2.0f / 255 : value - 2.0f / 255;
    dd::write_grayscale_png(path(rel), im.data(), 16, 16);
  }
};

TEST_F(Manifest, PhantomRoundTrip) {
  dd::PhantomOptions o;
  o.image_size = 32;
  o.n_train = 6;
  o.n_test = 5;
  o.seed = 11;
  const dd::Dataset ds = dd::make_phantom(o);
  const std::string out = path("ph");
  dd::write_phantom(ds, out);
  EXPECT_TRUE(fs::exists(out + "/manifest.csv"));
  EXPECT_FALSE(fs::exists(out + "/manifest.csv.tmp"));
  EXPECT_TRUE(fs::exists(out + "/montage.png"));
  EXPECT_TRUE(fs::exists(out + "/train/000005.png"));
  EXPECT_TRUE(fs::exists(out + "/test/000004.png"));
  {
    std::ifstream in(out + "/manifest.csv");
    std::string header, first;
    std::getline(in, header);
    std::getline(in, first);
    EXPECT_EQ(header, "path,split,sex,label");
    EXPECT_EQ(first, "train/000000.png,train," + std::to_string(ds.train.sa[0]) + "," +
                         std::to_string(ds.train.label[0]));
  }
  const dd::Dataset back = dd::load_manifest(out + "/manifest.csv", 32);
  for (const auto* pair : {&ds.train, &ds.test}) {
    const dd::ImageSet& a = *pair;
    const dd::ImageSet& b = pair == &ds.train ? back.train : back.test;
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(a.label, b.label);
    EXPECT_EQ(a.sa, b.sa);
    ASSERT_EQ(a.pixels.size(), b.pixels.size());
    for (std::size_t p = 0; p < a.pixels.size(); ++p) {
      ASSERT_NEAR(a.pixels[p], b.pixels[p], 0.5 / 255 + 1e-6) << p;
    }
  }
  EXPECT_NE(back.test.source[2].find("test/000002.png"), std::string::npos);

  // loading at another size resizes every image
  const dd::Dataset big = dd::load_manifest(out + "/manifest.csv", 48);
  EXPECT_EQ(big.train.height, 48);
  EXPECT_EQ(big.train.pixels.size(), 6u * 48u * 48u);
}

TEST_F(Manifest, AcceptsSexLettersQuotesCrlfBlankLinesAndAbsolutePaths) {
  fs::create_directories(dir_ / "img dir");
  good_png("img dir/a.png", 0.2f);
  good_png("b.png", 0.4f);
  good_png("c,d.png", 0.6f);
  write_text("manifest.csv",
             "\xEF\xBB\xBFpath,split,sex,label\r\n"
             "img dir/a.png,train,F,1\r\n"
             "\r\n"
             "\"c,d.png\",train,M,0\r\n" +
                 path("b.png") + ",test,m,1\r\n");
  const dd::Dataset ds = dd::load_manifest(path("manifest.csv"), 4);
  ASSERT_EQ(ds.train.size(), 2);
  ASSERT_EQ(ds.test.size(), 1);
  EXPECT_EQ(ds.train.sa, (std::vector<int>{1, 0}));
  EXPECT_EQ(ds.train.label, (std::vector<int>{1, 0}));
  EXPECT_EQ(ds.test.sa, (std::vector<int>{0}));
  EXPECT_NEAR(ds.train.pixels[0], 0.2f, 0.5f / 255);
  EXPECT_NEAR(ds.train.pixels[16], 0.6f, 0.5f / 255);
  EXPECT_NEAR(ds.test.pixels[0], 0.4f, 0.5f / 255);
}

TEST_F(Manifest, AnyColumnOrderExtraColumnsValRowsAndAnotherAttributeColumn) {
  good_png("a.png", 0.2f);
  good_png("b.png", 0.4f);
  good_png("c.png", 0.6f);
  good_png("d.png", 0.8f);
  // the importer's layout, columns shuffled, plus an extra attribute column
  write_text("m.csv",
             "label,view,path,patient,sex,age,split,old\n"
             "1,PA,a.png,p1,1,71,train,1\n"
             "0,AP,b.png,p2,,35,train,0\n"
             "1,PA,c.png,p3,0,64,val,1\n"
             "0,PA,a.png,p4,1,50,train,1\n"
             "1,AP,d.png,p5,0,20,test,0\n");
  dd::ManifestOptions o;
  o.sa_column = "old";
  const auto m = dd::read_manifest(path("m.csv"), o);
  ASSERT_EQ(m.rows.size(), 5u);
  EXPECT_EQ(m.rows_in_file, 5);
  EXPECT_EQ(m.rows[2].split, dd::Split::kVal);
  EXPECT_EQ(m.rows[1].line, 3);
  dd::DecodeOptions d;
  d.image_size = 4;
  const auto ds = dd::decode_manifest(m, d);
  EXPECT_EQ(ds.train.sa, (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(ds.train.label, (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(ds.val.size(), 1);
  EXPECT_NEAR(ds.val.pixels[0], 0.6f, 0.5f / 255);
  EXPECT_EQ(ds.test.sa, (std::vector<int>{0}));
  // with data.sa_column = sex, the empty sex of line 3 is a bad value naming the line
  expect_error<dne::DataError>([&] { dd::read_manifest(path("m.csv"), dd::ManifestOptions{}); }, {"m.csv:3:", "bad sex ''"});
  // the column must exist: named in the header error
  o.sa_column = "gender";
  expect_error<dne::DataError>([&] { dd::read_manifest(path("m.csv"), o); }, {"m.csv:1:", "gender"});
  // data.val_fraction on top of val rows is refused
  dd::Dataset again = ds;
  expect_error<dne::DataError>([&] { dd::carve_validation(again, 0.1, 0); }, {"already has a validation split"});
}

TEST_F(Manifest, DecodingDoesNotDependOnTheThreadCountAndTheFirstBadRowIsReported) {
  std::string csv = "path,split,sex,label\n";
  for (int i = 0; i < 24; ++i) {
    const std::string name = "i" + std::to_string(i) + ".png";
    std::vector<float> im(18 * 30);
    for (std::size_t k = 0; k < im.size(); ++k) im[k] = static_cast<float>((k * 7 + static_cast<std::size_t>(i) * 3) % 11) / 10.f;
    dd::write_grayscale_png(path(name), im.data(), 18, 30);
    csv += name + "," + (i % 4 == 3 ? "test" : "train") + "," + std::to_string(i % 2) + "," + std::to_string((i / 2) % 2) + "\n";
  }
  write_text("m.csv", csv);
  const auto m = dd::read_manifest(path("m.csv"), dd::ManifestOptions{});
  dd::DecodeOptions d;
  d.image_size = 8;
  d.resize = dd::ResizeMode::kCrop;
  const auto one = dd::decode_manifest(m, d);
  d.threads = 5;
  const auto five = dd::decode_manifest(m, d);
  EXPECT_EQ(one.train.pixels, five.train.pixels);
  EXPECT_EQ(one.test.pixels, five.test.pixels);
  EXPECT_EQ(one.train.source, five.train.source);
  // the same as decoding one file by hand
  std::int64_t h = 0, w = 0;
  const auto px = dd::read_grayscale_image(path("i1.png"), h, w);
  const auto want = dd::fit_square(px.data(), h, w, 8, dd::ResizeMode::kCrop);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), one.train.pixels.begin() + 64));
  // two undecodable rows: the first in file order is reported, whatever the threads
  write_text("i5.png", "not an image");
  write_text("i9.png", "not an image either");
  for (const int threads : {1, 3, 8}) {
    d.threads = threads;
    expect_error<dne::DataError>([&] { dd::decode_manifest(m, d); }, {"m.csv:7:", "i5.png"});
  }
}

TEST(Stratified, ProportionalCountsByHand) {
  // sizes 10, 20, 30, 40 of 100, total 25: exact 2.5, 5, 7.5, 10 -> floors 2, 5, 7, 10 (24); the
  // remaining one goes to the largest remainder, the lower cell on a tie (cell 0).
  EXPECT_EQ(dd::proportional_counts({10, 20, 30, 40}, 25), (std::array<std::int64_t, 4>{3, 5, 7, 10}));
  // 3 of 3, 3, 3, 1 (n = 10): exact 0.9, 0.9, 0.9, 0.3 -> floors 0; remainders give cells 0, 1, 2
  EXPECT_EQ(dd::proportional_counts({3, 3, 3, 1}, 3), (std::array<std::int64_t, 4>{1, 1, 1, 0}));
  EXPECT_EQ(dd::proportional_counts({3, 3, 3, 1}, 50), (std::array<std::int64_t, 4>{3, 3, 3, 1}));
  const std::vector<int> sa = {0, 0, 1, 1, 0, 1, 0, 1}, label = {0, 1, 0, 1, 0, 1, 1, 0};
  EXPECT_EQ(dd::cell_sizes(sa, label), (std::array<std::int64_t, 4>{2, 2, 2, 2}));
  const auto pick = dd::stratified_sample(sa, label, {1, 1, 1, 1}, 0, 100);
  ASSERT_EQ(pick.size(), 4u);
  std::array<int, 4> seen{};
  for (const auto i : pick) ++seen[static_cast<std::size_t>(2 * sa[static_cast<std::size_t>(i)] + label[static_cast<std::size_t>(i)])];
  EXPECT_EQ(seen, (std::array<int, 4>{1, 1, 1, 1}));
  EXPECT_TRUE(std::is_sorted(pick.begin(), pick.end()));
  EXPECT_EQ(pick, dd::stratified_sample(sa, label, {1, 1, 1, 1}, 0, 100));
}

TEST_F(Manifest, ImageCacheRoundTripIsExactAndKeyedByHashAndPreprocessing) {
  good_png("a.png", 0.2f);
  good_png("b.png", 0.4f);
  good_png("c.png", 0.6f);
  good_png("d.png", 0.8f);
  write_text("m.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nc.png,test,0,1\nd.png,val,1,0\n");
  dd::DecodeOptions d;
  d.image_size = 4;
  const auto ds = dd::decode_manifest(dd::read_manifest(path("m.csv"), dd::ManifestOptions{}), d);
  const auto cache = dd::image_cache_path(dir_.string(), "abc", 4, "stretch");
  EXPECT_NE(cache, dd::image_cache_path(dir_.string(), "abd", 4, "stretch"));
  EXPECT_NE(cache, dd::image_cache_path(dir_.string(), "abc", 8, "stretch"));
  EXPECT_NE(cache, dd::image_cache_path(dir_.string(), "abc", 4, "crop"));
  dd::write_image_cache(cache, ds, "abc", 4, "stretch", 8);
  const auto back = dd::read_image_cache(cache, "abc", 4, "stretch");
  // Resized pixels are averages, off the 1/255 grid: each comes back as round(255 v) / 255.
  ASSERT_EQ(back.train.pixels.size(), ds.train.pixels.size());
  for (std::size_t i = 0; i < ds.train.pixels.size(); ++i) {
    EXPECT_EQ(back.train.pixels[i], static_cast<float>(std::floor(static_cast<double>(ds.train.pixels[i]) * 255.0 + 0.5)) / 255.0f);
    EXPECT_LE(std::abs(back.train.pixels[i] - ds.train.pixels[i]), 0.5f / 255 + 1e-7f);
  }
  for (std::size_t i = 0; i < ds.val.pixels.size(); ++i)
    EXPECT_LE(std::abs(back.val.pixels[i] - ds.val.pixels[i]), 0.5f / 255 + 1e-7f);
  EXPECT_EQ(back.test.label, ds.test.label);
  EXPECT_EQ(back.train.sa, ds.train.sa);
  EXPECT_EQ(back.train.source, ds.train.source);
  EXPECT_THROW(dd::read_image_cache(cache, "abd", 4, "stretch"), dne::StoreError);
  EXPECT_THROW(dd::read_image_cache(cache + ".none", "abc", 4, "stretch"), dne::StoreError);
  // A file of the old layout (no format attribute) is never read as a cache.
  {
    dne::store::H5Writer w(path("old.h5"));
    w.attribute("/", "data_hash", std::string("abc"));
    w.commit();
  }
  EXPECT_THROW(dd::read_image_cache(path("old.h5"), "abc", 4, "stretch"), dne::StoreError);
}

TEST_F(Manifest, ImageCacheMapReadsInPlaceTouchesOnlyWhatIsReadAndRefusesATruncatedFile) {
  // 64 train + 16 test images of 64 x 64, 8-bit: 4 KiB each, 320 KiB of samples.
  dd::Dataset ds;
  for (dd::ImageSet* set : {&ds.train, &ds.test}) {
    const int n = set == &ds.train ? 64 : 16;
    set->height = set->width = 64;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < 64 * 64; ++j) set->pixels.push_back(static_cast<float>((i * 7 + j) % 256) / 255.0f);
      set->label.push_back(i % 2);
      set->sa.push_back((i / 2) % 2);
      set->source.push_back("im" + std::to_string(i));
    }
  }
  const auto cache = path("map.h5");
  dd::write_image_cache(cache, ds, "h", 64, "stretch", 8);
  {
    const dd::ImageCacheMap map(cache, "h", 64, "stretch");
    EXPECT_EQ(map.bits(), 8);
    EXPECT_EQ(map.rows(dd::Split::kTrain), 64);
    EXPECT_EQ(map.rows(dd::Split::kVal), 0);
    EXPECT_EQ(map.tables().test.source.at(3), "im3");
    EXPECT_EQ(dne::mapping_residency(cache).mappings, 1);
    EXPECT_LT(dne::mapping_residency(cache).rss, 64.0 * 1024);  // nothing read yet (readahead aside)
    std::vector<float> image(64 * 64);
    for (std::int64_t i = 0; i < 64; ++i) {
      map.read(dd::Split::kTrain, i, image.data());
      ASSERT_EQ(0, std::memcmp(image.data(), ds.train.image(i), image.size() * sizeof(float))) << i;  // k / 255 exactly
    }
    const auto touched = dne::mapping_residency(cache);
    EXPECT_GE(touched.rss, 64.0 * 4096);  // every train image's pages
    EXPECT_NEAR(touched.private_bytes, touched.rss, 1.0);  // the only process that maps it
    EXPECT_THROW(map.read(dd::Split::kTest, 16, image.data()), std::out_of_range);
  }
  EXPECT_EQ(dne::mapping_residency(cache).mappings, 0);  // unmapped with the object
  std::filesystem::resize_file(cache, std::filesystem::file_size(cache) - 4096);
  EXPECT_THROW(dd::ImageCacheMap(cache, "h", 64, "stretch"), dne::StoreError);
}

TEST(ImageCacheSamples, QuantizeRoundsHalvesUpAndClamps) {
  // q = round(v * M), M = 2^bits - 1, halves up; read back as q / M.
  EXPECT_EQ(dd::quantize_pixel(0.5f, 8), 128);         // 127.5 -> 128
  EXPECT_EQ(dd::quantize_pixel(0.5f, 16), 32768);      // 32767.5 -> 32768
  EXPECT_EQ(dd::quantize_pixel(51.0f / 255, 8), 51);   // on the grid: exact
  EXPECT_EQ(dd::quantize_pixel(0.1f, 8), 26);          // 25.5000004 -> 26
  EXPECT_EQ(dd::quantize_pixel(0.0019f, 8), 0);        // 0.4845 -> 0
  EXPECT_EQ(dd::quantize_pixel(-0.2f, 8), 0);
  EXPECT_EQ(dd::quantize_pixel(1.7f, 16), 65535);
  EXPECT_EQ(dd::quantize_pixel(std::numeric_limits<float>::quiet_NaN(), 8), 0);
  EXPECT_EQ(dd::dequantize_pixel(128, 8), 128.0f / 255.0f);
  EXPECT_EQ(dd::dequantize_pixel(65535, 16), 1.0f);
  EXPECT_THROW(dd::quantize_pixel(0.5f, 12), dne::StoreError);
}

TEST_F(Manifest, ImageCacheStoresUnresizedEightBitImagesExactlyAndSixteenBitOnesInUint16) {
  good_png("a.png", 0.2f);
  good_png("b.png", 0.4f);
  good_png("c.png", 0.6f);
  write_text("m.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nc.png,test,0,1\n");
  const auto manifest = dd::read_manifest(path("m.csv"), dd::ManifestOptions{});
  EXPECT_EQ(dd::manifest_sample_bits(manifest, {0, 1, 2}, 2), 8);
  dd::DecodeOptions d;
  d.image_size = 16;  // the files' own size: no resampling, pixels k / 255
  const auto ds = dd::decode_manifest(manifest, d);
  const auto cache = path("c8.h5");
  dd::write_image_cache(cache, ds, "h", 16, "stretch", 8);
  const auto back = dd::read_image_cache(cache, "h", 16, "stretch");
  EXPECT_EQ(back.train.pixels, ds.train.pixels);
  EXPECT_EQ(back.test.pixels, ds.test.pixels);
  EXPECT_EQ(dne::store::H5Reader(cache).int_attribute("/", "pixel_bits"), 8);

  // One 16-bit PNG makes the whole cache 16-bit: 1000 / 65535 is no 8-bit value.
  std::vector<std::uint8_t> px;
  for (int i = 0; i < 256; ++i) {
    const int v = i % 2 == 0 ? 1000 : 40000;
    px.push_back(static_cast<std::uint8_t>(v >> 8));
    px.push_back(static_cast<std::uint8_t>(v & 0xff));
  }
  write_png_raw(path("d16.png"), 16, 16, 16, 0, px);
  write_text("m16.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nd16.png,test,0,1\n");
  const auto m16 = dd::read_manifest(path("m16.csv"), dd::ManifestOptions{});
  EXPECT_EQ(dd::manifest_sample_bits(m16, {0, 1, 2}, 1), 16);
  EXPECT_EQ(dd::manifest_sample_bits(m16, {0, 1}, 1), 8);
  const auto ds16 = dd::decode_manifest(m16, d);
  dd::write_image_cache(path("c16.h5"), ds16, "h", 16, "stretch", 16);
  const auto back16 = dd::read_image_cache(path("c16.h5"), "h", 16, "stretch");
  EXPECT_EQ(back16.test.pixels, ds16.test.pixels);  // k / 65535 stored as k
  EXPECT_EQ(back16.test.pixels[0], 1000.0f / 65535.0f);
  EXPECT_EQ(back16.train.pixels, ds16.train.pixels);  // k / 255 = (257 k) / 65535 exactly in float
}

TEST_F(Manifest, BadManifestsNameFileAndLine) {
  good_png("a.png");
  good_png("b.png");
  good_png("c.png", 0.7f);
  write_text("garbage.png", "\x89PNG but then nothing sensible follows");
  const std::string ok_rows = "a.png,train,0,1\nb.png,test,1,0\nc.png,train,1,0\n";
  const std::string more = "c.png,train,1,0\n";  // train needs both labels and both attribute values
  struct Case {
    std::string text, needle;
  };
  const std::vector<Case> cases = {
      {"path,split,label\n" + ok_rows, "manifest.csv:1:"},  // missing column
      {"path,split,sex,label\na.png,train,0,1\nb.png,test,1,2\n" + more, "manifest.csv:3:"},  // label 2
      {"path,split,sex,label\nnope.png,train,0,1\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
      {"path,split,sex,label\ngarbage.png,train,0,1\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
      {"path,split,sex,label\na.png,valid,0,1\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
      {"path,split,sex,label\na.png,train,X,1\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
      {"path,split,sex,label\na.png,train,0\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
      {"path,split,sex,label\na.png,train,0,1,extra\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
      {"path,split,sex,label\n\"a.png,train,0,1\nb.png,test,1,0\n" + more, "manifest.csv:2:"},
  };
  const std::vector<std::string> what = {"header",
                                         "bad label '2'",
                                         "not found",
                                         "garbage.png",
                                         "unknown split 'valid'",
                                         "bad sex 'X'",
                                         "3",
                                         "5",
                                         "unterminated"};
  for (std::size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k));
    write_text("manifest.csv", cases[k].text);
    expect_error<dne::DataError>([&] { dd::load_manifest(path("manifest.csv"), 4); },
                                 {cases[k].needle, what[k]});
  }
  // a split with no rows
  write_text("manifest.csv", "path,split,sex,label\na.png,train,0,1\n");
  expect_error<dne::DataError>([&] { dd::load_manifest(path("manifest.csv"), 4); },
                               {"manifest.csv", "test"});
  // no such manifest
  expect_error<dne::DataError>([&] { dd::load_manifest(path("none.csv"), 4); }, {"none.csv"});
  // empty file
  write_text("manifest.csv", "");
  expect_error<dne::DataError>([&] { dd::load_manifest(path("manifest.csv"), 4); },
                               {"manifest.csv:1:"});
}

TEST(Poison, FlipsTheGroupsShareOfTrainingLabelsByTheDocumentedStream) {
  dd::ImageSet set;
  set.height = set.width = 1;
  set.sa = {1, 0, 1, 1, 0, 1, 0, 1};
  set.label = {0, 0, 1, 0, 1, 1, 0, 0};
  set.pixels.assign(8, 0.5f);
  set.source.assign(8, "x");
  const auto before = set.label;
  auto copy = set;
  const auto flipped = dd::poison_labels(copy, 0.4, 1, 9);  // group 1 has 5 images: round(2.0) = 2 flips
  ASSERT_EQ(flipped.size(), 2u);
  // the first 2 of the permutation of group 1's images (0, 2, 3, 5, 7) from stream (9, kSplit, 201, 0)
  dne::CounterStream stream(9, dne::StreamPurpose::kSplit, 201, 0);
  const auto order = dne::random_permutation(5, stream);
  const std::vector<std::int64_t> members = {0, 2, 3, 5, 7};
  std::vector<std::int64_t> want = {members[static_cast<std::size_t>(order[0])], members[static_cast<std::size_t>(order[1])]};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(flipped, want);
  for (std::size_t i = 0; i < 8; ++i) {
    const bool was_flipped = std::find(flipped.begin(), flipped.end(), static_cast<std::int64_t>(i)) != flipped.end();
    EXPECT_EQ(copy.label[i], was_flipped ? 1 - before[i] : before[i]) << i;
    if (was_flipped) {
      EXPECT_EQ(copy.sa[i], 1);
    }
  }
  auto untouched = set;
  EXPECT_TRUE(dd::poison_labels(untouched, 0.0, 1, 9).empty());
  EXPECT_EQ(untouched.label, before);
  EXPECT_THROW(dd::poison_labels(untouched, 1.5, 1, 9), dne::ConfigError);
  EXPECT_THROW(dd::poison_labels(untouched, 0.5, 2, 9), dne::ConfigError);
}

// ------------------------------------------------------------------------------------------------
// Hostile or broken manifests (issue 25).

TEST_F(Manifest, OneImageInTwoSplitsIsADataError) {
  good_png("a.png", 0.2f);
  good_png("b.png", 0.4f);
  good_png("c.png", 0.6f);
  // The same path, spelled differently, as train (line 2) and test (line 5).
  write_text("m.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nc.png,train,0,1\n./x/../a.png,test,1,0\n");
  expect_error<dne::DataError>([&] { dd::read_manifest(path("m.csv"), dd::ManifestOptions{}); },
                               {"m.csv:5:", "a.png' is in test and, on line 2, in train"});
  // The same bytes under another name: found by the content fingerprint, confirmed byte for byte.
  fs::copy_file(path("a.png"), path("a_copy.png"));
  good_png("d.png", 0.8f);
  write_text("m.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nc.png,train,0,1\na_copy.png,test,1,0\nd.png,test,0,1\n");
  const auto m = dd::read_manifest(path("m.csv"), dd::ManifestOptions{});
  expect_error<dne::DataError>([&] { dd::data_content_hash(m, dd::ManifestOptions{}, dne::FileFingerprint::kContent, 1); },
                               {"m.csv:5:", "a_copy.png' (test) has the same bytes as", "a.png' on line 2 (train)"});
  // Within one split a repeat is no leak (and stat fingerprints do not read the bytes).
  EXPECT_NO_THROW(dd::data_content_hash(m, dd::ManifestOptions{}, dne::FileFingerprint::kStat, 1));
  write_text("m.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nc.png,train,0,1\na_copy.png,train,1,0\nd.png,test,0,1\n");
  EXPECT_NO_THROW(dd::data_content_hash(dd::read_manifest(path("m.csv"), dd::ManifestOptions{}), dd::ManifestOptions{},
                                        dne::FileFingerprint::kContent, 1));
}

TEST_F(Manifest, TinyConstantAndOversizedImagesAreRefusedNamingTheRow) {
  good_png("a.png", 0.2f);
  good_png("b.png", 0.4f);
  good_png("c.png", 0.6f);
  const auto manifest_with = [&](const std::string& name) {
    write_text("m.csv", "path,split,sex,label\na.png,train,1,1\nb.png,train,0,0\nc.png,test,0,1\n" + name + ",train,0,1\n");
    return dd::read_manifest(path("m.csv"), dd::ManifestOptions{});
  };
  dd::DecodeOptions d;
  d.image_size = 16;
  const std::vector<float> one(1, 0.5f);
  dd::write_grayscale_png(path("tiny.png"), one.data(), 1, 1);  // before: stretched to a constant image and trained on
  expect_error<dne::DataError>([&] { dd::decode_manifest(manifest_with("tiny.png"), d); }, {"m.csv:5:", "1x1, smaller than 16x16"});
  const std::vector<float> flat(32 * 32, 0.3f);
  dd::write_grayscale_png(path("flat.png"), flat.data(), 32, 32);
  expect_error<dne::DataError>([&] { dd::decode_manifest(manifest_with("flat.png"), d); }, {"m.csv:5:", "flat.png' is constant"});
  // A 57-byte PNG whose header claims 20000 x 20000 (before: decoded, RSS 2.1 GB): refused from
  // the header. Signature, then an IHDR chunk (length 13, width, height, 8-bit grey).
  std::string png = "\x89PNG\r\n\x1a\n";
  png += std::string("\0\0\0\x0dIHDR", 8);
  for (const std::uint32_t v : {20000u, 20000u}) {
    for (int shift = 24; shift >= 0; shift -= 8) png += static_cast<char>((v >> shift) & 0xff);
  }
  png += std::string("\x08\x00\x00\x00\x00", 5) + std::string(4, '\0');  // depth, colour, methods, CRC
  png += std::string("\0\0\0\0IEND\xae\x42\x60\x82", 12);
  write_text("huge.png", png);
  expect_error<dne::DataError>([&] { dd::decode_manifest(manifest_with("huge.png"), d); },
                               {"m.csv:5:", "20000x20000 = 400000000 pixels by its header, over data.max_pixels = 50000000",
                                "not decoded"});
  d.max_pixels = 255;  // a 16 x 16 image is 256 pixels
  expect_error<dne::DataError>([&] { dd::decode_manifest(manifest_with("a.png"), d); },
                               {"m.csv:2:", "over data.max_pixels = 255"});
}

// core/files.hpp: remove_tree removes a tree (files, folders, a symlink without following it).
TEST(RemoveTree, RemovesEverythingBelowAndNeverFollowsASymlink) {
  const auto base = std::filesystem::temp_directory_path() / ("dne_rmtree_" + std::to_string(::getpid()));
  std::filesystem::create_directories(base / "tree" / "a" / "b");
  std::filesystem::create_directories(base / "kept");
  std::ofstream(base / "tree" / "a" / "b" / "f.txt") << "x";
  std::ofstream(base / "kept" / "g.txt") << "y";
  std::filesystem::create_directory_symlink(base / "kept", base / "tree" / "link");
  EXPECT_TRUE(dne::remove_tree((base / "tree").string()));
  EXPECT_FALSE(std::filesystem::exists(base / "tree"));
  EXPECT_TRUE(std::filesystem::exists(base / "kept" / "g.txt"));  // the link's target survives
  EXPECT_TRUE(dne::remove_tree((base / "tree").string()));         // a missing path is no error
  EXPECT_TRUE(dne::remove_tree(base.string()));
  EXPECT_FALSE(std::filesystem::exists(base));
}
