// Grayscale image file I/O and resampling for dne-sweep (stb_image / stb_image_write; DICOM
// through GDCM, dicom.hpp).
//
// Images are float (H, W) row-major arrays with values in [0, 1]. Reading accepts DICOM Part-10
// files (recognised by content, `is_dicom`; decoded by `read_dicom`) and anything stb_image decodes
// (PNG 8/16-bit, JPEG, BMP, ...): colour is converted to luminance (stb's 0.299 R + 0.587 G +
// 0.114 B in integer arithmetic), alpha ignored, 16-bit samples scaled by 1/65535 and 8-bit by
// 1/255. Writing produces 8-bit grayscale PNG. `resize_bilinear` is a separable triangle (bilinear)
// filter with half-pixel centres; when shrinking, the triangle is widened by the scale factor
// (anti-aliased, like PyTorch's `antialias=True`), so downsampling a 1024-pixel radiograph to 64
// pixels averages instead of aliasing. `fit_square` brings any (H, W) image to (S, S): stretched,
// centre-cropped or padded (`data.resize`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dne/config/config.hpp"
#include "dne/data/dataset.hpp"

namespace dne::data {

/// Decodes the image at `path` to luminance in [0, 1]: returns (height, width) row-major pixels and
/// sets `height` / `width`. A file with the DICOM magic (`is_dicom`) goes to `read_dicom` (GDCM:
/// rescale, window or min-max, MONOCHROME1 flipped; see dicom.hpp) whatever its extension;
/// anything else to stb_image (PNG 8/16-bit, JPEG, BMP, ...). Throws dne::DataError naming the path
/// if the file is missing, unreadable, empty or not decodable, and without decoding it if its
/// header claims more than `max_pixels` pixels (a small file can claim 20000 x 20000; the default,
/// data.max_pixels's, is 50 M = 7071 x 7071, above every chest X-ray and mammogram format).
std::vector<float> read_grayscale_image(const std::string& path, std::int64_t& height, std::int64_t& width,
                                        std::int64_t max_pixels = config::defaults().data.max_pixels);

/// Bits per sample of the image at `path` as read_grayscale_image decodes it, from its header
/// alone: 16 for DICOM (the VOI window gives a continuous value) and 16-bit PNG / PNM, 8 for
/// anything else (JPEG, 8-bit PNG, BMP, ...) and for a file whose header is not recognised
/// (decoding then reports it). Throws dne::DataError if the file cannot be opened.
int image_sample_bits(const std::string& path);

/// Writes (height, width) row-major `pixels` as an 8-bit grayscale PNG: each value clamped to
/// [0, 1] (NaN -> 0) and rounded to the nearest of 0..255. Throws dne::StoreError naming the path
/// if it cannot be written, dne::DataError for non-positive sizes.
void write_grayscale_png(const std::string& path, const float* pixels, std::int64_t height,
                         std::int64_t width);

/// Resamples (h, w) -> (out_h, out_w), returned row-major. Output pixel centre (i + 0.5) maps to
/// source coordinate (i + 0.5) * h / out_h; weights are the triangle filter of half-width
/// max(1, h / out_h) source pixels, renormalised over the pixels inside the image (edges clamp).
/// Upsampling therefore equals standard half-pixel bilinear interpolation; a constant image stays
/// constant. Throws dne::DataError for non-positive sizes.
std::vector<float> resize_bilinear(const float* pixels, std::int64_t h, std::int64_t w,
                                   std::int64_t out_h, std::int64_t out_w);

/// How `fit_square` brings a non-square image to a square (config key `data.resize`).
enum class ResizeMode {
  kStretch,  ///< "stretch": resize to (S, S), aspect ratio not kept
  kCrop,     ///< "crop": aspect kept, the short side fills S, the long side centre-cropped
  kPad,      ///< "pad": aspect kept, the long side fills S, the short side centred on black
};

/// "stretch" -> kStretch, "crop" -> kCrop, "pad" -> kPad (exact, lower case). Throws
/// dne::ConfigError naming `data.resize` and the accepted names for anything else.
ResizeMode parse_resize_mode(const std::string& name);

/// Returns the (size, size) row-major image made from the (h, w) `pixels`. With short / long the
/// shorter / longer of h and w, and round(a / b) = floor((2a + b) / (2b)) (halves up, integers):
///   kStretch: resize_bilinear to (size, size);
///   kCrop: resize_bilinear with the short side to size and the long side to
///     L = round(size * long / short) (>= size), then the centre (size, size) window: of the
///     L - size excess, floor(excess / 2) is dropped at the top/left and the rest (one more when
///     the excess is odd) at the bottom/right;
///   kPad: resize_bilinear with the long side to size and the short side to
///     L = max(1, round(size * short / long)) (<= size), then placed on a (size, size) canvas of
///     zeros (black) at offset floor((size - L) / 2) from the top/left, so the odd extra zero
///     row/column is at the bottom/right.
/// A square input is just resized to (size, size) in every mode; an input already (size, size) is
/// returned unchanged. Throws dne::DataError for h, w or size outside [1, 32768].
std::vector<float> fit_square(const float* pixels, std::int64_t h, std::int64_t w,
                              std::int64_t size, ResizeMode mode);

/// Writes a grid of images from `set` (in the order of `indices`, `columns` per row, each
/// magnified `scale` times by pixel replication) separated by 2-pixel white lines, as an 8-bit
/// PNG of size (rows * H * scale + 2 * (rows - 1), columns * W * scale + 2 * (columns - 1)).
/// Throws dne::DataError for an empty or out-of-range index list or columns / scale < 1.
void write_montage(const std::string& path, const ImageSet& set,
                   const std::vector<std::int64_t>& indices, int columns, int scale);

}  // namespace dne::data
