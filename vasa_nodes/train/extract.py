"""Training data from real talking videos: track the face per frame, fit the motion vector, and
store it frame-aligned with the audio features, in the same layout as the synthetic corpus.

The fit is geometric and per speaker: mouth aperture above the speaker's own closed-lip
level becomes jawOpen, mouth width against its median becomes smile or pucker, eye opening
against its median becomes blinks, head rotation is taken relative to the median pose, and
the iris position between the eye corners gives the gaze.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.audio import load_audio
from ..core.blendshapes import INDEX
from ..core.evaluation import EvaluationError, read_video_frames
from ..core.face_metrics import measure, relative_rotation
from ..core.face_rig import EYES
from ..core.features import compute_features
from ..core.motion import MOTION_DIM
from ..core.portrait import FaceFitter
from .corpus import FPS, Utterance, augment

FULL_JAW_APERTURE = 0.11
"""Inner-lip gap (face heights) above closed that counts as jawOpen = 1."""


def _gaze(lm: np.ndarray) -> tuple[float, float]:
    """Mean iris offset from the eye centre, in eye widths (x: towards the subject's left, y: up)."""
    offsets = []
    for _, _, (outer, inner), iris in EYES.values():
        centre = (lm[outer, :2] + lm[inner, :2]) / 2
        width = np.linalg.norm(lm[outer, :2] - lm[inner, :2])
        offsets.append((lm[iris, :2] - centre) / width)
    dx, dy = np.mean(offsets, axis=0)
    return float(dx), float(-dy)


def fit_motion(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Motion vectors (T, MOTION_DIM) for tracked landmarks, and a mask of frames with a face."""
    ok = np.array([lm is not None for lm in landmarks])
    if not ok.any():
        raise EvaluationError("the face tracker found no face in any frame")
    reference = next(lm for lm in landmarks if lm is not None)
    n = len(landmarks)
    aperture, width, eyes, rotation, gaze = (np.full(n, np.nan), np.full(n, np.nan), np.full((n, 2), np.nan),
                                             np.full((n, 3), np.nan), np.full((n, 2), np.nan))
    for k, lm in enumerate(landmarks):
        if lm is None:
            continue
        m = measure(lm)
        aperture[k], width[k], eyes[k] = m.mouth_aperture, m.mouth_width, m.eye_opening
        rotation[k] = relative_rotation(reference, lm)
        gaze[k] = _gaze(lm)

    x = np.zeros((n, MOTION_DIM), np.float32)
    closed = np.nanpercentile(aperture, 5)
    x[:, INDEX["jawOpen"]] = np.clip((aperture - closed) / FULL_JAW_APERTURE, 0, 1)
    wide = (width - np.nanmedian(width)) / np.nanmedian(width)
    x[:, INDEX["mouthSmileLeft"]] = x[:, INDEX["mouthSmileRight"]] = np.clip(wide / 0.15, 0, 1)
    x[:, INDEX["mouthPucker"]] = np.clip(-wide / 0.15, 0, 1)
    for side, name in ((0, "eyeBlinkRight"), (1, "eyeBlinkLeft")):
        open_level = np.nanmedian(eyes[:, side])
        x[:, INDEX[name]] = np.clip((0.85 * open_level - eyes[:, side]) / (0.75 * open_level), 0, 1)
    base = 52
    x[:, base:base + 3] = rotation - np.nanmedian(rotation, axis=0)
    x[:, base + 6] = 1.0  # head scale
    # The iris sits ~0.45 eye widths in front of the eyeball's centre: offset -> angle.
    x[:, base + 7:base + 9] = np.arcsin(np.clip((gaze - np.nanmedian(gaze, axis=0)) / 0.45, -1, 1))
    x[~ok] = 0.0
    return np.nan_to_num(x), ok


def extract_video(path: str | Path, fitter: FaceFitter, copies: int = 1,
                  rng: np.random.Generator | None = None) -> list[Utterance]:
    """Frame-aligned audio features and fitted motion from a talking video with sound: one
    utterance with the video's own sound, and `copies` - 1 more whose sound is augmented as the
    recorded training speech is (noise, room, band limits, level, codecs; corpus.augment), all
    with the same tracked motion. The face is tracked once."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    rng = rng if rng is not None else np.random.default_rng(0)
    frames, fps = read_video_frames(path)
    audio = load_audio(path)
    landmarks = [fitter.landmarks(f) for f in frames]
    motion, ok = fit_motion(landmarks)
    meta = {"source": str(path), "video_fps": fps, "tracked_fraction": round(float(ok.mean()), 4),
            "duration_s": round(audio.duration_s, 3)}
    utterances = []
    for k in range(copies):
        samples, info = augment(audio.samples, rng) if k > 0 else (audio.samples, {})
        features = compute_features(samples, FPS)
        # Resample the video-rate motion to the feature rate by nearest frame in time.
        src = np.minimum((np.arange(len(features)) + 0.5) / FPS * fps, len(frames) - 1).astype(int)
        utterances.append(Utterance(features.features, features.loudness_db, features.voice_activity, motion[src],
                                    {**meta, "augmentation": info}))
    return utterances
