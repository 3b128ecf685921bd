"""A resting face for the renderer while the motion stream is missing (its generator crashed
or is restarting): blinks, small head motion, gaze shifts, closed mouth, from the rule-based
generator's idle behaviour, eased in from the last received frame and back out into the
stream when it returns, so the picture neither freezes nor jumps.
"""

from __future__ import annotations

import numpy as np

from .motion import MotionFrame, RuleBasedMotionGenerator


class RestingFace:
    """Fills gaps in a motion stream.

    `received(frame)` passes each streamed frame through (eased in from the resting face for
    `blend_s` after a gap); `resting()` gives the next resting frame, `blend_s` to reach
    it from the last streamed frame. Both are called once per rendered frame at `fps`.
    """

    def __init__(self, fps: float = 25.0, seed: int = 0, blend_s: float = 0.4):
        self.fps = float(fps)
        self.blend_frames = max(1, round(blend_s * self.fps))
        self._idle = RuleBasedMotionGenerator(self.fps, seed)
        self._last: np.ndarray | None = None  # the last streamed frame's motion vector
        self._resting_for = 0  # resting frames since the stream stopped
        self._handback = 0  # streamed frames left to ease in
        self._frame = 0

    @property
    def resting_now(self) -> bool:
        """True from the first resting frame until the stream is back."""
        return self._resting_for > 0

    def received(self, frame: MotionFrame) -> MotionFrame:
        """The frame to show for a streamed frame."""
        if self._resting_for:
            self._handback = self.blend_frames
            self._resting_for = 0
        self._last = frame.to_vector()
        self._frame = frame.frame_index + 1
        if not self._handback:
            return frame
        w = self._handback / (self.blend_frames + 1)  # weight of the resting face, falling to 0
        self._handback -= 1
        return self._mix(frame, self._idle.idle(), w, frame.frame_index, frame.voice_activity)

    def resting(self) -> MotionFrame:
        """The next frame to show while no streamed frame comes."""
        idle = self._idle.idle()
        self._resting_for += 1
        self._handback = 0
        index, self._frame = self._frame, self._frame + 1
        if self._last is None:
            return MotionFrame.from_vector(idle.to_vector(), index)
        w = min(1.0, self._resting_for / self.blend_frames)  # weight of the resting face, rising to 1
        last = MotionFrame.from_vector(self._last, index)
        return self._mix(last, idle, w, index, 0.0)

    @staticmethod
    def _mix(stream: MotionFrame, rest: MotionFrame, w: float, index: int, voice_activity: float) -> MotionFrame:
        # Smoothstep of the linear ramp: no kink where the easing starts or ends.
        w = w * w * (3.0 - 2.0 * w)
        x = (1.0 - w) * stream.to_vector() + w * rest.to_vector()
        return MotionFrame.from_vector(x, index, voice_activity)
