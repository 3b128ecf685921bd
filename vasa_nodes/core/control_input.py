"""Controls a dialogue system sends (ROS-free core of avatar_control's topics), and smooth transitions.

- `parse_emotion("sad:0.6")`: an emotion by name, with an optional intensity (default 1).
- `gaze_from_point(x, y, z)`: the main gaze direction towards a point in the avatar camera
  frame. That frame (the `frame_id` of the rendered images, `avatar_camera`) has its origin
  at the camera that films the avatar, which is where the viewer sees the face from; x points
  out of the screen towards the viewer, y to the viewer's right (the avatar's left), z up
  (REP 103 axes, seen from the avatar). A point at (1, 0, 0) is looked at straight on;
  gaze yaw = atan2(y, x) (+ to the avatar's left), pitch = atan2(z, hypot(x, y)) (+ up).
- `ControlRamp`: moves the published controls towards their target at a bounded rate, so a
  new emotion, gaze or distance never jumps: each number crosses its whole range in
  `transition_s`; a change of emotion first fades the old one out, then the new one in.

Values outside their ranges are clamped, and each clamp is reported (`warnings`), naming
the field; an unknown emotion raises ValueError listing the known ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .motion import EMOTIONS, Controls

# The documented ranges of AvatarControl's numbers (msg/AvatarControl.msg, Controls.validated()).
RANGES = {"gaze_yaw": (-0.5, 0.5), "gaze_pitch": (-0.4, 0.4), "head_scale": (0.5, 2.0),
          "emotion_intensity": (0.0, 1.0), "motion_intensity": (0.0, 2.0)}


def _clamp(field: str, value: float, warnings: list[str], source: str) -> float:
    lo, hi = RANGES[field]
    if lo <= value <= hi:
        return value
    clamped = min(max(value, lo), hi)
    warnings.append(f"{source}: {field} {value:g} is outside [{lo:g}, {hi:g}]; clamped to {clamped:g}")
    return clamped


def parse_emotion(text: str, source: str = "emotion") -> tuple[str, float, list[str]]:
    """'happy' (intensity 1), 'sad:0.6', 'neutral' (intensity 0) -> (emotion, intensity, warnings).

    Raises ValueError for an unknown emotion (listing the known ones) or an intensity that is
    not a number; an intensity outside [0, 1] is clamped with a warning."""
    name, sep, level = text.strip().partition(":")
    name = name.strip().lower()
    if name not in EMOTIONS:
        raise ValueError(f"{source}: unknown emotion {name!r}; known: {', '.join(EMOTIONS)}")
    warnings: list[str] = []
    if not sep:
        return name, 0.0 if name == "neutral" else 1.0, warnings
    try:
        intensity = float(level)
    except ValueError:
        raise ValueError(f"{source}: emotion_intensity is not a number: {level.strip()!r}") from None
    if not math.isfinite(intensity):
        raise ValueError(f"{source}: emotion_intensity is not finite: {level.strip()!r}")
    return name, _clamp("emotion_intensity", intensity, warnings, source), warnings


def gaze_from_point(x: float, y: float, z: float, source: str = "gaze_target") -> tuple[float, float, list[str]]:
    """(gaze_yaw, gaze_pitch, warnings) towards a point of the avatar camera frame (see the module doc).

    Raises ValueError for a point that is not finite or not in front of the screen (x <= 0);
    a direction outside the gaze ranges is clamped with a warning naming the field."""
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise ValueError(f"{source}: point ({x}, {y}, {z}) is not finite")
    if x <= 0:
        raise ValueError(f"{source}: point.x must be > 0 (in front of the screen, towards the viewer), got {x:g}")
    warnings: list[str] = []
    yaw = _clamp("gaze_yaw", math.atan2(y, x), warnings, source)
    pitch = _clamp("gaze_pitch", math.atan2(z, math.hypot(x, y)), warnings, source)
    return yaw, pitch, warnings


@dataclass
class ControlRamp:
    """The published controls, moving towards `target` by `step(dt)`; `transition_s` 0 = at once."""

    current: Controls
    transition_s: float = 0.5

    def __post_init__(self):
        self.current = self.current.validated()
        self.target = self.current

    def set_target(self, target: Controls) -> None:
        self.target = target.validated()
        if self.current.gaze_enabled != self.target.gaze_enabled and self.target.gaze_enabled:
            # From the generator's own gaze to a held one: start from straight ahead, the centre
            # the free gaze moves about.
            self.current = replace(self.current, gaze_enabled=True, gaze_yaw=0.0, gaze_pitch=0.0)
        if self.current.distance_enabled != self.target.distance_enabled and self.target.distance_enabled:
            self.current = replace(self.current, distance_enabled=True, head_scale=1.0)

    @property
    def settled(self) -> bool:
        return self.current == self.target

    def step(self, dt: float) -> Controls:
        """Advance by dt seconds; returns the new current controls."""
        c, t = self.current, self.target
        if self.transition_s <= 0:
            self.current = t
            return t

        def toward(field: str, now: float, goal: float) -> float:
            lo, hi = RANGES[field]
            limit = (hi - lo) * dt / self.transition_s
            return goal if abs(goal - now) <= limit else now + math.copysign(limit, goal - now)

        emotion, intensity = c.emotion, c.emotion_intensity
        if t.emotion == emotion or intensity == 0.0:
            emotion = t.emotion
            intensity = toward("emotion_intensity", intensity, t.emotion_intensity)
        else:  # fade the old emotion out first; the new one comes in from 0
            intensity = toward("emotion_intensity", intensity, 0.0)
        self.current = Controls(
            gaze_enabled=t.gaze_enabled,
            gaze_yaw=toward("gaze_yaw", c.gaze_yaw, t.gaze_yaw) if t.gaze_enabled else t.gaze_yaw,
            gaze_pitch=toward("gaze_pitch", c.gaze_pitch, t.gaze_pitch) if t.gaze_enabled else t.gaze_pitch,
            distance_enabled=t.distance_enabled,
            head_scale=toward("head_scale", c.head_scale, t.head_scale) if t.distance_enabled else t.head_scale,
            emotion=emotion, emotion_intensity=intensity,
            motion_intensity=toward("motion_intensity", c.motion_intensity, t.motion_intensity),
        )
        return self.current
