"""foxglove_bridge: a live view of the graph in Foxglove, with no ROS install on the viewing side.

Runs the WebSocket server of the `foxglove-sdk` package (protocol foxglove.websocket.v1;
in Foxglove: Open connection -> Foxglove WebSocket -> ws://HOST:PORT) and logs to it:

- `/vasa/image/compressed` (resolved with the node's namespace) as `foxglove.CompressedImage`
  (protobuf), from sensor_msgs/CompressedImage. The ROS subscription exists only while a
  Foxglove client subscribes to the channel, so face_renderer encodes JPEG only then;
- `/vasa/face_motion` and `/vasa/control` as JSON (schemas below): the 52 ARKit blendshapes by
  name, head pose, gaze, voice activity; the avatar controls.

Each message is logged at its header stamp, so Foxglove's timeline is the stream's clock.
"""

from __future__ import annotations

import sys
import threading

import foxglove
import numpy as np
from foxglove.channels import CompressedImageChannel
from foxglove.messages import CompressedImage as FoxgloveCompressedImage
from foxglove.messages import Timestamp
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage

from vasa_nodes.msg import AvatarControl, FaceMotion

from .common import (CONTROL_QOS, IMAGE_QOS, STREAM_QOS, TOPIC_CONTROL, TOPIC_IMAGE_COMPRESSED, TOPIC_MOTION,
                     StartupError, describe, run_node, to_ns)

NAME = "foxglove_bridge"

_NUMBER = {"type": "number"}
FACE_MOTION_SCHEMA = {
    "type": "object",
    "title": "vasa_nodes/FaceMotion",
    "properties": {
        "frame_index": {"type": "integer"},
        "blendshapes": {"type": "object", "description": "ARKit blendshape name -> 0..1",
                        "additionalProperties": _NUMBER},
        "head": {"type": "object", "description": "rad, relative to the portrait's pose; translation in face "
                                                  "heights",
                 "properties": {k: _NUMBER for k in ("yaw", "pitch", "roll", "scale")}},
        "head_translation": {"type": "array", "items": _NUMBER},
        "gaze": {"type": "object", "description": "rad, relative to the head",
                 "properties": {"yaw": _NUMBER, "pitch": _NUMBER}},
        "voice_activity": _NUMBER,
    },
}
CONTROL_SCHEMA = {
    "type": "object",
    "title": "vasa_nodes/AvatarControl",
    "properties": {
        "gaze_enabled": {"type": "boolean"}, "gaze_yaw": _NUMBER, "gaze_pitch": _NUMBER,
        "distance_enabled": {"type": "boolean"}, "head_scale": _NUMBER, "emotion": {"type": "string"},
        "emotion_intensity": _NUMBER, "motion_intensity": _NUMBER,
    },
}


class _Subscribers(foxglove.ServerListener):
    """Which channels Foxglove clients subscribe to (called from the server's threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subs: set[tuple[int, str]] = set()

    def on_subscribe(self, client, channel) -> None:
        with self._lock:
            self._subs.add((client.id, channel.topic))

    def on_unsubscribe(self, client, channel) -> None:
        with self._lock:
            self._subs.discard((client.id, channel.topic))

    def watched(self, topic: str) -> bool:
        with self._lock:
            return any(t == topic for _, t in self._subs)


class FoxgloveBridgeNode(Node):
    def __init__(self):
        super().__init__(NAME)
        host = self.declare_parameter(
            "address", "0.0.0.0", describe("address the WebSocket server listens on (0.0.0.0: all interfaces, "
                                           "127.0.0.1: this machine only)", read_only=True)).value
        port = self.declare_parameter(
            "port", 8765, describe("WebSocket port (0: any free port, logged)", read_only=True,
                                   int_range=(0, 65535))).value
        self.listener = _Subscribers()
        try:
            self.server = foxglove.start_server(name="vasa_nodes", host=host, port=port,
                                                server_listener=self.listener)
        except Exception as exc:  # the SDK raises its own error types (address in use, bad address)
            raise StartupError(NAME, f"cannot start the Foxglove WebSocket server on {host}:{port}: {exc}") from None
        image_topic = self.resolve_topic_name(TOPIC_IMAGE_COMPRESSED)
        self.image_channel = CompressedImageChannel(image_topic)
        motion_topic, control_topic = self.resolve_topic_name(TOPIC_MOTION), self.resolve_topic_name(TOPIC_CONTROL)
        self.motion_channel = foxglove.Channel(motion_topic, schema=FACE_MOTION_SCHEMA)
        self.control_channel = foxglove.Channel(control_topic, schema=CONTROL_SCHEMA)
        self.create_subscription(FaceMotion, TOPIC_MOTION, self._on_motion, STREAM_QOS)
        self.create_subscription(AvatarControl, TOPIC_CONTROL, self._on_control, CONTROL_QOS)
        self._image_topic = image_topic
        self._image_sub = None
        self.create_timer(0.1, self._follow_viewers)
        self.get_logger().info(f"Foxglove WebSocket server on ws://{host}:{self.server.port} "
                               f"({image_topic}, {motion_topic}, {control_topic})")

    def _follow_viewers(self) -> None:
        """Subscribe to the image only while a Foxglove client watches it (image_transport's lazy encoding)."""
        watched = self.listener.watched(self._image_topic)
        if watched and self._image_sub is None:
            self._image_sub = self.create_subscription(CompressedImage, TOPIC_IMAGE_COMPRESSED, self._on_image,
                                                       IMAGE_QOS)
        elif not watched and self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None

    def _on_image(self, msg: CompressedImage) -> None:
        ns = to_ns(msg.header.stamp)
        self.image_channel.log(
            FoxgloveCompressedImage(timestamp=Timestamp(ns // 1_000_000_000, ns % 1_000_000_000),
                                    frame_id=msg.header.frame_id, data=bytes(msg.data),
                                    format="jpeg" if "jpeg" in msg.format else msg.format.split(";")[0]),
            log_time=ns or None)

    def _on_motion(self, msg: FaceMotion) -> None:
        names, values = list(msg.blendshape_names), np.asarray(msg.blendshapes, np.float64)
        self.motion_channel.log({
            "frame_index": int(msg.frame_index),
            "blendshapes": {n: float(v) for n, v in zip(names, values)},
            "head": {"yaw": msg.head_yaw, "pitch": msg.head_pitch, "roll": msg.head_roll, "scale": msg.head_scale},
            "head_translation": [float(v) for v in msg.head_translation],
            "gaze": {"yaw": msg.gaze_yaw, "pitch": msg.gaze_pitch},
            "voice_activity": msg.voice_activity,
        }, log_time=to_ns(msg.header.stamp) or None)

    def _on_control(self, msg: AvatarControl) -> None:
        self.control_channel.log({k: getattr(msg, k) for k in CONTROL_SCHEMA["properties"]},
                                 log_time=to_ns(msg.header.stamp) or None)

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(FoxgloveBridgeNode, args)


if __name__ == "__main__":
    sys.exit(main())
