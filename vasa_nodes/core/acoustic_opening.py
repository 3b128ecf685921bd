"""How wide the mouth is open, heard in the sound: the level of the 2-4 kHz band.

An open vocal tract radiates its upper formants strongly; narrowed, rounded or closed lips
damp them, and a stop's closure or a nasal murmur leaves that band nearly empty. So the band's
level, relative to the speaker's running peak loudness, follows a real speaker's lip aperture
more closely than the motion model's own mouth does: against eleven real talking videos
(tracked inner-lip gap, same audio) it correlates 0.42 (median), the motion model alone 0.28,
loudness alone 0.15 (see models/MODEL_CARD.md). The motion model learnt its mouth from
phone-based targets on synthetic and read speech, which open widely on a vowel's peak and
otherwise stay low; real mouths follow the syllables more smoothly.

The motion generator blends the two (`open_mouth`): in voiced frames the aperture moves
`weight` of the way from the model's own towards the one heard here. Lip shapes (rounding,
spreading, funnel) stay the model's, and the lip seal comes after it, so /p b m/ still shut.
Outside voice activity nothing changes: the model's rest holds in silence.

A pure function of the motion model's normalised audio rows, frame by frame: offline and
streaming give the same result, with no state of its own.
"""

from __future__ import annotations

import numpy as np

from .blendshapes import INDEX
from .features import N_MELS, mel_band_centres

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
    """(n,) opening in [0, 1] from (n, AUDIO_DIM) normalised audio rows (motion_model.AudioNormalizer:
    log-mel relative to the running peak, /3 + 1, then voice activity); 0 without voice activity."""
    audio = np.asarray(audio, np.float64)
    if len(audio) == 0:
        return np.zeros(0, np.float32)
    relative_log_power = 3.0 * (audio[:, :N_MELS][:, _BAND] - 1.0)  # log10, relative to the peak
    level_db = 10.0 * np.log10((10.0 ** relative_log_power).sum(1) + 1e-12)
    opening = np.clip((level_db - FLOOR_DB) / RANGE_DB, 0.0, 1.0) * np.clip(audio[:, N_MELS], 0.0, 1.0)
    return opening.astype(np.float32)


def open_mouth(motion: np.ndarray, audio: np.ndarray, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """Blend the lip aperture of (n, 52+) motion rows towards the opening heard in their (n, AUDIO_DIM)
    normalised audio rows, in place; returns `motion`.

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
    target = OPEN_APERTURE * heard_opening(audio)
    motion[:, _JAW] = np.clip(motion[:, _JAW] + w * (target - aperture), 0.0, 1.0)
    return motion
