// Synthetic chest X-ray phantom (see phantom.hpp and docs/phantom.md).
//
// Rendering works in normalised coordinates u = (x + 0.5) / S (left to right) and
// v = (y + 0.5) / S (top to bottom), so the anatomy is the same at every image size. The image is
// composed as a "density" D (sum of additive layers: soft tissue, minus lung air, plus bones,
// heart, fluid, breast tissue), mapped to intensity I = background + gain * D, then the marker is
// stamped, Gaussian noise added and the result clamped to [0, 1]. Soft edges use a cubic smoothstep
// over about one pixel at 64 x 64 (no exp in the inner loop) and x-only terms are precomputed per
// column, so one 64 x 64 image costs ~0.3 ms on one core; make_phantom spreads images over a few
// threads (results do not depend on the thread count). All random draws for one image come from
// one CounterStream(seed, kPhantom, split, index) in a fixed order and are made whether or not the
// layer they feed is drawn.
//
// The option check, make_phantom and phantom_regions are in phantom_dataset.cpp.
#include "dne/data/phantom.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dne/core/random.hpp"
#include "phantom_parts.hpp"

namespace dne::data {
namespace {

// ---------------------------------------------------------------------------------------------
// Small numeric helpers (float, branch-light).

inline float clamp(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }
inline float clamp01(float x) { return std::min(std::max(x, 0.f), 1.f); }  // minss/maxss, no branch

// Cubic smoothstep from 0 at x <= e0 to 1 at x >= e1.
inline float smoothstep(float e0, float e1, float x) {
  const float t = clamp01((x - e0) * (1.f / (e1 - e0)));  // constant-folded for literal edges
  return t * t * (3.f - 2.f * t);
}

// Soft inside-indicator of a signed margin m (positive inside), edge half-width e: 0 for m <= -e,
// 1 for m >= e (a multiply instead of smoothstep's divide: this is the inner loop's workhorse).
inline float soft(float m, float e) {
  const float t = clamp01(m * (0.5f / e) + 0.5f);
  return t * t * (3.f - 2.f * t);
}

// Distance from point p to the segment a-b.
inline float segment_distance(float px, float py, float ax, float ay, float bx, float by) {
  const float dx = bx - ax, dy = by - ay;
  const float len2 = dx * dx + dy * dy;
  const float t = clamp01(len2 > 0.f ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.f);
  const float qx = ax + t * dx - px, qy = ay + t * dy - py;
  return std::sqrt(qx * qx + qy * qy);
}

// 5 x 7 pixel font for the acquisition marker letters (rows top to bottom, bit 4 = leftmost).
constexpr unsigned char kGlyphL[7] = {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F};
constexpr unsigned char kGlyphR[7] = {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11};

constexpr int kNumRibs = 10;    // posterior ribs per side
constexpr int kNumVessels = 5;  // hilar vessel rays per side

// ---------------------------------------------------------------------------------------------
// Per-image parameters. Sides are indexed 0 = image left (patient's right), 1 = image right;
// `dx` is the distance from the midline towards that side's lateral border.

struct Lung {
  float d_med;     // medial border distance from the midline
  float width;     // lateral extent beyond d_med
  float v_top;     // apex row
  float v_base;    // costophrenic angle row
  float dome_h;    // hemidiaphragm dome height above v_base
  float inv_span;  // 1 / (width + 0.03): lateral fraction scale
};

struct Vessel {
  float dir_dx, dir_v;  // end point minus the hilum (the ray starts at the hilum)
  float inv_len2;       // 1 / |dir|^2
  float strength;
};

struct Breast {
  float dx;  // centre distance from the midline
  float vc;  // centre row
  float radius;
  float strength;
};

struct Params {
  PhantomTruth truth;
  // global pose and exposure
  float cx, shift, scale, background, gain;
  // body
  float tissue, body_rx, body_cy, body_ry;
  // lungs
  float air;
  Lung lung[2];
  // heart
  float heart_x, heart_y, heart_rx_right, heart_rx_left, heart_ry, heart_density;
  // spine
  float spine_hw, spine_density, disc_period, disc_phase;
  // ribs
  float rib_spacing, rib_v0, rib_curv, rib_density, rib_phase[2];
  // clavicles
  float clav_v_med, clav_v_lat, clav_density;
  // hila and vessels
  float hilum_dx, hilum_v, hilum_density;
  Vessel vessel[2][kNumVessels];
  // effusion (drawn always, rendered only if y = 1)
  float fluid_meniscus;
  // breast shadows (drawn always, rendered only if a = 1)
  Breast breast[2];
  // marker (pixel units)
  int marker_x0, marker_y0, marker_px;
  float marker_intensity;
};

float u(CounterStream& rng, double lo, double hi) {
  return static_cast<float>(rng.uniform(lo, hi));
}

// Draws every parameter of one image in a fixed order (the order is part of the determinism
// contract: changing it changes every phantom).
Params draw_params(const PhantomOptions& o, int split, CounterStream& rng) {
  Params p{};
  PhantomTruth& t = p.truth;
  // 1. labels
  t.label = rng.bernoulli(o.prevalence) ? 1 : 0;
  const double p_a = split == kTrainSplit ? (t.label == 1 ? o.bias : 1.0 - o.bias) : 0.5;
  t.sa = rng.bernoulli(p_a) ? 1 : 0;

  // 2. global pose and exposure
  p.cx = u(rng, 0.475, 0.525);
  p.shift = u(rng, -0.025, 0.025);
  p.scale = u(rng, 0.92, 1.06);
  p.background = u(rng, 0.02, 0.05);
  p.gain = u(rng, 0.92, 1.05);

  // 3. body
  p.tissue = u(rng, 0.50, 0.60);
  p.body_rx = 0.47f * p.scale * u(rng, 0.97, 1.03);
  p.body_cy = 0.72f + p.shift;
  p.body_ry = 0.63f;

  // 4. lungs (slightly asymmetric: the image-right hemidiaphragm sits lower)
  p.air = u(rng, 0.32, 0.40);
  for (int s = 0; s < 2; ++s) {
    Lung& l = p.lung[s];
    l.d_med = u(rng, 0.055, 0.07);
    l.width = 0.29f * p.scale * u(rng, 0.95, 1.05);
    l.v_top = 0.15f + p.shift + u(rng, -0.015, 0.015);
    l.v_base = 0.76f + p.shift + u(rng, -0.02, 0.02) + (s == 1 ? 0.015f : 0.f);
    l.dome_h = u(rng, 0.05, 0.09);
    l.inv_span = 1.f / (l.width + 0.03f);
  }

  // 5. heart (lower middle, extending further to image right)
  p.heart_x = p.cx + u(rng, 0.02, 0.04);
  p.heart_y = 0.63f + p.shift + u(rng, -0.02, 0.02);
  p.heart_rx_right = u(rng, 0.17, 0.21) * p.scale;
  p.heart_rx_left = u(rng, 0.12, 0.15) * p.scale;
  p.heart_ry = u(rng, 0.11, 0.13);
  p.heart_density = u(rng, 0.04, 0.08);

  // 6. spine
  p.spine_hw = u(rng, 0.032, 0.042);
  p.spine_density = u(rng, 0.06, 0.10);
  p.disc_period = u(rng, 0.04, 0.05);
  p.disc_phase = u(rng, 0.0, 1.0);

  // 7. ribs
  p.rib_spacing = u(rng, 0.046, 0.054);
  p.rib_v0 = 0.10f + p.shift + u(rng, -0.01, 0.01);
  p.rib_curv = u(rng, 1.5, 2.1);
  p.rib_density = u(rng, 0.035, 0.06);
  p.rib_phase[0] = u(rng, -0.15, 0.15);
  p.rib_phase[1] = u(rng, -0.15, 0.15);

  // 8. clavicles
  p.clav_v_med = 0.205f + p.shift + u(rng, -0.01, 0.01);
  p.clav_v_lat = 0.135f + p.shift + u(rng, -0.015, 0.015);
  p.clav_density = u(rng, 0.12, 0.18);

  // 9. hila and vessel markings radiating over [-50, +70] degrees (0 = lateral, + = down)
  p.hilum_dx = u(rng, 0.09, 0.11);
  p.hilum_v = 0.45f + p.shift + u(rng, -0.02, 0.02);
  p.hilum_density = u(rng, 0.05, 0.09);
  for (int s = 0; s < 2; ++s) {
    for (int k = 0; k < kNumVessels; ++k) {
      Vessel& ve = p.vessel[s][k];
      const float base = -0.87f + 2.09f * (static_cast<float>(k) + 0.5f) / kNumVessels;
      const float angle = base + u(rng, -0.2, 0.2);
      const float length = u(rng, 0.14, 0.26);
      ve.dir_dx = length * std::cos(angle);
      ve.dir_v = length * std::sin(angle);
      ve.inv_len2 = 1.f / (length * length);
      ve.strength = u(rng, 0.03, 0.06);
    }
  }

  // 10. effusion
  t.effusion_side = rng.bernoulli(0.5) ? 1 : -1;
  t.severity = rng.uniform(o.severity_min, o.severity_max);
  p.fluid_meniscus = u(rng, 0.05, 0.09);

  // 11. breast shadows (one size/strength per image, slight left-right differences)
  const float b_strength = u(rng, 0.05, 0.10);
  const float b_radius = u(rng, 0.15, 0.21) * p.scale;
  const float b_vc = u(rng, 0.70, 0.76) + p.shift;
  for (int s = 0; s < 2; ++s) {
    Breast& b = p.breast[s];
    b.dx = u(rng, 0.25, 0.31) * p.scale;
    b.vc = b_vc + u(rng, -0.015, 0.015);
    b.radius = b_radius * u(rng, 0.92, 1.08);
    b.strength = b_strength * u(rng, 0.85, 1.15);
  }

  // 12. acquisition marker: letter in a top corner, 2-4 font pixels from the edges
  t.marker = rng.bernoulli(t.sa == 1 ? o.marker_rate_a1 : o.marker_rate_a0);
  t.marker_right = rng.bernoulli(0.5);
  t.marker_letter = rng.bernoulli(0.5) ? 'R' : 'L';
  p.marker_px = std::max(1, o.image_size / 64);
  const int off_x = 2 + static_cast<int>(rng.below(3));
  const int off_y = 2 + static_cast<int>(rng.below(3));
  p.marker_x0 = t.marker_right ? o.image_size - (off_x + 5) * p.marker_px : off_x * p.marker_px;
  p.marker_y0 = off_y * p.marker_px;
  p.marker_intensity = u(rng, 0.85, 0.98);
  return p;
}

// Lateral fraction q in [0, 1] across a hemithorax (0 = medial border, 1 = lateral border).
inline float lateral_fraction(const Lung& l, float dx) {
  return clamp01((dx - l.d_med) * l.inv_span);
}

// Row-constant part of one lung's outline: medial and lateral border positions at row v.
struct LungRow {
  float med_x, lat_x, m_top, v_base;
  bool in_rows;  // v within the lung's rows (apex to costophrenic angle, plus the soft edge)
};

LungRow lung_row(const Lung& l, float v) {
  const float t = clamp01((v - l.v_top) / (l.v_base - l.v_top));
  const float r = 1.f - std::min(t / 0.85f, 1.f);
  const float prof = std::sqrt(1.f - r * r);  // 0 at the apex (rounded), 1 from 85% height down
  const float apex_x = l.d_med + 0.35f * l.width;
  LungRow row;
  row.med_x = apex_x - 0.35f * l.width * prof;
  row.lat_x = apex_x + 0.65f * l.width * prof + 0.03f * t;
  row.m_top = v - l.v_top;
  row.v_base = l.v_base;
  row.in_rows = v > l.v_top - 0.02f && v < l.v_base + 0.03f;
  return row;
}

// Adds N(0, sd^2) noise to n pixels and clamps to [0, 1]. Marsaglia's polar method in float on
// 24-bit uniforms from the image's own stream (no sin/cos; rejection only moves the stream
// position, and the noise is the last use of the stream).
void add_noise(CounterStream& rng, float sd, float* px, std::size_t n) {
  constexpr float kScale = 2.f / 16777216.f;
  for (std::size_t i = 0; i < n; i += 2) {
    float a, b, r2;
    do {
      a = static_cast<float>(rng.next_u32() >> 8) * kScale - 1.f;  // [-1, 1)
      b = static_cast<float>(rng.next_u32() >> 8) * kScale - 1.f;
      r2 = a * a + b * b;
    } while (r2 >= 1.f || r2 == 0.f);
    const float m = sd * std::sqrt(-2.f * std::log(r2) / r2);
    px[i] = clamp01(px[i] + m * a);
    if (i + 1 < n) px[i + 1] = clamp01(px[i + 1] + m * b);
  }
}

// Column-constant terms of one image (everything that depends on x only), so that the inner
// loop only combines them with the row terms. All arrays have S entries.
struct Columns {
  std::vector<float> du;         // u - cx
  std::vector<float> dx;         // |u - cx|
  std::vector<int> side;         // 0 = image left, 1 = image right
  std::vector<float> body_x3;    // (|du| / body_rx)^3
  std::vector<float> neck;       // neck column mask
  std::vector<float> spine;      // spine column mask
  std::vector<float> knob_x2;    // (du - knob_dx)^2
  std::vector<float> dome_v;     // hemidiaphragm row at this column
  std::vector<float> fluid_v;    // effusion fluid level row (effusion side only)
  std::vector<float> rib_v;      // posterior rib arc offset row
  std::vector<float> rib_fade;   // posterior ribs fade in from the spine
  std::vector<float> ant_v;      // anterior rib offset row
  std::vector<float> ant_fade;   // anterior ribs fade in laterally
  std::vector<float> breast_x2;  // ((dx - breast dx) / 1.25)^2
};

constexpr float kEdge = 0.008f;  // soft edge half-width (about half a pixel at 64 x 64)

// Image-constant terms of one image (everything that depends on neither x nor y).
struct ImageTerms {
  int S;      // image_size
  float inv;  // 1 / S
  bool effusion;
  bool breast;
  float breast_scale;
  int eff_s;  // the effusion's side (0 = image left, 1 = image right)
  // fluid column height above the costophrenic angle, and how much higher it climbs laterally
  float fluid_h, fluid_men;
  float clav_bx;
  float inv_rib_spacing;
  float heart_dx, inv_heart_rx_right, inv_heart_rx_left;
  // aortic knob: a bulge of the mediastinum above the heart's right shoulder (image right)
  float knob_dx, knob_v;
  // vessel bounding box (rows): only pixels near the hila pay for the ray distances
  float ves_v0, ves_v1;
};

ImageTerms image_terms(const PhantomOptions& o, const Params& p) {
  ImageTerms img;
  img.S = o.image_size;
  img.inv = 1.f / static_cast<float>(img.S);
  img.effusion = p.truth.label == 1;
  img.breast = p.truth.sa == 1 && o.breast_contrast > 0.0;
  img.breast_scale = static_cast<float>(o.breast_contrast);
  img.eff_s = p.truth.effusion_side > 0 ? 1 : 0;
  const Lung& eff_lung = p.lung[img.eff_s];
  const float severity = static_cast<float>(p.truth.severity);
  img.fluid_h = severity * 0.42f * (eff_lung.v_base - eff_lung.v_top);
  img.fluid_men = p.fluid_meniscus * (0.8f + 0.8f * severity);
  img.clav_bx = 0.30f * p.scale;
  img.inv_rib_spacing = 1.f / p.rib_spacing;
  img.heart_dx = p.heart_x - p.cx;
  img.inv_heart_rx_right = 1.f / p.heart_rx_right;
  img.inv_heart_rx_left = 1.f / p.heart_rx_left;
  img.knob_dx = p.lung[1].d_med + 0.01f;
  img.knob_v = p.heart_y - 1.4f * p.heart_ry;
  img.ves_v0 = p.hilum_v - 0.24f;
  img.ves_v1 = p.hilum_v + 0.27f;
  return img;
}

Columns column_terms(const Params& p, const ImageTerms& img) {
  const int S = img.S;
  Columns c;
  for (auto* a : {&c.du, &c.dx, &c.body_x3, &c.neck, &c.spine, &c.knob_x2, &c.dome_v, &c.fluid_v,
                  &c.rib_v, &c.rib_fade, &c.ant_v, &c.ant_fade, &c.breast_x2}) {
    a->resize(static_cast<std::size_t>(S));
  }
  c.side.resize(static_cast<std::size_t>(S));
  for (int x = 0; x < S; ++x) {
    const auto i = static_cast<std::size_t>(x);
    const float du = (static_cast<float>(x) + 0.5f) * img.inv - p.cx;
    const float dx = std::fabs(du);
    const int s = du < 0.f ? 0 : 1;
    c.du[i] = du;
    c.dx[i] = dx;
    c.side[i] = s;
    const float dxb = dx / p.body_rx;
    c.body_x3[i] = dxb * dxb * dxb;
    c.neck[i] = soft(0.085f - dx, 0.01f);
    c.spine[i] = soft(p.spine_hw - dx, 0.006f);
    c.knob_x2[i] = (du - img.knob_dx) * (du - img.knob_dx);
    // hemidiaphragm dome: highest 42% across, lowest at the lateral costophrenic angle
    const Lung& l = p.lung[s];
    const float q = lateral_fraction(l, dx);
    float dome;
    if (q >= 0.42f) {
      const float z = (q - 0.42f) / 0.58f;
      dome = 1.f - z * z;
    } else {
      const float z = (0.42f - q) / 0.42f;
      dome = 1.f - 0.6f * z * z;
    }
    c.dome_v[i] = l.v_base - l.dome_h * dome;
    // effusion: fluid level rises laterally (meniscus)
    c.fluid_v[i] = l.v_base - img.fluid_h - img.fluid_men * q * q * q;
    // ribs: posterior arcs slope down laterally, anterior arcs slope down medially
    c.rib_v[i] = p.rib_v0 + p.rib_curv * (dx - 0.1f) * (dx - 0.1f);
    c.rib_fade[i] = dx > 0.03f ? smoothstep(0.03f, 0.07f, dx) : 0.f;
    c.ant_v[i] = p.rib_v0 + 0.12f - 0.45f * (dx - 0.4f);
    c.ant_fade[i] = dx > 0.12f ? 0.4f * smoothstep(0.12f, 0.2f, dx) : 0.f;
    const float bx = (dx - p.breast[s].dx) * 0.8f;  // wider than tall
    c.breast_x2[i] = bx * bx;
  }
  return c;
}

// Row-constant terms of one image row at v (everything that depends on y only).
struct RowTerms {
  float v;
  float dyb3;  // (|v - body_cy| / body_ry)^3
  float abdomen, neck_v;
  float spine_row;
  float hy2, heart_row_dx;
  bool heart_row;
  float knob_dy2;
  bool knob_row;
  LungRow lrow[2];
  bool clav_row, ves_row;
  float breast_row[2] = {0.f, 0.f}, breast_dy2[2] = {0.f, 0.f}, breast_edge[2] = {1.f, 1.f};
};

RowTerms row_terms(const Params& p, const ImageTerms& img, float v) {
  RowTerms t;
  t.v = v;
  const float dyb = std::fabs((v - p.body_cy) / p.body_ry);
  t.dyb3 = dyb * dyb * dyb;
  t.abdomen = 0.12f * smoothstep(0.75f, 0.97f, v);
  t.neck_v = soft(0.2f + p.shift - v, 0.02f);
  const float disc_f = v / p.disc_period - p.disc_phase;
  const float disc_t = disc_f - std::floor(disc_f);
  const float disc = std::max(0.f, 1.f - std::fabs(disc_t - 0.1f) / 0.1f);
  t.spine_row = p.spine_density * (1.f - 0.35f * disc);
  // the upper half of the heart is taller (pear shape), so it tapers into the mediastinum
  const float hy = (v - p.heart_y) / (v < p.heart_y ? 1.6f * p.heart_ry : p.heart_ry);
  t.hy2 = hy * hy;
  t.heart_row_dx = img.heart_dx + 0.3f * (v - p.heart_y);  // sheared: apex down and right
  t.heart_row = std::fabs(hy) < 1.2f;
  t.knob_dy2 = (v - img.knob_v) * (v - img.knob_v);
  t.knob_row = std::fabs(v - img.knob_v) < 0.06f;
  t.lrow[0] = lung_row(p.lung[0], v);
  t.lrow[1] = lung_row(p.lung[1], v);
  t.clav_row = v < 0.3f;
  t.ves_row = v > img.ves_v0 && v < img.ves_v1;
  // breast: very soft upper edge, sharper lower (inframammary) edge, denser towards the bottom
  if (img.breast) {
    for (int s = 0; s < 2; ++s) {
      const Breast& b = p.breast[s];
      const float bdy = v - b.vc;
      t.breast_dy2[s] = bdy * bdy;
      t.breast_edge[s] = bdy > 0.f ? 0.025f : 0.12f;
      t.breast_row[s] = img.breast_scale * b.strength *
                        (0.35f + 0.65f * smoothstep(b.vc - b.radius, b.vc + 0.7f * b.radius, v));
    }
  }
  return t;
}

// heart: ellipse, wider to image right, with the aortic knob above its right shoulder. Adds its
// density to D and returns its mask (the lung's air is dimmed under it).
inline float add_heart(const Params& p, const ImageTerms& img, const Columns& c, const RowTerms& at_y,
                       std::size_t i, float& D) {
  float heart = 0.f;
  if (at_y.heart_row) {
    const float hx = c.du[i] - at_y.heart_row_dx;
    const float hxn = hx * (hx > 0.f ? img.inv_heart_rx_right : img.inv_heart_rx_left);
    const float m_heart = (1.f - hxn * hxn - at_y.hy2) * 0.07f;
    heart = soft(m_heart, kEdge);
    D += p.heart_density * soft(m_heart - 0.02f, 0.03f);  // denser core, no crisp outline
  }
  if (at_y.knob_row) heart = std::max(heart, soft(0.04f - std::sqrt(c.knob_x2[i] + at_y.knob_dy2), kEdge));
  return heart;
}

// The lung of one side at one pixel (0 outside), and the effusion's fluid in it.
struct LungPixel {
  float lung, fluid;
};

// lung of this side: air lowers the density, more so away from the borders
inline LungPixel add_lung(const Params& p, const ImageTerms& img, const Columns& c, const RowTerms& at_y,
                          std::size_t i, float heart, float& D) {
  const float v = at_y.v;
  const float dx = c.dx[i];
  const int s = c.side[i];
  const LungRow& lr = at_y.lrow[s];
  float lung = 0.f, fluid = 0.f;
  if (lr.in_rows && dx > lr.med_x - kEdge && dx < lr.lat_x + kEdge) {
    const float m_side = std::min(std::min(dx - lr.med_x, lr.lat_x - dx), lr.m_top);
    const float m_lung = std::min(m_side, c.dome_v[i] - v);
    lung = soft(m_lung, kEdge);
    const float air =
        lung * (0.55f + 0.45f * smoothstep(0.f, 0.07f, m_lung)) * (1.f - 0.92f * heart);
    if (img.effusion && s == img.eff_s) {
      // fluid fills the hemithorax (hiding the dome) below a level that fades upwards
      const float m_hemi = std::min(m_side, lr.v_base - v + 0.01f);
      fluid = soft(m_hemi, kEdge) * soft(v - c.fluid_v[i], 0.02f);
    }
    // fluid is a little denser than soft tissue above the (hidden) dome, equal below it
    D += -p.air * air * (1.f - fluid) + 0.05f * fluid * lung;
  }
  return LungPixel{lung, fluid};
}

// ribs: posterior arcs (spacing widening towards the base), fainter anterior arcs
inline void add_ribs(const Params& p, const ImageTerms& img, const Columns& c, const RowTerms& at_y,
                     std::size_t i, float body, float fluid, float& D) {
  const float v = at_y.v;
  const float dx = c.dx[i];
  const int s = c.side[i];
  if (dx > 0.03f) {
    const float z = v - c.rib_v[i];
    const float r = z * img.inv_rib_spacing * (1.f - 0.25f * z) - p.rib_phase[s];
    // branch-free: clamp into the rib range, then zero outside it
    const float rc = clamp(r, 0.f, static_cast<float>(kNumRibs) - 1e-3f);
    const float frac =
        rc - static_cast<float>(static_cast<int>(rc));  // rc >= 0: trunc = floor
    float rib = smoothstep(0.4f, 0.95f, 1.f - std::fabs(2.f * frac - 1.f)) * c.rib_fade[i] *
                (rc == r ? 1.f : 0.f);
    const float ra = (v - c.ant_v[i]) * img.inv_rib_spacing * 0.8f;
    const float rac = clamp(ra, 0.f, 6.f - 1e-3f);
    const float fa = rac - static_cast<float>(static_cast<int>(rac));
    rib += smoothstep(0.5f, 0.95f, 1.f - std::fabs(2.f * fa - 1.f)) * c.ant_fade[i] *
           (rac == ra ? 1.f : 0.f);
    D += p.rib_density * rib * body * (1.f - 0.5f * fluid);
  }
}

// clavicle: oblique bar from the sternal end up and out to the shoulder
inline void add_clavicle(const Params& p, const ImageTerms& img, const Columns& c, const RowTerms& at_y,
                         std::size_t i, float body, float& D) {
  if (at_y.clav_row) {
    const float d = segment_distance(c.dx[i], at_y.v, 0.04f, p.clav_v_med, img.clav_bx, p.clav_v_lat);
    D += p.clav_density * soft(0.016f - d, 0.006f) * body;
  }
}

// hilum and vessel markings (inside the lung only)
inline void add_vessels(const Params& p, const Columns& c, const RowTerms& at_y, std::size_t i,
                        const LungPixel& lp, float& D) {
  const float dx = c.dx[i];
  const int s = c.side[i];
  const float lung = lp.lung, fluid = lp.fluid;
  if (at_y.ves_row && lung > 0.f && dx < 0.42f) {
    const float ddx = dx - p.hilum_dx, ddy = at_y.v - p.hilum_v;
    const float hd = 1.f - (ddx * ddx + ddy * ddy) * 400.f;  // radius 0.05
    float vess = hd > 0.f ? p.hilum_density * hd * hd : 0.f;
    for (int k2 = 0; k2 < kNumVessels; ++k2) {
      const Vessel& ve = p.vessel[s][k2];
      // distance to the segment hilum -> hilum + dir, tt = position along it
      const float tt = clamp01((ddx * ve.dir_dx + ddy * ve.dir_v) * ve.inv_len2);
      const float qx = ddx - tt * ve.dir_dx, qy = ddy - tt * ve.dir_v;
      const float dd2 = qx * qx + qy * qy;
      if (dd2 >= 0.012f * 0.012f) continue;  // beyond the widest vessel's soft edge
      vess += ve.strength * (1.f - tt) * std::min(1.f, 5.f * tt) *
              soft(0.007f * (1.f - 0.6f * tt) - std::sqrt(dd2), 0.005f);
    }
    D += vess * lung * (1.f - fluid);
  }
}

// breast soft-tissue shadows (may bulge past the body outline)
inline void add_breast(const Params& p, const ImageTerms& img, const Columns& c, const RowTerms& at_y,
                       std::size_t i, float& D) {
  const int s = c.side[i];
  if (img.breast) {
    const float d = std::sqrt(c.breast_x2[i] + at_y.breast_dy2[s]);  // (dx / 1.25, dy) ellipse
    D += at_y.breast_row[s] * soft(p.breast[s].radius - d, at_y.breast_edge[s]);
  }
}

// The density D of pixel i of a row: the body, inside it the heart, spine, lung (and fluid),
// ribs, clavicle, hilum and vessels, then the breast shadows, added in that order.
inline float pixel_density(const Params& p, const ImageTerms& img, const Columns& c, const RowTerms& at_y,
                           std::size_t i) {
  // body: superellipse |x|^3 + |y|^3 <= 1, thinner (dimmer) towards its edge; neck on top
  const float f = c.body_x3[i] + at_y.dyb3;
  const float body_in = soft((1.f - f) * 0.12f, 0.01f);
  const float neck = c.neck[i] * at_y.neck_v;
  const float body = std::max(body_in, neck);
  float D = 0.f;

  if (body > 0.f) {
    const float thick = 0.55f + 0.45f * std::sqrt(clamp01(1.f - f));
    D = body * (p.tissue * std::max(thick * body_in, 0.8f * neck) + at_y.abdomen);
    const float heart = add_heart(p, img, c, at_y, i, D);
    // spine with darker intervertebral discs
    D += at_y.spine_row * c.spine[i] * body;
    const LungPixel lp = add_lung(p, img, c, at_y, i, heart, D);
    add_ribs(p, img, c, at_y, i, body, lp.fluid, D);
    add_clavicle(p, img, c, at_y, i, body, D);
    add_vessels(p, c, at_y, i, lp, D);
  }
  add_breast(p, img, c, at_y, i, D);
  return D;
}

// acquisition marker: radio-opaque letter stamped over the anatomy
void stamp_marker(const Params& p, int S, float* out) {
  if (p.truth.marker) {
    const unsigned char* glyph = p.truth.marker_letter == 'L' ? kGlyphL : kGlyphR;
    for (int gy = 0; gy < 7; ++gy) {
      for (int gx = 0; gx < 5; ++gx) {
        if (((glyph[gy] >> (4 - gx)) & 1) == 0) continue;
        for (int py = 0; py < p.marker_px; ++py) {
          for (int px = 0; px < p.marker_px; ++px) {
            const int yy = p.marker_y0 + gy * p.marker_px + py;
            const int xx = p.marker_x0 + gx * p.marker_px + px;
            if (yy < 0 || yy >= S || xx < 0 || xx >= S) continue;
            float& pix = out[static_cast<std::ptrdiff_t>(yy) * S + xx];
            pix = std::max(pix, p.marker_intensity);
          }
        }
      }
    }
  }
}

// Draws one image from its parameters: the density D per pixel (image, column and row terms
// precomputed), I = background + gain * D, then the marker, then the noise (the stream's last use).
void render(const PhantomOptions& o, const Params& p, CounterStream& rng, float* out) {
  const ImageTerms img = image_terms(o, p);
  const int S = img.S;
  const Columns c = column_terms(p, img);
  for (int y = 0; y < S; ++y) {
    const float v = (static_cast<float>(y) + 0.5f) * img.inv;
    const RowTerms at_y = row_terms(p, img, v);
    float* row = out + static_cast<std::ptrdiff_t>(y) * S;
    for (int x = 0; x < S; ++x) {
      const float D = pixel_density(p, img, c, at_y, static_cast<std::size_t>(x));
      row[x] = p.background + p.gain * D;
    }
  }
  stamp_marker(p, S, out);
  add_noise(rng, static_cast<float>(o.noise_std), out,
            static_cast<std::size_t>(S) * static_cast<std::size_t>(S));
}

}  // namespace

namespace phantom_detail {

// Image `index` of `split` with already-checked options.
PhantomTruth render_unchecked(const PhantomOptions& options, int split, std::int64_t index,
                              float* out) {
  CounterStream rng(options.seed, StreamPurpose::kPhantom, static_cast<std::uint32_t>(split),
                    static_cast<std::uint32_t>(index));
  Params p = draw_params(options, split, rng);
  // Age from its own stream (three uniforms, always drawn), after the label is known.
  CounterStream age_rng(options.seed, StreamPurpose::kPhantomAge, static_cast<std::uint32_t>(split),
                        static_cast<std::uint32_t>(index));
  const double u1 = age_rng.uniform(0.0, 1.0), u2 = age_rng.uniform(0.0, 1.0), pick = age_rng.uniform(0.0, 1.0);
  double w = u1;
  if (split == kTrainSplit && pick < options.age_bias) w = p.truth.label == 1 ? std::max(u1, u2) : std::min(u1, u2);
  p.truth.age = 20.0 + 70.0 * w;
  if (options.age_effect > 0.0) {  // an older heart is wider (0: the image is bit-identical)
    const auto f = static_cast<float>(1.0 + options.age_effect * (p.truth.age - 50.0) / 40.0);
    p.heart_rx_right *= f;
    p.heart_rx_left *= f;
  }
  render(options, p, rng, out);
  return p.truth;
}

}  // namespace phantom_detail

PhantomTruth render_phantom_image(const PhantomOptions& options, int split, std::int64_t index,
                                  float* out) {
  check_options(options);
  if (split != kTrainSplit && split != kTestSplit && split != kValSplit) {
    throw std::out_of_range("render_phantom_image: split " + std::to_string(split) +
                            " is not kTrainSplit, kTestSplit or kValSplit");
  }
  if (index < 0 || index > std::numeric_limits<std::uint32_t>::max()) {
    throw std::out_of_range("render_phantom_image: index " + std::to_string(index) +
                            " outside [0, 2^32)");
  }
  return phantom_detail::render_unchecked(options, split, index, out);
}

}  // namespace dne::data
