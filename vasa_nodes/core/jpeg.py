"""JPEG for the compressed image stream (libjpeg-turbo through OpenCV).

OpenCV's encoder took 0.72 ms per 512² frame at quality 90 on the 2-core host (median of
400), simplejpeg 1.05 ms: OpenCV is kept, and it is already a dependency
(benchmarks/bench_jpeg.py measures it).
"""

from __future__ import annotations

import cv2
import numpy as np

# sensor_msgs/CompressedImage.format as image_transport's compressed plugin writes it for an
# rgb8 image: the raw encoding, then how it was compressed (JPEG holds colour as bgr8 there).
RGB8_JPEG_FORMAT = "rgb8; jpeg compressed bgr8"


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """An (H, W, 3) uint8 RGB image as baseline JPEG, quality 1-100."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes as an (H, W, 3) uint8 RGB image; ValueError if they are not a JPEG image."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable JPEG image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
