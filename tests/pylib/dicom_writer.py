"""A minimal DICOM writer for tests, independent of GDCM: one grayscale frame, explicit VR little
endian (transfer syntax 1.2.840.10008.1.2.1), 16-bit words. Enough for a decoder to apply
Rescale Slope/Intercept, a VOI window and MONOCHROME1 inversion."""
import struct

import numpy as np

EXPLICIT_LE = "1.2.840.10008.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _pad(value: bytes, vr: str) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB", "OW") else b" "
    return value


def _element(group, elem, vr, value: bytes) -> bytes:
    value = _pad(value, vr)
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def write_dicom(path, stored, photometric="MONOCHROME2", slope=None, intercept=None, window=None,
                bits_stored=16, signed=False):
    """Writes the 2-D integer array `stored` (the stored values) as a DICOM file at `path`."""
    stored = np.asarray(stored)
    rows, cols = stored.shape
    words = stored.astype("<i2" if signed else "<u2").tobytes()
    meta_body = (_element(0x0002, 0x0001, "OB", b"\0\1") +
                 _element(0x0002, 0x0002, "UI", SECONDARY_CAPTURE.encode()) +
                 _element(0x0002, 0x0003, "UI", b"1.2.3.4.5.6.7.8.9") +
                 _element(0x0002, 0x0010, "UI", EXPLICIT_LE.encode()))
    meta = _element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta_body))) + meta_body
    ds = (_element(0x0008, 0x0016, "UI", SECONDARY_CAPTURE.encode()) +
          _element(0x0008, 0x0018, "UI", b"1.2.3.4.5.6.7.8.9") +
          _element(0x0028, 0x0002, "US", struct.pack("<H", 1)) +
          _element(0x0028, 0x0004, "CS", photometric.encode()) +
          _element(0x0028, 0x0010, "US", struct.pack("<H", rows)) +
          _element(0x0028, 0x0011, "US", struct.pack("<H", cols)) +
          _element(0x0028, 0x0100, "US", struct.pack("<H", 16)) +
          _element(0x0028, 0x0101, "US", struct.pack("<H", bits_stored)) +
          _element(0x0028, 0x0102, "US", struct.pack("<H", bits_stored - 1)) +
          _element(0x0028, 0x0103, "US", struct.pack("<H", 1 if signed else 0)))
    if window is not None:
        ds += (_element(0x0028, 0x1050, "DS", str(window[0]).encode()) +
               _element(0x0028, 0x1051, "DS", str(window[1]).encode()))
    if intercept is not None:
        ds += _element(0x0028, 0x1052, "DS", str(intercept).encode())
    if slope is not None:
        ds += _element(0x0028, 0x1053, "DS", str(slope).encode())
    ds += _element(0x7FE0, 0x0010, "OW", words)
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + meta + ds)
