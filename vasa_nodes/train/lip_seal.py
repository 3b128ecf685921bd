"""Training the lip-seal detector (`vasa-train lipseal`).

A small network that reads the audio around a frame of speech (PAST frames before it,
FUTURE after) and says how likely the lips are together there: shut for a /p b m/, or
resting in a brief pause. Labels come from the motion targets of the same corpora the
motion model learns from (sealed_frames), so every corpus with phone timing (synthetic,
recorded with transcripts) teaches it; only frames with voice activity are used, since
outside speech the motion model's own rest (and emotion) holds. Why a detector beside
the diffusion model: the few-step sampler averages a brief, all-or-nothing event such as
a lip closure into a near miss when the audio is ambiguous; a classifier trained on
exactly that question is sharper, and the motion generator seals the lips where it is
confident (see core/lip_seal.py).

Audio is normalised exactly as for the motion model (core.motion_model.normalize_audio).
The network is an MLP over the stacked frames (train/frame_net.py); the exported ONNX model
takes (batch, PAST + 1 + FUTURE, AUDIO_DIM) and returns (batch,) probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from ..core.blendshapes import INDEX
from ..core.features import N_MELS
from ..core.lip_seal import METADATA_KEY
from .fit import lip_closures, load_data
from .frame_net import (FrameBatches, FrameNet, FrameNetSettings, begin_training, predict, save_frame_model,
                        split_frames, train_frame_net)

SEALED_GAP = 0.02
"""Lips count as sealed in a motion target where jawOpen - mouthClose is below this."""


def sealed_frames(motion: np.ndarray) -> np.ndarray:
    """Frames of raw motion vectors whose lips are together (for /p b m/, or a pause in speech)."""
    return motion[:, INDEX["jawOpen"]] - motion[:, INDEX["mouthClose"]] < SEALED_GAP


@dataclass
class LipSealSettings(FrameNetSettings):
    steps: int = 6000
    hidden: int = 256


def fit_lip_seal(data_paths: list[str], out_path: str, settings: LipSealSettings,
                 log: Callable[[str], None] = print) -> dict:
    """Train on corpus.npz files and export `out_path` (ONNX) and a JSON report beside it."""
    t_begin = time.monotonic()
    begin_training(settings)
    audio, motion, _, lengths = load_data(data_paths)
    labels = sealed_frames(motion).astype(np.float32)
    speech = audio[:, N_MELS] > 0.5
    if not lip_closures(motion).any():
        raise ValueError("the data has no lip closures to learn from (corpora with /p b m/ are needed)")
    batch = FrameBatches(audio, lengths, labels, settings.past, settings.future)
    rng = np.random.default_rng(settings.seed)
    train_i, val_i = split_frames(lengths, speech, 0.05, rng)
    model = FrameNet(batch.frames, settings.hidden)
    log(f"{len(lengths)} utterances, {len(labels)} frames, {int(speech.sum())} of speech, "
        f"{int(labels[speech].sum())} of them with the lips sealed; "
        f"{sum(p.numel() for p in model.parameters())} parameters")

    def validate() -> dict:
        p = 1.0 / (1.0 + np.exp(-predict(model, batch, val_i)))
        y = labels[val_i] > 0.5
        hit = p > 0.5
        return {"accuracy": round(float(np.mean(hit == y)), 4),
                "recall": round(float(hit[y].mean()) if y.any() else float("nan"), 4),
                "precision": round(float(y[hit].mean()) if hit.any() else float("nan"), 4)}

    history = train_frame_net(model, batch, train_i, settings, nn.functional.binary_cross_entropy_with_logits,
                              validate, log, rng)
    report = {"steps": settings.steps, "minutes": round((time.monotonic() - t_begin) / 60, 2),
              "validation": history[-1], "frames": int(len(labels)), "speech_frames": int(speech.sum()),
              "sealed_frames": int(labels[speech].sum()),
              "utterances": int(len(lengths)), "data": [str(p) for p in data_paths], "settings": asdict(settings),
              "history": history}
    save_frame_model(nn.Sequential(model, nn.Sigmoid()), out_path, settings, report, ("steps", "frames", "validation"),
                     METADATA_KEY, "p_sealed")
    return report
