"""face_renderer: FaceMotion (/vasa/face_motion) -> sensor_msgs/Image rgb8 (/vasa/image), same stamp.

Every image carries the invisible watermark (core/watermark.py) unless the read-only
parameter `watermark` is false, which is logged as a warning at start-up."""

from __future__ import annotations

import sys
import time

from rclpy.node import Node
from sensor_msgs.msg import Image

from vasa_nodes.core.portrait import PortraitError, load_portrait
from vasa_nodes.core.renderer import FaceRenderer, RendererError
from vasa_nodes.core.watermark import Watermarker
from vasa_nodes.msg import FaceMotion

from .common import IMAGE_QOS, STREAM_QOS, TOPIC_IMAGE, TOPIC_MOTION, StartupError, describe, motion_from_msg, run_node

NAME = "face_renderer"


class FaceRendererNode(Node):
    def __init__(self):
        super().__init__(NAME)
        portrait_path = self.declare_parameter(
            "portrait", "", describe("portrait image to animate (JPEG, PNG, …)", read_only=True)).value
        size = self.declare_parameter(
            "size", 512, describe("output image width and height, pixels", read_only=True,
                                  int_range=(64, 2048))).value
        self.frame_id = self.declare_parameter(
            "frame_id", "avatar_camera", describe("header.frame_id of the published images")).value
        marked = self.declare_parameter(
            "watermark", True, describe("mark every image with the invisible watermark that vasa-detect finds; "
                                        "false leaves images unmarked (logged)", read_only=True)).value
        key = self.declare_parameter(
            "watermark_key", "", describe("a key whose 16-bit digest the mark carries ('' none; "
                                          "vasa-detect --key checks it)", read_only=True)).value
        if not portrait_path:
            raise StartupError(NAME, "parameter 'portrait' is empty: give the portrait image to animate")
        try:
            portrait = load_portrait(portrait_path, size)
            self.renderer = FaceRenderer(portrait, watermark=Watermarker(key or None) if marked else None)
        except (PortraitError, RendererError) as exc:
            raise StartupError(NAME, str(exc)) from None
        self.get_logger().info(f"rendering {portrait.source} at {size}x{size} on {self.renderer.gl_renderer}"
                               + (", watermarked" + (" with a key" if key else "") if marked else ""))
        if not marked:
            self.get_logger().warning("watermark off (watermark: false): the images carry no mark that tells "
                                      "them from real video")
        self.pub = self.create_publisher(Image, TOPIC_IMAGE, IMAGE_QOS)
        self.create_subscription(FaceMotion, TOPIC_MOTION, self._on_motion, STREAM_QOS)
        self.frames = 0
        self._render_s = 0.0
        self.create_timer(10.0, self._report)

    def _on_motion(self, msg: FaceMotion) -> None:
        try:
            motion = motion_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(f"ignored FaceMotion: {exc}", throttle_duration_sec=5.0)
            return
        start = time.perf_counter()
        rgb = self.renderer.render(motion)
        self._render_s += time.perf_counter() - start
        out = Image()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = self.frame_id
        out.height, out.width = rgb.shape[:2]
        out.encoding = "rgb8"
        out.is_bigendian = 0
        out.step = rgb.shape[1] * 3
        out.data = rgb.tobytes()
        self.pub.publish(out)
        self.frames += 1

    def _report(self) -> None:
        if self.frames:
            self.get_logger().info(f"{self.frames} frames in 10 s ({self.frames / 10.0:.1f} fps), "
                                   f"render {1000.0 * self._render_s / self.frames:.1f} ms/frame")
        self.frames, self._render_s = 0, 0.0

    def close(self) -> None:
        renderer = getattr(self, "renderer", None)
        if renderer is not None:
            renderer.close()


def main(args: list[str] | None = None) -> int:
    return run_node(FaceRendererNode, args)


if __name__ == "__main__":
    sys.exit(main())
