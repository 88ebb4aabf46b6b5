// PNG/JPEG decoding (DICOM handed to dicom.cpp), 8-bit PNG writing, anti-aliased bilinear
// resizing, square fitting and image montages (see image_io.hpp). stb's implementations come from
// Debian's libstb (link -lstb); this file only includes the declarations.
#include "dne/data/image_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "dne/core/errors.hpp"
#include "dne/data/dicom.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace dne::data {
namespace {

constexpr std::int64_t kMaxSide = 1 << 15;  // refuse absurd sizes (32768 pixels per side)

void check_size(std::int64_t h, std::int64_t w, const char* what) {
  if (h <= 0 || w <= 0 || h > kMaxSide || w > kMaxSide) {
    throw DataError(std::string(what) + ": image size " + std::to_string(h) + "x" +
                    std::to_string(w) + " must be in [1, " + std::to_string(kMaxSide) + "]");
  }
}

std::uint8_t to_byte(float x) {
  if (!(x > 0.f)) return 0;  // also NaN
  if (x >= 1.f) return 255;
  return static_cast<std::uint8_t>(std::lround(x * 255.f));
}

void write_png_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes,
                     std::int64_t height, std::int64_t width) {
  // Encoded in memory and written here: stbi_write_png ignores fwrite's and fclose's errors, so a
  // full disk gave empty PNGs and success. Every write is checked, and a failed file removed.
  std::string png;
  const int ok = stbi_write_png_to_func(
      [](void* context, void* data, int size) { static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<std::size_t>(size)); },
      &png, static_cast<int>(width), static_cast<int>(height), 1, bytes.data(), static_cast<int>(width));
  if (ok == 0 || png.empty()) throw StoreError("cannot encode PNG '" + path + "'");
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(png.data(), static_cast<std::streamsize>(png.size()));
  if (out) out.close();
  if (!out) {
    const std::string why = errno != 0 ? std::strerror(errno) : "write failed";
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    throw StoreError("cannot write PNG '" + path + "': " + why);
  }
}

// Filter taps of one axis: for each output index, the first source index and its weights.
struct Taps {
  std::vector<std::int64_t> first;         // (out,)
  std::vector<std::vector<float>> weight;  // (out, taps)
};

std::string failure_reason() {
  const char* r = stbi_failure_reason();
  return r != nullptr ? r : "unknown reason";
}

Taps make_taps(std::int64_t in, std::int64_t out) {
  Taps t;
  t.first.resize(static_cast<std::size_t>(out));
  t.weight.resize(static_cast<std::size_t>(out));
  const double ratio =
      static_cast<double>(in) / static_cast<double>(out);  // source px per output px
  const double support = std::max(1.0, ratio);             // triangle half-width in source pixels
  for (std::int64_t i = 0; i < out; ++i) {
    const double centre = (static_cast<double>(i) + 0.5) * ratio;  // in source pixel units
    auto lo = static_cast<std::int64_t>(std::floor(centre - support));
    auto hi = static_cast<std::int64_t>(std::ceil(centre + support));
    lo = std::max<std::int64_t>(lo, 0);
    hi = std::min<std::int64_t>(hi, in);  // exclusive
    std::vector<double> w;
    double sum = 0.0;
    for (std::int64_t j = lo; j < hi; ++j) {
      const double d = std::fabs(static_cast<double>(j) + 0.5 - centre) / support;
      const double wt = std::max(0.0, 1.0 - d);
      w.push_back(wt);
      sum += wt;
    }
    if (sum <= 0.0) {  // cannot happen for in >= 1, but keep the weights well defined
      lo = std::min<std::int64_t>(static_cast<std::int64_t>(centre), in - 1);
      w.assign(1, 1.0);
      sum = 1.0;
    }
    auto& row = t.weight[static_cast<std::size_t>(i)];
    row.reserve(w.size());
    for (double wt : w) row.push_back(static_cast<float>(wt / sum));
    t.first[static_cast<std::size_t>(i)] = lo;
  }
  return t;
}

}  // namespace

std::vector<float> read_grayscale_image(const std::string& path, std::int64_t& height,
                                        std::int64_t& width, std::int64_t max_pixels) {
  if (is_dicom(path)) return read_dicom(path, height, width, max_pixels);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open image '" + path + "'");
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                         std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError("cannot read image '" + path + "'");
  if (bytes.empty()) throw DataError("image '" + path + "' is empty");
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw DataError("image '" + path + "' is too large");
  }
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, channels = 0;
  if (stbi_info_from_memory(bytes.data(), len, &w, &h, &channels) != 0 &&
      static_cast<std::int64_t>(w) * h > max_pixels)
    throw DataError("image '" + path + "' is " + std::to_string(w) + "x" + std::to_string(h) + " = " +
                    std::to_string(static_cast<std::int64_t>(w) * h) + " pixels by its header, over data.max_pixels = " +
                    std::to_string(max_pixels) + " (not decoded)");
  std::vector<float> out;
  if (stbi_is_16_bit_from_memory(bytes.data(), len) != 0) {
    stbi_us* data = stbi_load_16_from_memory(bytes.data(), len, &w, &h, &channels, 1);
    if (data == nullptr) {
      throw DataError("cannot decode image '" + path + "': " + failure_reason());
    }
    out.resize(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(data[i]) / 65535.f;
    stbi_image_free(data);
  } else {
    stbi_uc* data = stbi_load_from_memory(bytes.data(), len, &w, &h, &channels, 1);
    if (data == nullptr) {
      throw DataError("cannot decode image '" + path + "': " + failure_reason());
    }
    out.resize(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(data[i]) / 255.f;
    stbi_image_free(data);
  }
  if (w <= 0 || h <= 0) throw DataError("image '" + path + "' has no pixels");
  height = h;
  width = w;
  return out;
}

int image_sample_bits(const std::string& path) {
  if (is_dicom(path)) return 16;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw DataError("cannot open image '" + path + "'");
  const int sixteen = stbi_is_16_bit_from_file(f);
  std::fclose(f);
  return sixteen != 0 ? 16 : 8;
}

void write_grayscale_png(const std::string& path, const float* pixels, std::int64_t height,
                         std::int64_t width) {
  check_size(height, width, ("write_grayscale_png '" + path + "'").c_str());
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(height * width));
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = to_byte(pixels[i]);
  write_png_bytes(path, bytes, height, width);
}

std::vector<float> resize_bilinear(const float* pixels, std::int64_t h, std::int64_t w,
                                   std::int64_t out_h, std::int64_t out_w) {
  check_size(h, w, "resize_bilinear input");
  check_size(out_h, out_w, "resize_bilinear output");
  if (h == out_h && w == out_w) return std::vector<float>(pixels, pixels + h * w);
  const Taps tx = make_taps(w, out_w);
  const Taps ty = make_taps(h, out_h);
  // horizontal pass: (h, w) -> (h, out_w)
  std::vector<float> tmp(static_cast<std::size_t>(h * out_w));
  for (std::int64_t y = 0; y < h; ++y) {
    const float* src = pixels + y * w;
    float* dst = tmp.data() + y * out_w;
    for (std::int64_t x = 0; x < out_w; ++x) {
      const auto& wt = tx.weight[static_cast<std::size_t>(x)];
      const float* s = src + tx.first[static_cast<std::size_t>(x)];
      float acc = 0.f;
      for (std::size_t k = 0; k < wt.size(); ++k) acc += wt[k] * s[k];
      dst[x] = acc;
    }
  }
  // vertical pass: (h, out_w) -> (out_h, out_w)
  std::vector<float> out(static_cast<std::size_t>(out_h * out_w), 0.f);
  for (std::int64_t y = 0; y < out_h; ++y) {
    const auto& wt = ty.weight[static_cast<std::size_t>(y)];
    const std::int64_t first = ty.first[static_cast<std::size_t>(y)];
    float* dst = out.data() + y * out_w;
    for (std::size_t k = 0; k < wt.size(); ++k) {
      const float* src = tmp.data() + (first + static_cast<std::int64_t>(k)) * out_w;
      for (std::int64_t x = 0; x < out_w; ++x) dst[x] += wt[k] * src[x];
    }
  }
  return out;
}

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "stretch") return ResizeMode::kStretch;
  if (name == "crop") return ResizeMode::kCrop;
  if (name == "pad") return ResizeMode::kPad;
  throw ConfigError("data.resize: unknown mode '" + name + "' (expected stretch, crop or pad)");
}

std::vector<float> fit_square(const float* pixels, std::int64_t h, std::int64_t w,
                              std::int64_t size, ResizeMode mode) {
  check_size(h, w, "fit_square input");
  check_size(size, size, "fit_square output");
  if (h == w || mode == ResizeMode::kStretch) return resize_bilinear(pixels, h, w, size, size);
  const std::int64_t shorter = std::min(h, w), longer = std::max(h, w);
  const auto round_div = [](std::int64_t a, std::int64_t b) { return (2 * a + b) / (2 * b); };
  if (mode == ResizeMode::kCrop) {
    const std::int64_t len = round_div(size * longer, shorter);  // >= size
    const std::int64_t rh = h < w ? size : len, rw = h < w ? len : size;
    check_size(rh, rw, "fit_square (crop) intermediate");
    const std::vector<float> scaled = resize_bilinear(pixels, h, w, rh, rw);  // (rh, rw)
    const std::int64_t top = (rh - size) / 2, left = (rw - size) / 2;
    std::vector<float> out(static_cast<std::size_t>(size * size));  // (size, size)
    for (std::int64_t y = 0; y < size; ++y) {
      std::copy_n(scaled.begin() + (top + y) * rw + left, size, out.begin() + y * size);
    }
    return out;
  }
  const std::int64_t len = std::max<std::int64_t>(1, round_div(size * shorter, longer));  // <= size
  const std::int64_t rh = h < w ? len : size, rw = h < w ? size : len;
  const std::vector<float> scaled = resize_bilinear(pixels, h, w, rh, rw);  // (rh, rw)
  const std::int64_t top = (size - rh) / 2, left = (size - rw) / 2;
  std::vector<float> out(static_cast<std::size_t>(size * size), 0.f);  // (size, size), black
  for (std::int64_t y = 0; y < rh; ++y) {
    std::copy_n(scaled.begin() + y * rw, rw, out.begin() + (top + y) * size + left);
  }
  return out;
}

void write_montage(const std::string& path, const ImageSet& set,
                   const std::vector<std::int64_t>& indices, int columns, int scale) {
  if (indices.empty()) throw DataError("montage '" + path + "': no images selected");
  if (columns < 1) throw DataError("montage '" + path + "': columns must be >= 1");
  if (scale < 1) throw DataError("montage '" + path + "': scale must be >= 1");
  for (std::int64_t i : indices) {
    if (i < 0 || i >= set.size()) {
      throw DataError("montage '" + path + "': image index " + std::to_string(i) + " outside [0, " +
                      std::to_string(set.size()) + ")");
    }
  }
  constexpr std::int64_t kSep = 2;
  const std::int64_t n = static_cast<std::int64_t>(indices.size());
  const std::int64_t cols = std::min<std::int64_t>(columns, n);
  const std::int64_t rows = (n + cols - 1) / cols;
  const std::int64_t th = set.height * scale, tw = set.width * scale;  // tile size
  const std::int64_t mh = rows * th + (rows - 1) * kSep, mw = cols * tw + (cols - 1) * kSep;
  check_size(mh, mw, ("montage '" + path + "'").c_str());
  std::vector<std::uint8_t> canvas(static_cast<std::size_t>(mh * mw), 255);  // separators white
  for (std::int64_t k = 0; k < n; ++k) {
    const float* img = set.image(indices[static_cast<std::size_t>(k)]);
    const std::int64_t oy = (k / cols) * (th + kSep), ox = (k % cols) * (tw + kSep);
    for (std::int64_t y = 0; y < th; ++y) {
      for (std::int64_t x = 0; x < tw; ++x) {
        canvas[static_cast<std::size_t>((oy + y) * mw + ox + x)] =
            to_byte(img[(y / scale) * set.width + x / scale]);
      }
    }
  }
  // unused cells of the last row stay black
  for (std::int64_t k = n; k < rows * cols; ++k) {
    const std::int64_t oy = (k / cols) * (th + kSep), ox = (k % cols) * (tw + kSep);
    for (std::int64_t y = 0; y < th; ++y) {
      std::fill_n(canvas.begin() + (oy + y) * mw + ox, tw, std::uint8_t{0});
    }
  }
  write_png_bytes(path, canvas, mh, mw);
}

}  // namespace dne::data
