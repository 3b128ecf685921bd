"""audio_capture: speech into the graph as 16 kHz AudioChunks on /vasa/audio.

Sources (parameter `source`):
  topic  relay AudioChunks from /vasa/audio_in (any rate; e.g. a TTS or dialogue system)
  file   play an audio file in real time (`file`), optionally looping
  mic    capture the default (or `device`) microphone; without one, says so and falls back to topic
"""

from __future__ import annotations

import queue
import sys

import numpy as np
from rclpy.node import Node

from vasa_nodes.core.audio import SAMPLE_RATE, AudioError, ChunkConditioner, load_audio
from vasa_nodes.msg import AudioChunk

from .common import (STREAM_QOS, TOPIC_AUDIO, TOPIC_AUDIO_IN, StartupError, describe, run_node, to_ns,
                     to_time)

NAME = "audio_capture"
SOURCES = ("topic", "file", "mic")


class AudioCaptureNode(Node):
    def __init__(self):
        super().__init__(NAME)
        self.source = self.declare_parameter(
            "source", "topic", describe("where speech comes from: topic | file | mic", read_only=True)).value
        self.file = self.declare_parameter(
            "file", "", describe("audio file played when source is 'file'", read_only=True)).value
        self.loop = self.declare_parameter(
            "loop", False, describe("replay the file forever (source 'file')", read_only=True)).value
        self.start_delay_s = self.declare_parameter(
            "start_delay_s", 3.0, describe("seconds to wait before playing the file, so subscribers connect",
                                           read_only=True, float_range=(0.0, 30.0))).value
        self.chunk_ms = self.declare_parameter(
            "chunk_ms", 20, describe("chunk length published, milliseconds", read_only=True,
                                     int_range=(5, 200))).value
        self.device = self.declare_parameter(
            "device", "", describe("microphone name or index for source 'mic' ('' = default)",
                                   read_only=True)).value
        if self.source not in SOURCES:
            raise StartupError(NAME, f"parameter source must be one of {', '.join(SOURCES)}, got {self.source!r}")

        self.pub = self.create_publisher(AudioChunk, TOPIC_AUDIO, STREAM_QOS)
        self.chunk = SAMPLE_RATE * self.chunk_ms // 1000
        self._offset = 0        # next sample index of the current output stream
        self._t0_ns: int | None = None  # presentation time of sample 0 of the current stream

        if self.source == "file":
            self._start_file()
        elif self.source == "mic":
            if not self._start_mic():
                self._start_topic()
        else:
            self._start_topic()

    # -- output ----------------------------------------------------------------------

    def _publish(self, samples: np.ndarray, end_of_stream: bool) -> None:
        if self._t0_ns is None:
            self._t0_ns = self.get_clock().now().nanoseconds
        msg = AudioChunk()
        msg.header.stamp = to_time(self._t0_ns + self._offset * 1_000_000_000 // SAMPLE_RATE)
        msg.header.frame_id = self.source
        msg.sample_rate = SAMPLE_RATE
        msg.sample_offset = self._offset
        msg.samples = samples.astype(np.float32)
        msg.end_of_stream = end_of_stream
        self.pub.publish(msg)
        self._offset += len(samples)
        if end_of_stream:
            self._offset, self._t0_ns = 0, None

    # -- file ------------------------------------------------------------------------

    def _start_file(self) -> None:
        if not self.file:
            raise StartupError(NAME, "source is 'file' but parameter 'file' is empty")
        try:
            self.audio = load_audio(self.file, min_duration_s=0.04).samples
        except AudioError as exc:
            raise StartupError(NAME, str(exc)) from None
        self.get_logger().info(f"playing {self.file} ({len(self.audio) / SAMPLE_RATE:.2f} s)"
                               f"{' in a loop' if self.loop else ''} after {self.start_delay_s:.1f} s")
        self._file_pos = 0
        self._file_start_ns = self.get_clock().now().nanoseconds + int(self.start_delay_s * 1e9)
        self.timer = self.create_timer(self.chunk_ms / 1000.0 / 2, self._file_tick)

    def _file_tick(self) -> None:
        now = self.get_clock().now().nanoseconds
        if now < self._file_start_ns:
            return
        if self._t0_ns is None:
            self._t0_ns = self._file_start_ns
        # Publish every chunk whose start time has come: real-time pace without drift.
        due = (now - self._t0_ns) * SAMPLE_RATE // 1_000_000_000 + self.chunk
        while self._file_pos < len(self.audio) and self._offset < due:
            end = min(self._file_pos + self.chunk, len(self.audio))
            last = end == len(self.audio)
            self._publish(self.audio[self._file_pos:end], end_of_stream=last)
            self._file_pos = end
            if last:
                if not self.loop:
                    self.get_logger().info("file finished")
                    self.timer.cancel()
                    return
                self._file_pos = 0
                self._file_start_ns = now + 1_000_000_000  # a second of silence between loops
                return

    # -- microphone ------------------------------------------------------------------

    def _start_mic(self) -> bool:
        try:
            import sounddevice  # noqa: PLC0415
        except OSError as exc:  # PortAudio library missing
            self.get_logger().error(f"no microphone support ({exc}); falling back to source 'topic'")
            return False
        self._mic_queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=500)

        self._mic_problems = 0

        def callback(indata, frames, time_info, status):
            if status:  # input overflow: the machine did not keep up; reported from the timer
                self._mic_problems += 1
            try:
                self._mic_queue.put_nowait(indata[:, 0].copy())
            except queue.Full:
                self._mic_problems += 1

        device = int(self.device) if self.device.isdigit() else (self.device or None)
        try:
            self._mic = sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32",
                                                blocksize=self.chunk, device=device, callback=callback)
            self._mic.start()
        except (sounddevice.PortAudioError, ValueError) as exc:
            self.get_logger().error(f"cannot open a microphone ({str(exc).splitlines()[0]}); "
                                    "falling back to source 'topic' on " + TOPIC_AUDIO_IN)
            return False
        self.get_logger().info(f"capturing microphone {self._mic.device} at {SAMPLE_RATE} Hz")
        self.timer = self.create_timer(self.chunk_ms / 1000.0 / 2, self._mic_tick)
        return True

    def _mic_tick(self) -> None:
        if self._mic_problems:
            self.get_logger().warning(f"microphone: {self._mic_problems} blocks overflowed or were dropped",
                                      throttle_duration_sec=5.0)
            self._mic_problems = 0
        while not self._mic_queue.empty():
            self._publish(self._mic_queue.get_nowait(), end_of_stream=False)

    # -- topic relay -----------------------------------------------------------------

    def _start_topic(self) -> None:
        self.source = "topic"
        self._conditioner = ChunkConditioner()
        self.create_subscription(AudioChunk, TOPIC_AUDIO_IN, self._on_chunk, STREAM_QOS)
        self.get_logger().info(f"relaying {self.resolve_topic_name(TOPIC_AUDIO_IN)} -> "
                               f"{self.resolve_topic_name(TOPIC_AUDIO)}")

    def _on_chunk(self, msg: AudioChunk) -> None:
        try:
            samples, warnings = self._conditioner.push(np.asarray(msg.samples), msg.sample_rate,
                                                       last=msg.end_of_stream)
        except AudioError as exc:
            self.get_logger().error(f"dropped chunk from {msg.header.frame_id or 'unknown'}: {exc}")
            return
        for w in warnings:
            self.get_logger().warning(w, throttle_duration_sec=5.0)
        if self._t0_ns is None:
            # Keep the publisher's presentation time when it gives one.
            stamp = to_ns(msg.header.stamp)
            self._t0_ns = stamp if stamp > 0 else self.get_clock().now().nanoseconds
        if len(samples) or msg.end_of_stream:
            self._publish(samples, msg.end_of_stream)
        if msg.end_of_stream:
            self._conditioner.reset()

    def close(self) -> None:
        mic = getattr(self, "_mic", None)
        if mic is not None:
            mic.close()


def main(args: list[str] | None = None) -> int:
    return run_node(AudioCaptureNode, args)


if __name__ == "__main__":
    sys.exit(main())
