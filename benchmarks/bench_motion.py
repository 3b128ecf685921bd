"""Motion model speed on this machine: offline throughput and streaming latency.

    .venv/bin/python -P benchmarks/bench_motion.py [--model MODEL.onnx] [--lip-seal DETECTOR.onnx|none]
        [--audio SPEECH] [--steps 4] [--lookahead 1] [--no-ahead]

Offline: motion frames per second of DiffusionMotionGenerator.generate() over a minute of
speech (features excluded and reported apart), with the lip seal as the product runs it.
Streaming: the audio is played in real time in 20 ms chunks through the streaming feature
extractor and generator, the last look-ahead frame taken ahead of time as the live graph
does (`--no-ahead`: waiting for it to be complete); reported is the time from the arrival of the first chunk until
the first motion frame is ready, and for every frame the time from the arrival of the
audio it waits for (its own frame and the look-ahead) until it is ready. Speed is
measured here, never in the tests.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vasa_nodes.core.acoustic_opening import DEFAULT_WEIGHT as DEFAULT_ACOUSTIC_OPENING, load_opening_model
from vasa_nodes.core.audio import SAMPLE_RATE, load_audio
from vasa_nodes.core.features import StreamingFeatureExtractor, compute_features
from vasa_nodes.core.lip_seal import load_lip_seal
from vasa_nodes.core.motion_model import DEFAULT_MODEL, DiffusionMotionGenerator, MotionModel
from vasa_nodes.core.tts import synthesize

CHUNK = 320  # 20 ms


def speech(seconds: float, path: str | None) -> np.ndarray:
    if path:
        x = load_audio(path).samples
    else:
        import soxr

        s = synthesize("Peter and Maria bought a bright blue boat, and sailed to the island at noon. " * 3)
        x = soxr.resample(s.samples, s.sample_rate, SAMPLE_RATE).astype(np.float32)
    return np.tile(x, int(np.ceil(seconds * SAMPLE_RATE / len(x))))[:int(seconds * SAMPLE_RATE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--audio", help="speech file (default: synthesised English)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--trials", type=int, default=10, help="streaming trials of 4 s each")
    parser.add_argument("--lookahead", type=int, default=1, help="frames of look-ahead in streaming (default 1)")
    parser.add_argument("--lip-seal", default="", help="lip-seal detector, or 'none' (default: the shipped one)")
    parser.add_argument("--acoustic-opening", type=float, default=DEFAULT_ACOUSTIC_OPENING, metavar="W",
                        help=f"weight of the opening heard in the sound (0: off; default {DEFAULT_ACOUSTIC_OPENING:g})")
    parser.add_argument("--opening-model", default="",
                        help="mouth-opening model, or 'band' for the 2-4 kHz band (default: the shipped one)")
    parser.add_argument("--no-ahead", action="store_true",
                        help="streaming: wait for each look-ahead frame to be complete instead of taking it ahead of "
                             "time (StreamingFeatureExtractor.peek), as the live graph does")
    args = parser.parse_args()
    model = MotionModel(args.model, steps=args.steps)
    seal = load_lip_seal(args.lip_seal)
    heard = load_opening_model(args.opening_model)
    print(f"model {args.model} on {model.provider}, {args.steps} steps, lip seal {'off' if seal is None else 'on'}, "
          f"acoustic opening {args.acoustic_opening:g} ({'2-4 kHz band' if heard is None else 'mouth-opening model'})")
    x = speech(60.0, args.audio)

    t = time.perf_counter()
    feats = compute_features(x)
    t_feat = time.perf_counter() - t
    gen = DiffusionMotionGenerator(model, seed=0, lip_seal=seal, acoustic_opening=args.acoustic_opening,
                                   opening_model=heard)
    gen.generate(compute_features(x[:SAMPLE_RATE]))  # warm-up
    gen.reset()
    t = time.perf_counter()
    frames = gen.generate(feats)
    t_gen = time.perf_counter() - t
    print(f"offline: {len(frames)} frames in {t_gen:.2f} s = {len(frames) / t_gen:.0f} motion frames/s "
          f"(features: {len(frames) / t_feat:.0f} frames/s)")

    first, per_frame = [], []
    window_tail = 0 if args.lookahead > 0 and not args.no_ahead else 192
    clip = x[:4 * SAMPLE_RATE]
    for trial in range(args.trials):
        extractor = StreamingFeatureExtractor(25.0)
        gen = DiffusionMotionGenerator(model, seed=trial, lookahead_frames=args.lookahead, lip_seal=seal,
                                       acoustic_opening=args.acoustic_opening, opening_model=heard)
        start = time.perf_counter()  # the first chunk arrives at start
        got = 0
        for k in range(0, len(clip) // CHUNK):
            arrival = start + k * CHUNK / SAMPLE_RATE
            while time.perf_counter() < arrival:
                time.sleep(max(0.0, arrival - time.perf_counter()))
            frames = extractor.push(clip[k * CHUNK:(k + 1) * CHUNK])
            for f in gen.push(frames, None if args.no_ahead else extractor.peek()):
                ready = time.perf_counter()
                if got == 0:
                    first.append(ready - start)
                # Frame f waits for audio up to the end of frame f + look-ahead, plus the feature
                # window's look-ahead (192 samples) unless the last look-ahead frame is taken
                # ahead of time: that sample arrives with its chunk.
                needed = (f.frame_index + 1 + args.lookahead) * 640 + window_tail
                needed_arrival = start + (int(np.ceil(needed / CHUNK)) - 1) * CHUNK / SAMPLE_RATE
                per_frame.append(ready - needed_arrival)
                got += 1
    first_ms, per_ms = 1000 * np.array(first), 1000 * np.array(per_frame)
    print(f"streaming: first motion frame ready {np.median(first_ms):.0f} ms (max {first_ms.max():.0f}) after the "
          f"first 20 ms chunk arrived; each frame {np.median(per_ms):.1f} ms (p95 {np.percentile(per_ms, 95):.1f}) "
          f"after the audio it waits for; {len(per_ms)} frames over {args.trials} trials")


if __name__ == "__main__":
    main()
