"""bag_player: a recorded session (rosbag2 bag) fed back into the graph at real-time pace (or `rate` times).

`start_from` chooses what the graph re-derives:
  audio   (default) the recorded 16 kHz speech is published on vasa/audio_in (audio_capture, source
          'topic', passes it on), with the recorded vasa/control (and vasa/emotion, vasa/gaze_target
          when recorded): features, motion and images are made anew
  motion  the recorded vasa/face_motion goes straight to face_renderer, and the recorded speech to
          vasa/audio: only the images are made anew (the same motion gives the same images)
Messages keep their recorded spacing; header stamps are moved by the time between the recording's
start and the replay's, so the replayed streams stand on the graph's present clock. A damaged or
truncated bag is played as far as it can be read, with one WARN line saying what was lost."""

from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.serialization import deserialize_message

from vasa_nodes.core.bag import DEFAULT_PLAY_FROM, PLAY_FROM, BagError, BagReader, played_topics

from .bag_recorder import message_class
from .common import CONTROL_QOS, STREAM_QOS, StartupError, describe, run_node, to_ns, to_time

NAME = "bag_player"


class BagPlayerNode(Node):
    def __init__(self):
        super().__init__(NAME)
        bag = self.declare_parameter(
            "bag", "", describe("the bag to play (a bag folder, or its .mcap / .db3 file)", read_only=True)).value
        self.play_from = self.declare_parameter(
            "start_from", DEFAULT_PLAY_FROM, describe(f"what is replayed: {' | '.join(PLAY_FROM)}",
                                                      read_only=True)).value
        self.rate = self.declare_parameter(
            "rate", 1.0, describe("replay speed relative to the recording", read_only=True,
                                  float_range=(0.1, 10.0))).value
        self.start_delay_s = self.declare_parameter(
            "start_delay_s", 3.0, describe("seconds to wait before playing, so subscribers connect",
                                           read_only=True, float_range=(0.0, 30.0))).value
        if not bag:
            raise StartupError(NAME, "parameter 'bag' is empty: give the bag to play")
        try:
            self.reader = BagReader(bag)
            topics = played_topics(self.reader, self.play_from)
        except BagError as exc:
            raise StartupError(NAME, str(exc)) from None
        self._warned = False
        self._warn_once()
        self._routes = {}
        for t in topics:
            cls = message_class(t.msgtype)
            pub = self.create_publisher(cls, t.output, CONTROL_QOS if t.qos.transient_local else STREAM_QOS)
            self._routes[t.recorded] = (cls, pub)
        self._messages = self.reader.messages(list(self._routes))
        self._pending = next(self._messages, None)
        self.played = 0
        self._bag_t0 = self._pending.time_ns if self._pending else 0
        self._play_t0 = self.get_clock().now().nanoseconds + int(self.start_delay_s * 1e9)
        self.get_logger().info(
            f"playing {bag} from its {self.play_from} at {self.rate:g}x after {self.start_delay_s:.1f} s: "
            + ", ".join(f"{t.recorded} -> {self.resolve_topic_name(t.output)}" for t in topics))
        self.timer = self.create_timer(0.005, self._tick)

    def _warn_once(self) -> None:
        if self.reader.warning and not self._warned:
            self.get_logger().warning(self.reader.warning)
            self._warned = True

    def _tick(self) -> None:
        now = self.get_clock().now().nanoseconds
        if now < self._play_t0:
            return
        shift = self._play_t0 - self._bag_t0  # recorded time -> present time
        while self._pending is not None:
            m = self._pending
            due = self._play_t0 + int((m.time_ns - self._bag_t0) / self.rate)
            if due > now:
                return
            cls, pub = self._routes[m.topic]
            msg = deserialize_message(m.raw, cls)
            if hasattr(msg, "header") and to_ns(msg.header.stamp) > 0:  # an unset stamp stays unset
                msg.header.stamp = to_time(max(0, to_ns(msg.header.stamp) + shift))
            pub.publish(msg)
            self.played += 1
            self._pending = next(self._messages, None)
        self.timer.cancel()
        self._warn_once()
        self.get_logger().info(f"finished playing: {self.played} messages")

    def close(self) -> None:
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()


def main(args: list[str] | None = None) -> int:
    return run_node(BagPlayerNode, args)


if __name__ == "__main__":
    sys.exit(main())
