"""End-to-end latency of the live graph: speech in on /vasa/audio_in -> face image out on /vasa/image.

    .venv/bin/python -P benchmarks/bench_latency.py [--seconds 10] [--size 512]

Starts the five nodes with vasa-avatar, streams synthetic speech in real time in 20 ms
chunks, and for each image of the speech stream reports how long after the end of that
frame's audio (its stamp + 1/fps, on the shared clock) the image arrived. Measured here,
never in the tests.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from sensor_msgs.msg import Image

from vasa_nodes.msg import AudioChunk
from vasa_nodes.nodes.common import IMAGE_QOS, STREAM_QOS, to_ns, to_time

REPO = Path(__file__).resolve().parents[1]


def speech_like(seconds: float) -> np.ndarray:
    """Syllable-rate modulated harmonics: enough to drive the mouth, no TTS needed."""
    t = np.arange(int(seconds * 16000)) / 16000
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700, 1100, 1800), 1))
    return (0.15 * voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    graph = subprocess.Popen([str(Path(sys.prefix) / "bin" / "vasa-avatar"), "--portrait",
                              str(REPO / "samples" / "astronaut.png"), "--size", str(args.size), "--log-level", "warn"])
    rclpy.init()
    node = rclpy.create_node("latency_probe")
    arrivals: dict[int, int] = {}
    node.create_subscription(Image, "/vasa/image",
                             lambda m: arrivals.setdefault(to_ns(m.header.stamp), time.time_ns()), IMAGE_QOS)
    pub = node.create_publisher(AudioChunk, "/vasa/audio_in", STREAM_QOS)
    try:
        start = time.monotonic()  # wait until the renderer is up (idle frames arrive)
        while not arrivals and time.monotonic() - start < 60:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not arrivals:
            sys.exit("no images from the graph within 60 s")
        audio = speech_like(args.seconds)
        chunk = 320
        t0 = time.time_ns()
        for k, offset in enumerate(range(0, len(audio), chunk)):
            due = t0 + int(k * chunk / 16000 * 1e9)
            while time.time_ns() < due:
                rclpy.spin_once(node, timeout_sec=max(0.0, (due - time.time_ns()) / 1e9))
            last = offset + chunk >= len(audio)
            msg = AudioChunk(sample_rate=16000, sample_offset=offset, samples=audio[offset:offset + chunk],
                             end_of_stream=last)
            msg.header.stamp = to_time(t0)  # the stream's sample 0 plays at t0
            pub.publish(msg)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        graph.send_signal(signal.SIGINT)
        graph.wait(20)

    period = 1e9 / 25
    frames = int(np.ceil(args.seconds * 25))
    lat = [(arrivals[s] - (s + period)) / 1e6 for s in (t0 + int(round(k * period)) for k in range(frames))
           if s in arrivals]
    print(f"{len(lat)}/{frames} speech frames arrived at {args.size}x{args.size}; latency after the end of each "
          f"frame's audio: median {np.median(lat):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms, "
          f"first frame {lat[0]:.0f} ms" if lat else "no speech frame arrived")


if __name__ == "__main__":
    main()
