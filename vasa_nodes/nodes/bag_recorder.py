"""bag_recorder: every topic of the graph (<namespace>/vasa/...) into a rosbag2 bag, as `ros2 bag record`.

Topics are discovered by their prefix as they appear (so topics added later are recorded too),
each subscribed to with the QoS its publishers offer (reliable or best effort; transient local
for the latched control), and written as the serialised bytes received, stamped with the time of
reception. The writing is core/bag.py's; the bag carries the product's provenance statement.
Ctrl-C or SIGTERM closes the bag: an MCAP bag that was never closed (the process killed) is
still read up to where it broke off, a sqlite3 one is empty."""

from __future__ import annotations

import importlib
import sys

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vasa_nodes.core.bag import DEFAULT_STORAGE, STORAGES, TOPIC_PREFIX, BagError, BagWriter, TopicQos, bag_custom_data

from .common import StartupError, describe, run_node

NAME = "bag_recorder"


def message_class(msgtype: str):
    """'pkg/msg/Name' -> the rclpy message class."""
    pkg, _, name = msgtype.partition("/msg/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class BagRecorderNode(Node):
    def __init__(self):
        super().__init__(NAME)
        bag = self.declare_parameter(
            "bag", "", describe("path of the bag to write (must not exist yet)", read_only=True)).value
        storage = self.declare_parameter(
            "storage", DEFAULT_STORAGE, describe(f"bag storage: {' | '.join(STORAGES)}", read_only=True)).value
        self.discovery_period_s = self.declare_parameter(
            "discovery_period_s", 0.2, describe("how often new topics are looked for, s", read_only=True,
                                                float_range=(0.05, 5.0))).value
        marked = self.declare_parameter(
            "watermark", True, describe("whether the recorded images carry the invisible watermark (stated "
                                        "in the bag's provenance)", read_only=True)).value
        key = self.declare_parameter(
            "watermark_key", "", describe("the key digest the recorded images' mark carries ('' none)",
                                          read_only=True)).value
        if not bag:
            raise StartupError(NAME, "parameter 'bag' is empty: give the path of the bag to write")
        watermark = None
        if marked:
            from vasa_nodes.core.watermark import Watermarker  # noqa: PLC0415

            watermark = Watermarker(key or None)
        try:
            self.writer = BagWriter(bag, storage, bag_custom_data(watermark=watermark))
        except BagError as exc:
            raise StartupError(NAME, str(exc)) from None
        self.prefix = self.resolve_topic_name(TOPIC_PREFIX)
        self._subscribed: set[tuple[str, str]] = set()
        self.get_logger().info(f"recording {self.prefix}/* to {self.writer.path} ({storage})")
        self._discover()
        self.create_timer(self.discovery_period_s, self._discover)

    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if not (topic == self.prefix or topic.startswith(self.prefix + "/")):
                continue
            for msgtype in types:
                if (topic, msgtype) not in self._subscribed:
                    self._subscribe(topic, msgtype)

    def _subscribe(self, topic: str, msgtype: str) -> None:
        offered = [i.qos_profile for i in self.get_publishers_info_by_topic(topic) if i.topic_type == msgtype]
        if not offered:
            return  # only subscribers so far: wait for a publisher, whose QoS decides ours
        self._subscribed.add((topic, msgtype))
        # As rosbag2 does: reliable only when every publisher is; transient local only when every
        # publisher is (a latched topic's last message is then received on joining).
        reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
        latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
        depth = max(max(int(q.depth) for q in offered), 100) if not latched else 1
        try:
            cls = message_class(msgtype)
            self.writer.add_topic(topic, msgtype, TopicQos(reliable, latched, depth))
        except (ImportError, AttributeError, BagError) as exc:
            self.get_logger().warning(f"not recording {topic} ({msgtype}): {exc}")
            return
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        self.create_subscription(cls, topic, lambda raw, t=topic, m=msgtype: self._on_message(t, m, raw), qos,
                                 raw=True)
        self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, msgtype: str, raw: bytes) -> None:
        self.writer.write(topic, msgtype, self.get_clock().now().nanoseconds, raw)

    def close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()
            counts = ", ".join(f"{t} {n}" for t, n in sorted(writer.counts.items()))
            self.get_logger().info(f"closed {writer.path}: {sum(writer.counts.values())} messages ({counts})")


def main(args: list[str] | None = None) -> int:
    return run_node(BagRecorderNode, args)


if __name__ == "__main__":
    sys.exit(main())
