"""JPEG encoding of rendered frames, as face_renderer does for /vasa/image/compressed.

    .venv/bin/python -P benchmarks/bench_jpeg.py [--portrait IMG] [--size N] [--frames N]

Prints, per quality, the median and 90th percentile time of core.jpeg.encode_jpeg() on
rendered (watermarked) frames of varied motion, the mean size of a frame, and its PSNR
against the raw frame. Speed is measured here, never in the tests.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vasa_nodes.core.jpeg import decode_jpeg, encode_jpeg
from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.portrait import load_portrait
from vasa_nodes.core.renderer import FaceRenderer
from vasa_nodes.core.watermark import Watermarker

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--portrait", default=str(REPO / "samples" / "astronaut.png"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=50, help="distinct rendered frames, each encoded 8 times")
    args = p.parse_args()
    renderer = FaceRenderer(load_portrait(args.portrait, args.size), watermark=Watermarker())
    frames = []
    for k in range(args.frames):
        f = MotionFrame.neutral(k).with_blendshapes(jawOpen=0.3 + 0.3 * np.sin(k / 3.0))
        f.head_rotation[:] = [0.1 * np.sin(k / 7.0), 0.05 * np.cos(k / 5.0), 0.0]
        frames.append(renderer.render(f))
    renderer.close()
    print(f"{args.size}x{args.size}, {args.frames} frames x 8 (raw frame: {frames[0].nbytes / 1000:.0f} kB)")
    print("quality  median ms  p90 ms  kB/frame  PSNR dB")
    for quality in (50, 75, 90, 95):
        times, sizes, psnrs = [], [], []
        for rgb in frames:
            for _ in range(8):
                start = time.perf_counter()
                data = encode_jpeg(rgb, quality)
                times.append(time.perf_counter() - start)
            sizes.append(len(data))
            mse = np.mean((decode_jpeg(data).astype(np.float64) - rgb) ** 2)
            psnrs.append(10 * np.log10(255.0 ** 2 / mse))
        print(f"{quality:7d}  {1000 * np.median(times):9.2f}  {1000 * np.percentile(times, 90):6.2f}  "
              f"{np.mean(sizes) / 1000:8.1f}  {np.mean(psnrs):7.1f}")


if __name__ == "__main__":
    main()
