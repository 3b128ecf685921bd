"""The controls a dialogue system sends, as the ROS-free core reads and ramps them."""

import math

import pytest

from vasa_nodes.core.control_input import ControlRamp, gaze_from_point, parse_emotion
from vasa_nodes.core.motion import EMOTIONS, Controls


def test_emotions_by_name_with_an_optional_intensity():
    assert parse_emotion("happy") == ("happy", 1.0, [])
    assert parse_emotion(" Sad:0.6 ") == ("sad", 0.6, [])
    assert parse_emotion("neutral") == ("neutral", 0.0, [])
    emotion, intensity, warnings = parse_emotion("angry:1.7")
    assert (emotion, intensity) == ("angry", 1.0)
    assert warnings == ["emotion: emotion_intensity 1.7 is outside [0, 1]; clamped to 1"]
    with pytest.raises(ValueError, match="unknown emotion 'bored'; known: " + ", ".join(EMOTIONS)):
        parse_emotion("bored")
    with pytest.raises(ValueError, match="not a number"):
        parse_emotion("happy:lots")


def test_a_gaze_target_point_becomes_a_gaze_direction():
    assert gaze_from_point(1.0, 0.0, 0.0) == (0.0, 0.0, [])
    yaw, pitch, warnings = gaze_from_point(2.0, 0.5, -0.3)
    assert yaw == pytest.approx(math.atan2(0.5, 2.0)) and pitch == pytest.approx(math.atan2(-0.3, math.hypot(2, 0.5)))
    assert not warnings
    yaw, pitch, warnings = gaze_from_point(1.0, 5.0, 0.0)  # far to the side: clamped
    assert yaw == 0.5 and len(warnings) == 1 and "gaze_yaw" in warnings[0]
    with pytest.raises(ValueError, match="point.x must be > 0"):
        gaze_from_point(-1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="not finite"):
        gaze_from_point(float("nan"), 0.0, 0.0)


def test_changes_ramp_in_without_a_jump():
    ramp = ControlRamp(Controls(emotion="happy", emotion_intensity=0.8), transition_s=0.5)
    ramp.set_target(Controls(emotion="sad", emotion_intensity=0.6, gaze_enabled=True, gaze_yaw=0.3))
    steps = [ramp.step(0.04) for _ in range(40)]
    assert ramp.settled and steps[-1] == ramp.target
    # the old emotion fades out before the new one comes in, each step at most 0.04/0.5 of the range
    signed = [(-1 if c.emotion == "happy" else 1) * c.emotion_intensity for c in steps]
    assert all(abs(b - a) <= 0.08 + 1e-9 for a, b in zip([0.8 * -1] + signed, signed))
    assert signed[0] > -0.8 and min(signed) < 0 < max(signed)
    yaws = [c.gaze_yaw for c in steps]
    assert yaws[0] > 0 and all(b >= a for a, b in zip(yaws, yaws[1:])) and yaws[-1] == pytest.approx(0.3)
    instant = ControlRamp(Controls(), transition_s=0.0)
    instant.set_target(Controls(emotion="happy", emotion_intensity=1.0))
    assert instant.step(0.04).emotion_intensity == 1.0
