"""preview: a window showing /vasa/image/compressed, for a quick look on a machine with a display.

Tk (Python's own tkinter) draws it: opencv-python-headless, which the package uses, has no
GUI, and a second OpenCV build with one would clash with it in the same environment. With
no display (neither DISPLAY nor WAYLAND_DISPLAY set) or no tkinter, it logs one WARN line
naming what is missing and exits with code 0; closing the window stops it the same way.
For anything more (several views, plots of the motion), use Foxglove (foxglove_bridge) or
rqt_image_view.
"""

from __future__ import annotations

import os
import sys

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage

from vasa_nodes.core.jpeg import decode_jpeg

from .common import IMAGE_QOS, TOPIC_IMAGE_COMPRESSED, run_node, to_ns

NAME = "preview"
UI_PERIOD_S = 0.02  # how often window events are handled


def no_display_reason() -> str | None:
    """Why no window can be shown here, or None."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    try:
        import tkinter  # noqa: F401, PLC0415
    except ImportError:
        return "tkinter is not installed (Debian: apt install python3-tk)"
    return None


class PreviewNode(Node):
    def __init__(self):
        super().__init__(NAME)
        import tkinter  # noqa: PLC0415

        self._tk = tkinter
        self.root = tkinter.Tk()
        self.root.title(f"vasa_nodes: {self.resolve_topic_name(TOPIC_IMAGE_COMPRESSED)}")
        self.root.protocol("WM_DELETE_WINDOW", self._on_close)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self._photo = None
        self._last_stamp = -1
        self.create_subscription(CompressedImage, TOPIC_IMAGE_COMPRESSED, self._on_image, IMAGE_QOS)
        self.create_timer(UI_PERIOD_S, self.root.update)
        self.get_logger().info(f"showing {self.resolve_topic_name(TOPIC_IMAGE_COMPRESSED)} in a window")

    def _on_image(self, msg: CompressedImage) -> None:
        stamp = to_ns(msg.header.stamp)
        if stamp <= self._last_stamp:  # a late frame would step the face back
            return
        try:
            rgb = decode_jpeg(bytes(msg.data))
        except ValueError as exc:
            self.get_logger().error(f"ignored CompressedImage: {exc}", throttle_duration_sec=5.0)
            return
        self._last_stamp = stamp
        h, w = rgb.shape[:2]
        self._photo = self._tk.PhotoImage(data=b"P6 %d %d 255\n" % (w, h) + rgb.tobytes(), format="PPM")
        self.label.configure(image=self._photo)

    def _on_close(self) -> None:
        rclpy.try_shutdown()  # the spin loop ends; run_node cleans up and returns 0

    def close(self) -> None:
        self.root.destroy()


def main(args: list[str] | None = None) -> int:
    reason = no_display_reason()
    if reason:
        rclpy.logging.get_logger(NAME).warning(f"{reason}: no preview window")
        return 0
    return run_node(PreviewNode, args)


if __name__ == "__main__":
    sys.exit(main())
