"""Motion from speech features: expression, head pose and gaze, one frame per feature frame.

This is the rule-based generator: articulation from the spectrum and loudness, plus
idle behaviour (blinks, head sway, gaze shifts) that never stops. It is causal and
frame-sequential, so the live node and the offline command produce the same motion for
the same audio and seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .blendshapes import INDEX, NUM_BLENDSHAPES
from .features import N_MELS, FeatureFrames, mel_band_centres

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")

# Expression offset of each emotion at intensity 1 (ARKit names -> activation).
_EMOTION_OFFSETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmileLeft": 0.55, "mouthSmileRight": 0.55, "cheekSquintLeft": 0.35,
              "cheekSquintRight": 0.35, "eyeSquintLeft": 0.2, "eyeSquintRight": 0.2},
    "sad": {"mouthFrownLeft": 0.5, "mouthFrownRight": 0.5, "browInnerUp": 0.6,
            "mouthShrugLower": 0.2, "eyeSquintLeft": 0.1, "eyeSquintRight": 0.1},
    "angry": {"browDownLeft": 0.7, "browDownRight": 0.7, "noseSneerLeft": 0.35,
              "noseSneerRight": 0.35, "mouthPressLeft": 0.3, "mouthPressRight": 0.3,
              "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3},
    "surprised": {"browInnerUp": 0.7, "browOuterUpLeft": 0.7, "browOuterUpRight": 0.7,
                  "eyeWideLeft": 0.6, "eyeWideRight": 0.6, "jawOpen": 0.12},
}


MOTION_LAYOUT = ("52 ARKit blendshapes", "head yaw, pitch, roll (rad)", "head translation x, y, z (face heights)",
                 "head scale", "gaze yaw, pitch (rad)")
MOTION_DIM = NUM_BLENDSHAPES + 3 + 3 + 1 + 2
"""Per-frame motion vector x, the unit the motion model generates (see MotionFrame.to_vector)."""


@dataclass
class MotionFrame:
    """The face's state for one video frame (see msg/FaceMotion.msg for units and ranges)."""

    frame_index: int
    blendshapes: np.ndarray  # (52,) float32 in [0, 1], ARKit order
    head_rotation: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # yaw, pitch, roll (rad)
    head_translation: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # face heights
    head_scale: float = 1.0
    gaze: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # yaw, pitch (rad)
    voice_activity: float = 0.0

    @staticmethod
    def neutral(frame_index: int = 0) -> "MotionFrame":
        return MotionFrame(frame_index, np.zeros(NUM_BLENDSHAPES, np.float32))

    def to_vector(self) -> np.ndarray:
        """The motion vector x of this frame, MOTION_DIM float32 values in MOTION_LAYOUT order."""
        return np.concatenate([self.blendshapes, self.head_rotation, self.head_translation, [self.head_scale],
                               self.gaze]).astype(np.float32)

    @staticmethod
    def from_vector(x: np.ndarray, frame_index: int = 0, voice_activity: float = 0.0) -> "MotionFrame":
        x = np.asarray(x, np.float32)
        n = NUM_BLENDSHAPES
        return MotionFrame(frame_index, np.clip(x[:n], 0.0, 1.0), x[n:n + 3].copy(), x[n + 3:n + 6].copy(),
                           float(x[n + 6]), x[n + 7:n + 9].copy(), voice_activity)

    def with_blendshapes(self, **values: float) -> "MotionFrame":
        """A copy with the named ARKit coefficients set (handy for sheets and tests)."""
        b = self.blendshapes.copy()
        for name, v in values.items():
            b[INDEX[name]] = v
        return replace(self, blendshapes=b)


def motion_from_message(msg) -> MotionFrame:
    """A MotionFrame from a FaceMotion message, rclpy's or a bag's (anything with its fields).

    Maps coefficients by name, so a publisher may send any subset in any order; ValueError for
    mismatched names and values, or NaN/Inf."""
    if len(msg.blendshape_names) != len(msg.blendshapes):
        raise ValueError(f"FaceMotion has {len(msg.blendshape_names)} names but {len(msg.blendshapes)} values")
    b = np.zeros(NUM_BLENDSHAPES, np.float32)
    for name, value in zip(msg.blendshape_names, msg.blendshapes):
        if name in INDEX:
            b[INDEX[name]] = value
    values = np.concatenate([b, [msg.head_yaw, msg.head_pitch, msg.head_roll, msg.head_scale,
                                 msg.gaze_yaw, msg.gaze_pitch], np.asarray(msg.head_translation, np.float32)])
    if not np.all(np.isfinite(values)):
        raise ValueError("FaceMotion contains NaN or Inf")
    return MotionFrame(
        frame_index=int(msg.frame_index),
        blendshapes=np.clip(b, 0.0, 1.0),
        head_rotation=np.array([msg.head_yaw, msg.head_pitch, msg.head_roll], np.float32),
        head_translation=np.asarray(msg.head_translation, np.float32),
        head_scale=float(np.clip(msg.head_scale if msg.head_scale > 0 else 1.0, 0.5, 2.0)),
        gaze=np.array([msg.gaze_yaw, msg.gaze_pitch], np.float32),
        voice_activity=float(msg.voice_activity),
    )


@dataclass
class Controls:
    """Behaviour controls (mirrors msg/AvatarControl.msg)."""

    gaze_enabled: bool = False
    gaze_yaw: float = 0.0
    gaze_pitch: float = 0.0
    distance_enabled: bool = False
    head_scale: float = 1.0
    emotion: str = "neutral"
    emotion_intensity: float = 0.0
    motion_intensity: float = 1.0

    def validated(self) -> "Controls":
        """Clamp to the documented ranges; raise ValueError for an unknown emotion."""
        emotion = self.emotion or "neutral"
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
        return Controls(
            gaze_enabled=bool(self.gaze_enabled),
            gaze_yaw=float(np.clip(self.gaze_yaw, -0.5, 0.5)),
            gaze_pitch=float(np.clip(self.gaze_pitch, -0.4, 0.4)),
            distance_enabled=bool(self.distance_enabled),
            head_scale=float(np.clip(self.head_scale, 0.5, 2.0)),
            emotion=emotion,
            emotion_intensity=float(np.clip(self.emotion_intensity, 0.0, 1.0)),
            motion_intensity=float(np.clip(self.motion_intensity, 0.0, 2.0)),
        )


def emotion_offset(controls: Controls) -> np.ndarray:
    """(52,) blendshape offset of the controls' emotion at its intensity."""
    out = np.zeros(NUM_BLENDSHAPES, np.float32)
    c = controls.validated()
    for name, v in _EMOTION_OFFSETS[c.emotion].items():
        out[INDEX[name]] = v * c.emotion_intensity
    return out


def _smoothing(rate_per_s: float, fps: float) -> float:
    """Per-frame coefficient of a one-pole filter with the given bandwidth."""
    return float(1.0 - np.exp(-rate_per_s / fps))


class BlinkTimer:
    """Spontaneous blinks as a renewal process: intervals of 1.2 s + Gamma(2, 1.15 s) (mean
    about 3.5 s, 17 per minute, never closer than 1.2 s); each blink closes in 60 ms, stays
    closed 40 ms and opens in 100 ms. Draws from the given generator, so a seed fixes them."""

    def __init__(self, fps: float, rng: np.random.Generator):
        self.dt = 1.0 / fps
        self._rng = rng
        self._t = 0.0
        self._next = self._interval()
        self._phase = -1.0

    def _interval(self) -> float:
        return 1.2 + self._rng.gamma(2.0, 1.15)

    def step(self) -> float:
        """Lid closure (0 open .. 1 closed) of the next frame."""
        closed = 0.0
        if self._phase < 0 and self._t >= self._next:
            self._phase = 0.0
        if self._phase >= 0:
            p = self._phase
            closed = p / 0.06 if p < 0.06 else 1.0 if p < 0.10 else max(0.0, 1.0 - (p - 0.10) / 0.10)
            self._phase += self.dt
            if self._phase > 0.2:
                self._phase = -1.0
                self._next = self._t + self._interval()
        self._t += self.dt
        return closed


class RuleBasedMotionGenerator:
    """Causal speech-to-motion rules with lifelike idle behaviour.

    Articulation: the jaw follows the loudness of the voiced band with fast attack and
    slower release; low spectral centroid (rounded vowels) adds funnel/pucker, high
    centroid (fricatives, /i/) spreads the lips; in silence the lips close.
    Non-verbal: blinks at 10-30 per minute, head sway that grows with speech energy and
    nods on stressed onsets, brow raises on loud onsets, gaze saccades every 1-4 s.
    """

    def __init__(self, fps: float = 25.0, seed: int = 0, controls: Controls | None = None):
        self.fps = fps
        self.seed = seed
        self.controls = (controls or Controls()).validated()
        self._mel_hz = mel_band_centres()
        self._voiced_band = (self._mel_hz > 150) & (self._mel_hz < 4000)
        self._oral_band = (self._mel_hz > 700) & (self._mel_hz < 3500)
        self.reset()

    def reset(self) -> None:
        """Start a new stream with the same seed: identical input gives identical motion."""
        self._rng = np.random.default_rng(self.seed)
        self._frame = 0
        self._jaw = 0.0
        self._round = 0.0
        self._spread = 0.0
        self._brow = 0.0
        self._prev_loud = -100.0
        self._speech_level = 0.0
        self._peak_db = -30.0
        self._blinks = BlinkTimer(self.fps, self._rng)
        self._head = np.zeros(3)
        self._head_vel = np.zeros(3)
        self._nod = 0.0
        self._gaze = np.zeros(2)
        self._gaze_target = np.zeros(2)
        self._next_saccade = self._rng.uniform(1.0, 4.0)
        self._emotion = np.zeros(NUM_BLENDSHAPES)
        self._scale = 1.0

    def set_controls(self, controls: Controls) -> None:
        self.controls = controls.validated()

    @property
    def frames_received(self) -> int:
        """Feature frames consumed so far (= frames generated; the next frame's index)."""
        return self._frame

    def settle(self) -> None:
        """Jump the eased states (emotion, distance) to the current controls' targets, as if
        they had been in force for a while."""
        self._emotion = emotion_offset(self.controls).astype(np.float64)
        self._scale = self._scale_target()

    def _scale_target(self) -> float:
        return self.controls.head_scale if self.controls.distance_enabled else 1.0

    def step(self, features: np.ndarray, loudness_db: float, voice_activity: float) -> MotionFrame:
        """Motion for the next frame from that frame's features."""
        dt = 1.0 / self.fps
        c = self.controls
        b = np.zeros(NUM_BLENDSHAPES)
        speaking = voice_activity

        # Articulation. Levels relative to the running speech peak keep the jaw range the
        # same for quiet and loud talkers.
        # The jaw follows the level of the oral band (700-3500 Hz, where vowel formants carry
        # energy) within 15 dB of its running peak. Nasals and voiced stops (/m/, /b/) are loud
        # below 500 Hz but weak there, so the mouth closes on them, and between syllables.
        mel = np.asarray(features, np.float64)
        oral_db = 10.0 * np.log10((10.0 ** mel[self._oral_band]).sum() + 1e-12)
        if speaking > 0.5:
            self._peak_db = max(oral_db, self._peak_db - 0.5 * dt)
        rel = np.clip((oral_db - (self._peak_db - 15.0)) / 15.0, 0.0, 1.0)
        target_jaw = speaking * rel * 0.8
        k = _smoothing(40.0 if target_jaw > self._jaw else 18.0, self.fps)
        self._jaw += k * (target_jaw - self._jaw)

        power = 10.0 ** mel[self._voiced_band]
        centroid = float((power * self._mel_hz[self._voiced_band]).sum() / max(power.sum(), 1e-12))
        rounding = np.clip((1400.0 - centroid) / 900.0, 0.0, 1.0) * speaking
        spreading = np.clip((centroid - 2200.0) / 1500.0, 0.0, 1.0) * speaking
        ks = _smoothing(20.0, self.fps)
        self._round += ks * (rounding - self._round)
        self._spread += ks * (spreading - self._spread)

        b[INDEX["jawOpen"]] = self._jaw
        b[INDEX["mouthLowerDownLeft"]] = b[INDEX["mouthLowerDownRight"]] = 0.35 * self._jaw
        b[INDEX["mouthUpperUpLeft"]] = b[INDEX["mouthUpperUpRight"]] = 0.15 * self._jaw
        b[INDEX["mouthFunnel"]] = 0.5 * self._round * (0.3 + self._jaw)
        b[INDEX["mouthPucker"]] = 0.45 * self._round * (1.0 - self._jaw)
        b[INDEX["mouthStretchLeft"]] = b[INDEX["mouthStretchRight"]] = 0.35 * self._spread
        # Silence: lips sealed; during speech they close on loudness dips (stops, /m/).
        b[INDEX["mouthClose"]] = np.clip(0.25 - self._jaw, 0.0, 0.25) * (1.0 - 0.5 * speaking)
        b[INDEX["mouthPressLeft"]] = b[INDEX["mouthPressRight"]] = 0.15 * (1.0 - speaking)

        # Brows rise on loud onsets (emphasis).
        onset = max(0.0, loudness_db - self._prev_loud - 6.0) / 12.0 * speaking
        self._brow = max(self._brow * (1.0 - _smoothing(3.0, self.fps)), min(onset, 1.0) * 0.6)
        b[INDEX["browInnerUp"]] = self._brow
        b[INDEX["browOuterUpLeft"]] = b[INDEX["browOuterUpRight"]] = 0.7 * self._brow

        b[INDEX["eyeBlinkLeft"]] = b[INDEX["eyeBlinkRight"]] = self._blinks.step()
        t = self._frame * dt

        # Head: a damped random walk (slow sway) whose energy grows with speech, plus a
        # nod on each onset.
        self._speech_level += _smoothing(2.0, self.fps) * (speaking * rel - self._speech_level)
        energy = (0.4 + 0.8 * self._speech_level) * c.motion_intensity
        # Stationary std of this oscillator is noise / sqrt(2 * damping * stiffness):
        # about 1.2 deg of yaw when idle, 3 deg while speaking.
        stiffness, damping = 6.0, 4.0
        noise = self._rng.standard_normal(3) * np.array([0.3, 0.2, 0.12]) * energy
        self._head_vel += dt * (-stiffness * self._head - damping * self._head_vel) + np.sqrt(dt) * noise
        self._head += dt * self._head_vel
        self._nod = max(self._nod * (1.0 - _smoothing(6.0, self.fps)), min(onset, 1.0))
        head = self._head + np.array([0.0, -0.05 * self._nod * c.motion_intensity, 0.0])

        # Gaze: hold a target, jump to a new one now and then (saccade), return to the
        # commanded or central direction most of the time.
        if t >= self._next_saccade:
            spread = 0.12 * c.motion_intensity
            self._gaze_target = self._rng.uniform(-1, 1, 2) * np.array([spread, 0.6 * spread])
            if self._rng.random() < 0.4:
                self._gaze_target[:] = 0.0
            self._next_saccade = t + self._rng.uniform(1.0, 4.0)
        self._gaze += _smoothing(30.0, self.fps) * (self._gaze_target - self._gaze)
        if c.gaze_enabled:
            # Commanded main gaze: the head turns a third of the way, the eyes do the rest
            # and cancel the head's sway (vestibulo-ocular reflex); small saccades remain.
            main = np.array([c.gaze_yaw, c.gaze_pitch])
            head = head + np.array([main[0], main[1], 0.0]) / 3.0
            gaze = main - head[:2] + 0.3 * self._gaze
        else:
            gaze = self._gaze

        # Emotion offset eases in, and distance (scale) eases to its target.
        self._emotion += _smoothing(3.0, self.fps) * (emotion_offset(c) - self._emotion)
        b = b + self._emotion
        self._scale += _smoothing(2.0, self.fps) * (self._scale_target() - self._scale)

        self._prev_loud = loudness_db
        frame = MotionFrame(
            frame_index=self._frame,
            blendshapes=np.clip(b, 0.0, 1.0).astype(np.float32),
            head_rotation=np.clip(head, [-0.6, -0.5, -0.5], [0.6, 0.5, 0.5]).astype(np.float32),
            head_translation=np.array([0.25 * head[0], -0.15 * head[1], 0.0], np.float32),
            head_scale=float(self._scale),
            gaze=np.clip(gaze, [-0.5, -0.4], [0.5, 0.4]).astype(np.float32),
            voice_activity=float(voice_activity),
        )
        self._frame += 1
        return frame

    def generate(self, frames: FeatureFrames) -> list[MotionFrame]:
        """Motion for a run of feature frames (continues the current stream)."""
        return [self.step(frames.features[i], float(frames.loudness_db[i]), float(frames.voice_activity[i]))
                for i in range(len(frames))]

    def push(self, frames: FeatureFrames, ahead: FeatureFrames | None = None) -> list[MotionFrame]:
        """Streaming: the motion frames of these feature frames (the rules need no look-ahead,
        so `ahead`, the next frame ahead of time, is not used)."""
        return self.generate(frames)

    def finish(self) -> list[MotionFrame]:
        """End of a stream: nothing is held back."""
        return []

    def idle(self) -> MotionFrame:
        """Next frame with no audio at all: the face keeps living, mouth closed."""
        return self.step(np.full(N_MELS, -10.0, np.float32), -100.0, 0.0)
