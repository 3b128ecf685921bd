"""Renderer and offline-pipeline throughput on this machine.

    .venv/bin/python -P benchmarks/bench_render.py [--portrait IMG] [--frames N] [--repeats R]

Prints frames per second of FaceRenderer.render() (pose + draw + read-back, no encoding)
at 256, 512 and 1024 px: the median over R passes of N frames, with the slowest and
fastest pass (a shared machine's neighbours come and go), and of the whole offline
pipeline at 512 px (features, motion, rendering and H.264/AAC encoding). Speed is
measured here, never in the tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vasa_nodes.core.audio import Audio
from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.pipeline import GenerateSettings, motion_for_audio, write_video
from vasa_nodes.core.portrait import FaceFitter, load_portrait
from vasa_nodes.core.renderer import FaceRenderer

REPO = Path(__file__).resolve().parents[1]


def varied_motion(n: int) -> list[MotionFrame]:
    """Frames that exercise jaw, lips, blinks, head pose and gaze."""
    frames = []
    for i in range(n):
        m = MotionFrame.neutral(i).with_blendshapes(jawOpen=0.5 + 0.5 * np.sin(i / 3), mouthSmileLeft=0.3,
                                                    eyeBlinkLeft=float(i % 40 < 4), eyeBlinkRight=float(i % 40 < 4))
        m.head_rotation[:] = np.radians([8 * np.sin(i / 17), 5 * np.sin(i / 23), 3 * np.sin(i / 29)])
        m.gaze[:] = [0.2 * np.sin(i / 11), 0.1 * np.sin(i / 13)]
        frames.append(m)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portrait", default=str(REPO / "samples" / "astronaut.png"))
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="passes per size (default 5)")
    args = parser.parse_args()
    motion = varied_motion(args.frames)
    fitter = FaceFitter()
    renderer = None
    for size in (256, 512, 1024):
        renderer = FaceRenderer(load_portrait(args.portrait, size, fitter))
        renderer.render(motion[0])
        rates = []
        for _ in range(max(1, args.repeats)):
            start = time.perf_counter()
            for m in motion:
                renderer.render(m)
            rates.append(args.frames / (time.perf_counter() - start))
        rate = float(np.median(rates))
        print(f"render {size:4d}x{size:<4d}: {rate:7.1f} frames/s ({1000 / rate:.2f} ms/frame; passes "
              f"{min(rates):.0f}-{max(rates):.0f}) on {renderer.gl_renderer}")
        renderer.close()

    portrait = load_portrait(args.portrait, 512, fitter)
    seconds = args.frames / 25
    t = np.arange(int(seconds * 16000)) / 16000
    speech_like = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    audio = Audio(speech_like)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        frames = motion_for_audio(audio, GenerateSettings())
        mid = time.perf_counter()
        write_video(portrait, frames, audio, str(Path(tmp) / "bench.mp4"), 25)
        end = time.perf_counter()
    print(f"offline 512x512 @25 fps: features+motion {len(frames) / (mid - start):8.1f} frames/s, "
          f"total with render+encode {len(frames) / (end - start):6.1f} frames/s "
          f"({seconds:.0f} s of audio in {end - start:.1f} s)")
    fitter.close()


if __name__ == "__main__":
    main()
