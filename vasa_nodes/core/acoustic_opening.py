"""How wide the mouth is open, heard in the sound.

A real speaker's lips follow the syllables smoothly; the motion model learnt its mouth from
phone-based targets on synthetic and read speech, which open widely on a vowel's peak and
otherwise stay low. So the motion generator moves the lip aperture towards the opening heard
in the sound (`open_mouth`): in voiced frames the aperture moves `weight` of the way from the
model's own towards OPEN_APERTURE x heard opening. Lip shapes (rounding, spreading, funnel) stay
the model's, and the lip seal comes after it, so /p b m/ still shut. Outside voice activity
nothing changes: the model's rest holds in silence.

The heard opening comes from one of two places:

- **the mouth-opening model** (`OpeningModel`, shipped as models/mouth_opening.onnx, trained by
  `vasa-train opening` on real talking videos: vasa_nodes/train/opening.py). A small network
  reads the normalised audio around each frame (6 frames back, 1 ahead: a frame model,
  core/frame_model.py) and says how far a real speaker's lips are apart, from their closed
  level (0) to their wide open level (1). Against eleven real talking videos of speakers it
  never saw it correlates 0.52 (median, signal level; see models/MODEL_CARD.md).
- **the 2-4 kHz band** (`heard_opening`, no model): an open vocal tract radiates its upper
  formants strongly; narrowed, rounded or closed lips damp them, and a stop's closure or a
  nasal murmur leaves that band nearly empty. Its level relative to the speaker's running
  peak loudness correlates 0.42 on the same videos (loudness alone 0.15).

Both are functions of the motion model's normalised audio rows: offline and streaming give
the same result, with no state of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .blendshapes import INDEX
from .features import N_MELS, mel_band_centres
from .frame_model import FrameModel

DEFAULT_OPENING_MODEL = Path(__file__).resolve().parent.parent / "models" / "mouth_opening.onnx"
"""The shipped mouth-opening model, installed inside the Python package."""

METADATA_KEY = "vasa_mouth_opening"
"""The ONNX metadata entry of a mouth-opening model (its frame layout, as JSON)."""

BAND_HZ = (2000.0, 4000.0)
"""The band whose level tells the opening (mel bands centred inside it)."""

FLOOR_DB = -10.0
"""Band level (dB relative to the running peak of the frame loudness) heard as a closed mouth."""

RANGE_DB = 30.0
"""From FLOOR_DB, this much more is heard as fully open. Floor and range cover most of the
band's level in the voiced frames of the recorded training speech (5th percentile -16 dB,
median +4.5 dB, 95th percentile +18 dB)."""

OPEN_APERTURE = 0.5
"""Lip aperture (jawOpen - mouthClose) of a fully open mouth."""

DEFAULT_WEIGHT = 0.7
"""How far the generated aperture moves towards the heard one in voiced frames (0: not at all)."""

KEEP_SHUT_BELOW = 0.06
"""Lips the model shuts (aperture below this) stay as they are: blending fades in from here ..."""

BLEND_FULLY_FROM = 0.15
"""... to its full weight at this aperture, so a closure the model makes is not pried open."""

_JAW, _CLOSE = INDEX["jawOpen"], INDEX["mouthClose"]


_CENTRES = mel_band_centres()
_BAND = (_CENTRES > BAND_HZ[0]) & (_CENTRES < BAND_HZ[1])


def heard_opening(audio: np.ndarray) -> np.ndarray:
    """(n,) opening in [0, 1] heard in the 2-4 kHz band, from (n, AUDIO_DIM) normalised audio rows
    (motion_model.AudioNormalizer: log-mel relative to the running peak, /3 + 1, then voice
    activity); 0 without voice activity."""
    audio = np.asarray(audio, np.float64)
    if len(audio) == 0:
        return np.zeros(0, np.float32)
    relative_log_power = 3.0 * (audio[:, :N_MELS][:, _BAND] - 1.0)  # log10, relative to the peak
    level_db = 10.0 * np.log10((10.0 ** relative_log_power).sum(1) + 1e-12)
    opening = np.clip((level_db - FLOOR_DB) / RANGE_DB, 0.0, 1.0) * np.clip(audio[:, N_MELS], 0.0, 1.0)
    return opening.astype(np.float32)


class OpeningModelError(ValueError):
    """The mouth-opening model file is missing, unreadable or not a mouth-opening model."""


class OpeningModel(FrameModel):
    """The mouth-opening model (ONNX Runtime)."""

    KIND = "mouth-opening model"
    METADATA_KEY = METADATA_KEY
    ERROR = OpeningModelError
    DEFAULT_PATH = DEFAULT_OPENING_MODEL
    OFF = "band"

    def openings(self, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """(count,) openings in [0, 1] heard in frames first .. first + count - 1 of `audio`,
        (T, AUDIO_DIM) normalised frames (frames outside it are zeros)."""
        return np.clip(self.run(self.windows(audio, first, count)), 0.0, 1.0)


def load_opening_model(choice: str | None) -> OpeningModel | None:
    """The model a setting names: None or "" for the shipped one, "band" for none (the 2-4 kHz
    band level is heard instead), else a path."""
    return OpeningModel.from_setting(choice)


def open_mouth(motion: np.ndarray, audio: np.ndarray, weight: float = DEFAULT_WEIGHT,
               heard: np.ndarray | None = None) -> np.ndarray:
    """Blend the lip aperture of (n, 52+) motion rows towards the opening heard in their (n, AUDIO_DIM)
    normalised audio rows, in place; returns `motion`. `heard` is the (n,) opening in [0, 1]
    (the mouth-opening model's); without it the 2-4 kHz band's (heard_opening) is used.

    In each frame the aperture a = jawOpen - mouthClose moves by `weight` x voice activity
    towards OPEN_APERTURE x heard opening; mouthClose stays, so the jaw carries the change.
    Lips the model (nearly) shuts are left alone: the weight fades in from an aperture of
    KEEP_SHUT_BELOW to BLEND_FULLY_FROM.
    """
    if weight <= 0.0 or len(motion) == 0:
        return motion
    audio = np.asarray(audio)
    close = motion[:, _CLOSE]
    aperture = np.maximum(motion[:, _JAW] - close, 0.0)
    apart = np.clip((aperture - KEEP_SHUT_BELOW) / (BLEND_FULLY_FROM - KEEP_SHUT_BELOW), 0.0, 1.0)
    w = float(weight) * np.clip(audio[:, N_MELS], 0.0, 1.0) * apart
    target = OPEN_APERTURE * (heard_opening(audio) if heard is None else np.asarray(heard, np.float32))
    motion[:, _JAW] = np.clip(motion[:, _JAW] + w * (target - aperture), 0.0, 1.0)
    return motion
