"""Independent display values of a DICOM file with pydicom + numpy.

usage: dicom_reference.py IN.dcm OUT.f32
Writes rows*cols little-endian float32 values in [0, 1]: modality values
(RescaleSlope/Intercept), then the linear VOI window of the file's first
WindowCenter/WindowWidth (PS3.3 C.11.2.1.2.1) or min..max, MONOCHROME1
inverted.
"""
import sys

import numpy as np
import pydicom


def first(v):
    if v is None:
        return None
    if isinstance(v, pydicom.multival.MultiValue):
        return float(v[0])
    return float(v)


def main(src, dst):
    ds = pydicom.dcmread(src)
    m = ds.pixel_array.astype(np.float64)
    m = m * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    wc, ww = first(ds.get("WindowCenter")), first(ds.get("WindowWidth"))
    if wc is not None and ww is not None and ww >= 1:
        c, w = wc - 0.5, ww - 1
        y = np.clip((m - c) / w + 0.5, 0, 1) if w > 0 else (m > c).astype(float)
    else:
        lo, hi = m.min(), m.max()
        y = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 1 - y
    y.astype("<f4").tofile(dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
