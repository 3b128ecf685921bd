"""Training the mouth-opening model (`vasa-train opening`) on real talking videos.

The model hears how far a real speaker's lips are apart: a small network reads the
normalised audio around a frame (PAST frames before it, FUTURE after, as the lip-seal
detector does) and gives the lip aperture there, from the speaker's closed level (0) to their
wide open level (1). The motion generator moves the generated lip aperture towards it in
speech (core/acoustic_opening.py).

Data: corpora from `vasa-train extract` (real talking videos with sound). Each video's
aperture (jawOpen - mouthClose of its fitted motion) is scaled per video, its 5th percentile
to 0 and its 95th to 1, so that speakers, face sizes and cameras agree. Many recordings carry
an offset between picture and sound (a few frames, more after re-encoding), which would teach
the model the mouth of a moment before or after; so each video is first shifted by the offset,
up to MAX_OFFSET frames either way, at which its aperture agrees best with the opening heard
in its 2-4 kHz band (core.acoustic_opening.heard_opening). Videos weigh as the square root of
their length, so that many short clips of one speaker do not drown a few long ones of others.

What speakers the data holds matters more than how much of it there is: many different
speakers, in continuous speech, are what carries over to new voices (models/MODEL_CARD.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..core.acoustic_opening import METADATA_KEY, heard_opening
from ..core.blendshapes import INDEX
from .fit import load_data
from .frame_net import (FrameBatches, FrameNet, FrameNetSettings, begin_training, predict, save_frame_model,
                        split_frames, train_frame_net)

MAX_OFFSET = 10
"""Largest picture-sound offset searched per video, in frames (0.4 s at 25 fps)."""


@dataclass
class OpeningSettings(FrameNetSettings):
    steps: int = 750  # short on purpose: longer fits the training speakers and hears new voices worse
    weight_decay: float = 0.05
    max_offset: int = MAX_OFFSET  # picture-sound offsets searched, frames either way


def scaled_aperture(motion: np.ndarray) -> np.ndarray | None:
    """One video's lip aperture, its 5th percentile at 0 and its 95th at 1 (None if it hardly moves)."""
    a = motion[:, INDEX["jawOpen"]] - motion[:, INDEX["mouthClose"]]
    lo, hi = np.percentile(a, 5), np.percentile(a, 95)
    if hi - lo < 1e-3:
        return None
    return np.clip((a - lo) / (hi - lo), -0.5, 1.5).astype(np.float32)


def sync_offset(aperture: np.ndarray, heard: np.ndarray, max_offset: int) -> tuple[int, float]:
    """(offset, correlation): the aperture at frame t agrees best with the heard opening at t + offset."""
    n = len(aperture)
    best = (0, -np.inf)
    for lag in range(-max_offset, max_offset + 1):
        a = aperture[max(0, -lag):n - max(0, lag)]
        h = heard[max(0, lag):n + min(0, lag)]
        if len(a) < 10 or a.std() < 1e-6 or h.std() < 1e-6:
            continue
        r = float(np.corrcoef(a, h)[0, 1])
        if r > best[1]:
            best = (lag, r)
    return best


def shifted(y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(y moved `lag` frames later, mask of the frames it still covers)."""
    out, ok = np.zeros_like(y), np.zeros(len(y), bool)
    if lag >= 0:
        out[lag:], ok[lag:] = y[:len(y) - lag], True
    else:
        out[:lag], ok[:lag] = y[-lag:], True
    return out, ok


def fit_opening(data_paths: list[str], out_path: str, settings: OpeningSettings,
                log: Callable[[str], None] = print) -> dict:
    """Train on `vasa-train extract` corpora and export `out_path` (ONNX) and a JSON report beside it."""
    t_begin = time.monotonic()
    begin_training(settings)
    audio, motion, _, lengths = load_data(data_paths)
    targets = np.zeros(len(motion), np.float32)
    usable = np.zeros(len(motion), bool)
    weights = np.zeros(len(motion), np.float64)
    offsets, start = [], 0
    for n in lengths:
        s = slice(start, start + int(n))
        start += int(n)
        y = scaled_aperture(motion[s])
        if y is None:
            offsets.append(None)
            continue
        lag, r = sync_offset(y, heard_opening(audio[s]), settings.max_offset)
        targets[s], usable[s] = shifted(y, lag)
        weights[s] = 1.0 / np.sqrt(n)
        offsets.append({"frames": lag, "correlation": round(r, 3)})
    if not usable.any():
        raise ValueError("the data has no lip movement to learn from (corpora from `vasa-train extract` are needed)")
    batch = FrameBatches(audio, lengths, targets, settings.past, settings.future)
    rng = np.random.default_rng(settings.seed)
    train_i, val_i = split_frames(lengths, usable, 0.1, rng)
    p_train = weights[train_i] / weights[train_i].sum()
    model = FrameNet(batch.frames, settings.hidden)
    lags = [o["frames"] for o in offsets if o]
    log(f"{len(lengths)} videos, {int(usable.sum())} frames; picture-sound offsets {min(lags)}..{max(lags)} "
        f"frames (median {np.median(lags):g}); {sum(p.numel() for p in model.parameters())} parameters")

    def validate() -> dict:
        p, y = predict(model, batch, val_i), targets[val_i]
        return {"correlation": round(float(np.corrcoef(p, y)[0, 1]), 4),
                "mse": round(float(np.mean((p - y) ** 2)), 4)}

    history = train_frame_net(model, batch, train_i, settings, lambda out, y: ((out - y) ** 2).mean(), validate,
                              log, rng, p=p_train, every=500)
    report = {"steps": settings.steps, "minutes": round((time.monotonic() - t_begin) / 60, 2),
              "validation": history[-1], "frames": int(usable.sum()), "videos": int(len(lengths)),
              "offsets_frames": offsets, "data": [str(p) for p in data_paths], "settings": asdict(settings),
              "history": history}
    save_frame_model(model, out_path, settings, report, ("steps", "frames", "videos", "validation"), METADATA_KEY,
                     "opening")
    return report
