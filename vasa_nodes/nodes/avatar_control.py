"""avatar_control: the avatar's behaviour controls as parameters, published latched on /vasa/control.

Change them live, e.g. `ros2 param set /avatar_control emotion happy`; every accepted
change is published at once as an AvatarControl (reliable, transient local).
"""

from __future__ import annotations

import sys

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from vasa_nodes.core.motion import EMOTIONS, Controls
from vasa_nodes.msg import AvatarControl

from .common import CONTROL_QOS, TOPIC_CONTROL, controls_to_msg, describe, run_node

NAME = "avatar_control"

_PARAMETERS = (
    # name, default, description, float range
    ("gaze_enabled", False, "hold the main gaze at (gaze_yaw, gaze_pitch); false lets the avatar look around", None),
    ("gaze_yaw", 0.0, "main gaze direction, rad; + to the avatar's left", (-0.5, 0.5)),
    ("gaze_pitch", 0.0, "main gaze direction, rad; + up", (-0.4, 0.4)),
    ("distance_enabled", False, "hold the head at head_scale; false keeps the portrait's distance", None),
    ("head_scale", 1.0, "apparent head size relative to the portrait (> 1 closer to the camera)", (0.5, 2.0)),
    ("emotion", "neutral", f"emotion offset: {' | '.join(EMOTIONS)}", None),
    ("emotion_intensity", 0.0, "strength of the emotion offset", (0.0, 1.0)),
    ("motion_intensity", 1.0, "scale of head motion and gaze shifts; 1 = natural", (0.0, 2.0)),
)


class AvatarControlNode(Node):
    def __init__(self):
        super().__init__(NAME)
        for name, default, description, float_range in _PARAMETERS:
            self.declare_parameter(name, default, describe(description, float_range=float_range))
        self.add_on_set_parameters_callback(self._validate)
        self.pub = self.create_publisher(AvatarControl, TOPIC_CONTROL, CONTROL_QOS)
        self.controls = self._read({})
        self._publish()
        # Publish after each accepted change (the callback above only validates).
        self.add_post_set_parameters_callback(self._on_changed)

    def _read(self, changes: dict) -> Controls:
        values = {name: changes.get(name, self.get_parameter(name).value) for name, *_ in _PARAMETERS}
        return Controls(**values)

    def _validate(self, params) -> SetParametersResult:
        try:
            self._read({p.name: p.value for p in params}).validated()
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_changed(self, params) -> None:
        self.controls = self._read({})
        self._publish()

    def _publish(self) -> None:
        c = self.controls.validated()
        self.pub.publish(controls_to_msg(c, self.get_clock().now().nanoseconds))
        self.get_logger().info(f"control: emotion={c.emotion} ({c.emotion_intensity:.2f}), "
                               f"gaze={'(%.2f, %.2f)' % (c.gaze_yaw, c.gaze_pitch) if c.gaze_enabled else 'free'}, "
                               f"head_scale={c.head_scale if c.distance_enabled else 'free'}")


def main(args: list[str] | None = None) -> int:
    return run_node(AvatarControlNode, args)


if __name__ == "__main__":
    sys.exit(main())
