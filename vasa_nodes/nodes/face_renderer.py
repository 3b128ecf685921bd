"""face_renderer: FaceMotion (/vasa/face_motion) -> sensor_msgs/Image rgb8 (/vasa/image) and
sensor_msgs/CompressedImage JPEG (/vasa/image/compressed), same stamp.

Every image carries the invisible watermark (core/watermark.py) unless the read-only
parameter `watermark` is false, which is logged as a warning at start-up. The JPEG is
encoded from the very array published raw, so it carries the mark too.

Like image_transport, each form is made only while someone subscribes to it, and nothing
is rendered while nobody subscribes to either. While the motion stream is missing for
`rest_timeout_s` (motion_generator crashed or restarts), a resting face (core/resting_face.py)
is rendered at the stream's frame rate instead of a frozen picture."""

from __future__ import annotations

import sys
import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from vasa_nodes.core.jpeg import RGB8_JPEG_FORMAT, encode_jpeg
from vasa_nodes.core.portrait import PortraitError, load_portrait
from vasa_nodes.core.renderer import FaceRenderer, RendererError
from vasa_nodes.core.resting_face import RestingFace
from vasa_nodes.core.watermark import Watermarker
from vasa_nodes.msg import FaceMotion

from .common import (IMAGE_QOS, STREAM_QOS, TOPIC_IMAGE, TOPIC_IMAGE_COMPRESSED, TOPIC_MOTION, StartupError,
                     describe, motion_from_msg, run_node, to_ns, to_time)

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
        self.jpeg_quality = self.declare_parameter(
            "jpeg_quality", 90, describe("JPEG quality of vasa/image/compressed, 1 (smallest) to 100 (best); "
                                         "changeable at run time", int_range=(1, 100))).value
        self.resting = self.declare_parameter(
            "resting_face", True, describe("render a resting face (blinks, small head motion, closed mouth) "
                                           "while no FaceMotion arrives", read_only=True)).value
        self.rest_timeout_ns = int(1e9 * self.declare_parameter(
            "rest_timeout_s", 0.5, describe("how long FaceMotion may be missing before the resting face takes "
                                            "over, s", read_only=True, float_range=(0.1, 10.0))).value)
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
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pub = self.create_publisher(Image, TOPIC_IMAGE, IMAGE_QOS)
        self.pub_jpeg = self.create_publisher(CompressedImage, TOPIC_IMAGE_COMPRESSED, IMAGE_QOS)
        self.create_subscription(FaceMotion, TOPIC_MOTION, self._on_motion, STREAM_QOS)
        self.frames = self.rest_frames = 0
        self._render_s = 0.0
        self.create_timer(10.0, self._report)
        # The resting face follows the stream's frame rate; its clock continues the stream's stamps.
        self.rest = RestingFace()
        self.fps = 25.0
        self._last_rx_ns: int | None = None  # steady time of the last FaceMotion
        self._last_stamp_ns: int | None = None  # its stamp
        self._published_stamp_ns = -1
        self._started_ns = time.monotonic_ns()
        self._rest_timer = self.create_timer(1.0 / self.fps, self._on_rest_timer) if self.resting else None

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "jpeg_quality":  # its range is checked by rclpy before this is called
                self.jpeg_quality = int(p.value)
        return SetParametersResult(successful=True)

    def _on_motion(self, msg: FaceMotion) -> None:
        try:
            motion = motion_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(f"ignored FaceMotion: {exc}", throttle_duration_sec=5.0)
            return
        if self.rest.resting_now:
            self.get_logger().info("FaceMotion is back: easing from the resting face into the stream")
        motion = self.rest.received(motion)
        self._last_rx_ns, self._last_stamp_ns = time.monotonic_ns(), to_ns(msg.header.stamp)
        if msg.frame_rate > 0 and abs(msg.frame_rate - self.fps) > 1e-6 and self._rest_timer is not None:
            self.fps = float(msg.frame_rate)
            self._rest_timer.cancel()
            self.destroy_timer(self._rest_timer)
            self._rest_timer = self.create_timer(1.0 / self.fps, self._on_rest_timer)
        self._render_and_publish(motion, self._last_stamp_ns)

    def _on_rest_timer(self) -> None:
        now = time.monotonic_ns()
        if now - (self._last_rx_ns if self._last_rx_ns is not None else self._started_ns) < self.rest_timeout_ns:
            return
        if not self.rest.resting_now:
            if self._last_rx_ns is None:
                self.get_logger().info("no FaceMotion yet: rendering a resting face until it comes")
            else:
                self.get_logger().warning(f"no FaceMotion for {self.rest_timeout_ns / 1e9:.1f} s: "
                                          "rendering a resting face until it is back")
        period = int(1e9 / self.fps)
        if self._last_stamp_ns is None:  # nothing streamed yet: the current time
            stamp = self.get_clock().now().nanoseconds
        else:  # the stream's clock, run on by the time since its last frame, on its frame grid
            stamp = self._last_stamp_ns + round((now - self._last_rx_ns) / period) * period
        self._render_and_publish(self.rest.resting(), max(stamp, self._published_stamp_ns + period))
        self.rest_frames += 1

    def _render_and_publish(self, motion, stamp_ns: int) -> None:
        raw = self.pub.get_subscription_count() > 0
        jpeg = self.pub_jpeg.get_subscription_count() > 0
        if not (raw or jpeg):
            return
        start = time.perf_counter()
        rgb = self.renderer.render(motion)
        self._render_s += time.perf_counter() - start
        self._published_stamp_ns = stamp_ns
        stamp = to_time(stamp_ns)
        if raw:
            out = Image()
            out.header.stamp = stamp
            out.header.frame_id = self.frame_id
            out.height, out.width = rgb.shape[:2]
            out.encoding = "rgb8"
            out.is_bigendian = 0
            out.step = rgb.shape[1] * 3
            out.data = rgb.tobytes()
            self.pub.publish(out)
        if jpeg:
            out = CompressedImage()
            out.header.stamp = stamp
            out.header.frame_id = self.frame_id
            out.format = RGB8_JPEG_FORMAT
            out.data = encode_jpeg(rgb, self.jpeg_quality)
            self.pub_jpeg.publish(out)
        self.frames += 1

    def _report(self) -> None:
        if self.frames:
            self.get_logger().info(f"{self.frames} frames in 10 s ({self.frames / 10.0:.1f} fps"
                                   + (f", {self.rest_frames} resting" if self.rest_frames else "")
                                   + f"), render {1000.0 * self._render_s / self.frames:.1f} ms/frame")
        self.frames, self.rest_frames, self._render_s = 0, 0, 0.0

    def close(self) -> None:
        renderer = getattr(self, "renderer", None)
        if renderer is not None:
            renderer.close()


def main(args: list[str] | None = None) -> int:
    return run_node(FaceRendererNode, args, large_samples=True)


if __name__ == "__main__":
    sys.exit(main())
