"""audio_encoder: AudioChunk (/vasa/audio) -> AudioFeatures (/vasa/audio_features) at the motion rate."""

from __future__ import annotations

import sys

import numpy as np
from rclpy.node import Node

from vasa_nodes.core.audio import SAMPLE_RATE, AudioError, ChunkConditioner
from vasa_nodes.core.features import FeatureFrames, StreamingFeatureExtractor
from vasa_nodes.msg import AudioChunk, AudioFeatures

from .common import (STREAM_QOS, TOPIC_AUDIO, TOPIC_FEATURES, StartupError, describe, features_to_msg,
                     run_node, to_ns)

NAME = "audio_encoder"


class AudioEncoderNode(Node):
    def __init__(self):
        super().__init__(NAME)
        self.fps = self.declare_parameter(
            "fps", 25, describe("feature frames per second; must equal the motion/video rate",
                                read_only=True, int_range=(10, 100))).value
        try:
            self.extractor = StreamingFeatureExtractor(float(self.fps))
        except ValueError as exc:
            raise StartupError(NAME, str(exc)) from None
        self.stream_timeout_s = self.declare_parameter(
            "stream_timeout_s", 0.5, describe("close a stream whose chunks stop arriving without end_of_stream "
                                              "after this many seconds", float_range=(0.05, 10.0))).value
        self.conditioner = ChunkConditioner()
        self._last_chunk_ns = 0
        self.create_timer(0.1, self._check_stalled)
        self.pub = self.create_publisher(AudioFeatures, TOPIC_FEATURES, STREAM_QOS)
        self.create_subscription(AudioChunk, TOPIC_AUDIO, self._on_chunk, STREAM_QOS)
        self._t0_ns: int | None = None   # presentation time of the stream's sample 0
        self._expected = 0               # next sample offset (in the chunk's own rate) we expect
        self._rate = SAMPLE_RATE

    def _check_stalled(self) -> None:
        if self._t0_ns is None:
            return
        idle_s = (self.get_clock().now().nanoseconds - self._last_chunk_ns) / 1e9
        if idle_s > self.stream_timeout_s:
            self.get_logger().warning(f"audio stopped for {idle_s:.1f} s without end_of_stream; closing the stream")
            self._finish()

    def _on_chunk(self, msg: AudioChunk) -> None:
        self._last_chunk_ns = self.get_clock().now().nanoseconds
        offset = int(msg.sample_offset)
        if self._t0_ns is not None and offset < self._expected:
            self.get_logger().warning("audio stream restarted without end_of_stream; closing the previous one")
            self._finish()
        if self._t0_ns is None:
            self._rate = int(msg.sample_rate) or SAMPLE_RATE
            self._t0_ns = to_ns(msg.header.stamp) - offset * 1_000_000_000 // self._rate
            self._expected = offset
        if offset > self._expected:
            # Lost chunks: keep the clock by filling the gap with silence.
            gap = offset - self._expected
            self.get_logger().warning(f"{gap} audio samples missing; filled with silence",
                                      throttle_duration_sec=5.0)
            self._emit(self._feed(np.zeros(gap, np.float32), msg.sample_rate, False), False)
        self._expected = offset + len(msg.samples)
        frames = self._feed(np.asarray(msg.samples, np.float32), msg.sample_rate, msg.end_of_stream)
        if msg.end_of_stream:
            frames = FeatureFrames.concat([frames, self.extractor.finish()]) if len(frames) else self.extractor.finish()
            self._emit(frames, True)
            self._reset()
        else:
            self._emit(frames, False)

    def _feed(self, samples: np.ndarray, rate: int, last: bool) -> FeatureFrames:
        try:
            x, warnings = self.conditioner.push(samples, rate, last=last)
        except AudioError as exc:
            self.get_logger().error(f"dropped audio chunk: {exc}")
            x, warnings = np.zeros(0, np.float32), []
        for w in warnings:
            self.get_logger().warning(w, throttle_duration_sec=5.0)
        return self.extractor.push(x)

    def _emit(self, frames: FeatureFrames, end_of_stream: bool) -> None:
        # Live consumers get the next frame ahead of time, one chunk before it is complete.
        ahead = None if end_of_stream else self.extractor.peek()
        if len(frames) == 0 and not end_of_stream and not len(ahead):
            return
        stamp = self._t0_ns + int(round(frames.frame_offset * 1e9 / self.fps))
        self.pub.publish(features_to_msg(frames, self.fps, stamp, end_of_stream, ahead))

    def _finish(self) -> None:
        self._emit(self.extractor.finish(), True)
        self._reset()

    def _reset(self) -> None:
        self.conditioner.reset()
        self._t0_ns = None
        self._expected = 0


def main(args: list[str] | None = None) -> int:
    return run_node(AudioEncoderNode, args)


if __name__ == "__main__":
    sys.exit(main())
