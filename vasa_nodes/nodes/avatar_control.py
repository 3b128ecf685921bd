"""avatar_control: the avatar's behaviour controls, published latched on /vasa/control.

Three ways in, all live:
- parameters, e.g. `ros2 param set /avatar_control emotion happy`;
- /vasa/emotion (std_msgs/String): "happy", "sad:0.6", "neutral" (core/control_input.parse_emotion);
- /vasa/gaze_target (geometry_msgs/PointStamped): a point to look at, in the avatar camera
  frame (core/control_input.gaze_from_point; frame_id "avatar_camera" or empty).
Each field follows whichever came last: a topic's value holds until that parameter is set
again. Changes are ramped in over `transition_s` (core/control_input.ControlRamp): the
published AvatarControl (reliable, transient local) moves at 25 Hz until it reaches the
new target, so nothing jumps. Out-of-range topic values are clamped with a WARN naming the
field; an unknown emotion is refused with a WARN listing the known ones.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import String

from vasa_nodes.core.control_input import ControlRamp, gaze_from_point, parse_emotion
from vasa_nodes.core.motion import EMOTIONS, Controls
from vasa_nodes.msg import AvatarControl

from .common import (CONTROL_QOS, STREAM_QOS, TOPIC_CONTROL, TOPIC_EMOTION, TOPIC_GAZE_TARGET, controls_to_msg,
                     describe, run_node)

NAME = "avatar_control"
RAMP_HZ = 25.0
GAZE_FRAMES = ("", "avatar_camera")

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
        self.declare_parameter("transition_s", 0.5, describe(
            "time a change of controls (parameter or topic) takes to ramp in, s (0 = at once)", float_range=(0.0, 5.0)))
        self.add_on_set_parameters_callback(self._validate)
        self.pub = self.create_publisher(AvatarControl, TOPIC_CONTROL, CONTROL_QOS)
        self.ramp = ControlRamp(self._read({}), transition_s=self.get_parameter("transition_s").value)
        self._publish(self.ramp.current, log=True)
        # Apply each accepted change (the callback above only validates).
        self.add_post_set_parameters_callback(self._on_changed)
        self.create_subscription(String, TOPIC_EMOTION, self._on_emotion, STREAM_QOS)
        self.create_subscription(PointStamped, TOPIC_GAZE_TARGET, self._on_gaze_target, STREAM_QOS)
        self.create_timer(1.0 / RAMP_HZ, self._on_ramp)

    def _read(self, changes: dict) -> Controls:
        values = {name: changes.get(name, self.get_parameter(name).value) for name, *_ in _PARAMETERS}
        return Controls(**values)

    def _validate(self, params) -> SetParametersResult:
        try:
            self._read({p.name: p.value for p in params if p.name != "transition_s"}).validated()
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_changed(self, params) -> None:
        changed = {p.name: p.value for p in params if p.name != "transition_s"}
        if any(p.name == "transition_s" for p in params):
            self.ramp.transition_s = self.get_parameter("transition_s").value
        if changed:  # only the fields set: a topic's value for another field holds
            self._retarget(replace(self.ramp.target, **changed))

    def _on_emotion(self, msg: String) -> None:
        try:
            emotion, intensity, warnings = parse_emotion(msg.data, source=self.resolve_topic_name(TOPIC_EMOTION))
        except ValueError as exc:
            self.get_logger().warning(f"refused: {exc}")
            return
        for w in warnings:
            self.get_logger().warning(w)
        self._retarget(replace(self.ramp.target, emotion=emotion, emotion_intensity=intensity))

    def _on_gaze_target(self, msg: PointStamped) -> None:
        source = self.resolve_topic_name(TOPIC_GAZE_TARGET)
        if msg.header.frame_id not in GAZE_FRAMES:
            self.get_logger().warning(f"refused: {source}: frame_id {msg.header.frame_id!r} is not the avatar camera "
                                      f"frame ('avatar_camera' or empty); no transforms are looked up")
            return
        try:
            yaw, pitch, warnings = gaze_from_point(msg.point.x, msg.point.y, msg.point.z, source=source)
        except ValueError as exc:
            self.get_logger().warning(f"refused: {exc}")
            return
        for w in warnings:
            self.get_logger().warning(w)
        self._retarget(replace(self.ramp.target, gaze_enabled=True, gaze_yaw=yaw, gaze_pitch=pitch))

    def _retarget(self, target: Controls) -> None:
        self.ramp.set_target(target)
        t = self.ramp.target
        self.get_logger().info(f"control: emotion={t.emotion} ({t.emotion_intensity:.2f}), "
                               f"gaze={'(%.2f, %.2f)' % (t.gaze_yaw, t.gaze_pitch) if t.gaze_enabled else 'free'}, "
                               f"head_scale={t.head_scale if t.distance_enabled else 'free'}"
                               + (f", over {self.ramp.transition_s:g} s" if self.ramp.transition_s > 0 else ""))
        self._on_ramp()

    def _on_ramp(self) -> None:
        if self.ramp.settled:
            return
        self._publish(self.ramp.step(1.0 / RAMP_HZ))

    def _publish(self, c: Controls, log: bool = False) -> None:
        self.pub.publish(controls_to_msg(c, self.get_clock().now().nanoseconds))
        if log:
            self.get_logger().info(f"control: emotion={c.emotion} ({c.emotion_intensity:.2f}), "
                                   f"gaze={'(%.2f, %.2f)' % (c.gaze_yaw, c.gaze_pitch) if c.gaze_enabled else 'free'}, "
                                   f"head_scale={c.head_scale if c.distance_enabled else 'free'}")


def main(args: list[str] | None = None) -> int:
    return run_node(AvatarControlNode, args)


if __name__ == "__main__":
    sys.exit(main())
