// DICOM decoding for dne-sweep (through GDCM) to the same grayscale [0, 1] images as image_io.
//
// Chest X-ray archives (MIMIC-CXR, VinDr-CXR, RSNA, ...) ship DICOM Part-10 files, often with
// compressed pixel data (JPEG lossless / baseline, JPEG 2000, JPEG-LS, RLE), MONOCHROME1 polarity,
// 12-16 stored bits, rescale and window attributes. `read_dicom` turns one such file into the
// (H, W) row-major float image the rest of the pipeline uses, with the display polarity of
// MONOCHROME2 (air dark, bone bright) whatever the file's photometric interpretation.
// GDCM is an implementation detail of dicom.cpp: no GDCM header is visible from here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dne/config/config.hpp"

namespace dne::data {

/// True when the file at `path` is a DICOM Part-10 file: at least 132 bytes with the magic "DICM"
/// at byte offset 128 (after the 128-byte preamble). False for missing, unreadable or short files;
/// never throws.
bool is_dicom(const std::string& path);

/// Decodes the single-frame grayscale DICOM file at `path` (any transfer syntax GDCM decodes:
/// implicit/explicit VR little or big endian, deflate, RLE, JPEG baseline/extended/lossless,
/// JPEG-LS, JPEG 2000). Returns (height, width) = (Rows, Columns) row-major values in [0, 1] and sets
/// `height` / `width`. Per pixel:
///   1. stored value s: the BitsStored bits ending at HighBit of each BitsAllocated (8, 16 or 32)
///      sample, two's complement when PixelRepresentation = 1 (bits outside are ignored);
///   2. modality value m = s * RescaleSlope (0028,1053) + RescaleIntercept (0028,1052)
///      (defaults 1 and 0; the first value of each is used);
///   3. with a Window Center c (0028,1050) and Window Width w (0028,1051) (first pair, w >= 1) the
///      linear VOI function of PS3.3 C.11.2.1.2.1: v = 0 for m <= c - 0.5 - (w - 1) / 2,
///      v = 1 for m > c - 0.5 + (w - 1) / 2, else v = (m - (c - 0.5)) / (w - 1) + 0.5;
///      otherwise (no window, or w < 1) min-max over the image:
///      v = (m - min) / (max - min), and v = 0 everywhere for a constant image;
///   4. PhotometricInterpretation MONOCHROME1: v -> 1 - v (so a constant MONOCHROME1 image
///      without a window gives 1 everywhere); MONOCHROME2 is kept as is.
/// Computed in double, returned as float. Before GDCM sees the file, its element structure is
/// walked (headers only): a truncated file (a cut header, or a length past the end of the file) or
/// an unsupported transfer syntax (video, JPIP, private, unknown) is refused there, because
/// Debian's GDCM is built with assertions and aborts the process on most truncated files.
/// Throws dne::DataError naming `path` and the reason when the file cannot be opened, has no
/// "DICM" magic (not DICOM), is truncated or malformed, has an unsupported transfer syntax, GDCM
/// cannot parse it or decode its pixel data, a rescale or window value is not a number, or the
/// image is multi-frame, colour (SamplesPerPixel != 1 or a photometric interpretation other than
/// MONOCHROME1/2), has BitsAllocated other than 8, 16, 32, or a size outside [1, 32768] per side.
/// Not applied: VOI LUT sequences (0028,3010), VOI LUT Function SIGMOID, Presentation LUT Shape.
/// `max_pixels`: a larger Rows x Columns is refused before the pixel data is decoded.
std::vector<float> read_dicom(const std::string& path, std::int64_t& height, std::int64_t& width,
                              std::int64_t max_pixels = config::defaults().data.max_pixels);

/// Silences GDCM's warning and debug messages on stderr (a process-wide GDCM setting, made once
/// at start-up by `main`): problems reach the user as one dne::DataError line instead.
void silence_dicom_library_messages();

}  // namespace dne::data
