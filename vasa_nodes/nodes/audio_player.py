"""audio_player: the speech heard in step with the face, and republished in step on /vasa/audio_out.

Takes the stamped 16 kHz speech of /vasa/audio (whatever its source: file, microphone or
/vasa/audio_in) and plays each sample at `stamp + D`, D being the time the image of that
stamp takes to arrive on /vasa/image (measured, or the parameter `delay_s`), so what is
heard lines up with what is seen. The same chunks are republished on /vasa/audio_out as
they are played, with their original stamps, for consumers that mux their own video.
Without a sound device (or with `play` false) the republishing goes on alone.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vasa_nodes.core.audio import SAMPLE_RATE
from vasa_nodes.core.playback import NS, LatencyTracker, PlaybackScheduler
from vasa_nodes.msg import AudioChunk

from .common import (STREAM_QOS, TOPIC_AUDIO, TOPIC_AUDIO_OUT, TOPIC_IMAGE, describe, run_node,
                     serialized_stamp_ns, to_ns, to_time)

NAME = "audio_player"
# Only the arrival times of the images matter here: the newest one, whichever is dropped.
_LATENCY_PROBE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)
RELEASE_PERIOD_S = 0.005  # republishing granularity (a quarter of a 20 ms chunk)


class AudioPlayerNode(Node):
    def __init__(self):
        super().__init__(NAME)
        self.play = self.declare_parameter(
            "play", True, describe("play the speech on the sound device (false: only republish it)",
                                   read_only=True)).value
        self.device = self.declare_parameter(
            "device", "", describe("sound output device name or index ('' = default)", read_only=True)).value
        delay_s = self.declare_parameter(
            "delay_s", -1.0, describe("delay of the sound after its stamp, s; -1 = follow the measured latency of "
                                      "the images on vasa/image", read_only=True, float_range=(-1.0, 2.0))).value
        self.initial_delay_s = self.declare_parameter(
            "initial_delay_s", 0.1, describe("delay used with delay_s -1 until images of speech have been "
                                             "measured, s", read_only=True, float_range=(0.0, 2.0))).value
        self.auto = delay_s < 0
        self._lock = threading.Lock()  # the sound device's callback runs on PortAudio's thread
        self.scheduler = PlaybackScheduler(int((self.initial_delay_s if self.auto else delay_s) * NS))
        self.tracker = LatencyTracker()
        self._stream_open = False
        self.pub = self.create_publisher(AudioChunk, TOPIC_AUDIO_OUT, STREAM_QOS)
        self.create_subscription(AudioChunk, TOPIC_AUDIO, self._on_audio, STREAM_QOS)
        if self.auto:
            # Serialized: only the stamp is read, not the 0.8 MB of pixels.
            self.create_subscription(Image, TOPIC_IMAGE, self._on_image, _LATENCY_PROBE_QOS, raw=True)
        self.create_timer(RELEASE_PERIOD_S, self._release)
        self._out = self._open_device() if self.play else None
        self.get_logger().info(
            f"{'playing on ' + str(self._out.device) if self._out is not None else 'not playing'}, republishing "
            f"{self.resolve_topic_name(TOPIC_AUDIO)} on {self.resolve_topic_name(TOPIC_AUDIO_OUT)}, delay "
            + ("following the images" if self.auto else f"{delay_s:.3f} s"))

    # -- sound device ------------------------------------------------------------------

    def _open_device(self):
        skipped = f"not playing the speech, still republishing it on {self.resolve_topic_name(TOPIC_AUDIO_OUT)}"
        try:
            import sounddevice  # noqa: PLC0415
        except OSError as exc:  # PortAudio library missing
            self.get_logger().warning(f"no sound output ({exc}): {skipped}")
            return None
        device = int(self.device) if self.device.isdigit() else (self.device or None)

        def callback(outdata, frames, time_info, status):
            # When the first sample of this buffer reaches the loudspeaker, on the wall clock.
            ahead = time_info.outputBufferDacTime - time_info.currentTime
            heard_ns = time.time_ns() + int((ahead if 0 < ahead < 1 else stream.latency) * NS)
            with self._lock:
                outdata[:, 0] = self.scheduler.render(heard_ns, frames, SAMPLE_RATE)

        try:
            stream = sounddevice.OutputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device,
                                              callback=callback, latency="low")
            stream.start()
        except (sounddevice.PortAudioError, ValueError) as exc:
            self.get_logger().warning(f"no sound output device ({str(exc).splitlines()[0]}): {skipped}")
            return None
        return stream

    # -- audio in, audio out -----------------------------------------------------------

    def _on_audio(self, msg: AudioChunk) -> None:
        stamp = to_ns(msg.header.stamp)
        samples = np.asarray(msg.samples, np.float32)
        start = not self._stream_open
        self._stream_open = not msg.end_of_stream
        self.tracker.audio(stamp, len(samples), msg.sample_rate, stream_start=start)
        with self._lock:
            if start and self.auto:  # a new stream starts with the latest measured latency
                latency = self.tracker.latency_ns
                if latency is not None:
                    self.scheduler.set_latency(latency)
            try:
                self.scheduler.push(stamp, samples, msg.sample_rate, msg.sample_offset, msg.end_of_stream,
                                    msg.header.frame_id)
            except ValueError as exc:
                self.get_logger().error(f"dropped audio chunk: {exc}", throttle_duration_sec=5.0)

    def _on_image(self, data: bytes) -> None:
        if self.tracker.image(serialized_stamp_ns(data), self.get_clock().now().nanoseconds):
            latency = self.tracker.latency_ns
            with self._lock:
                if self.scheduler.set_latency(latency):
                    self.get_logger().debug(f"sound delayed {latency / 1e6:.0f} ms after its stamps")

    def _release(self) -> None:
        with self._lock:
            due = self.scheduler.release(self.get_clock().now().nanoseconds)
        for chunk in due:
            out = AudioChunk(sample_rate=chunk.sample_rate, sample_offset=chunk.sample_offset, samples=chunk.samples,
                             end_of_stream=chunk.end_of_stream)
            out.header.stamp = to_time(chunk.stamp_ns)
            out.header.frame_id = chunk.frame_id
            self.pub.publish(out)

    def close(self) -> None:
        if getattr(self, "_out", None) is not None:
            self._out.close()


def main(args: list[str] | None = None) -> int:
    return run_node(AudioPlayerNode, args)


if __name__ == "__main__":
    sys.exit(main())
