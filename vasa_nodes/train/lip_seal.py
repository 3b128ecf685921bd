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
The network is an MLP over the stacked frames; the exported ONNX model takes
(batch, PAST + 1 + FUTURE, AUDIO_DIM) and returns (batch,) probabilities.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.blendshapes import INDEX
from ..core.features import N_MELS
from ..core.lip_seal import METADATA_KEY
from ..core.motion_model import AUDIO_DIM
from .corpus import FPS
from .fit import lip_closures, load_data

SEALED_GAP = 0.02
"""Lips count as sealed in a motion target where jawOpen - mouthClose is below this."""


def sealed_frames(motion: np.ndarray) -> np.ndarray:
    """Frames of raw motion vectors whose lips are together (for /p b m/, or a pause in speech)."""
    return motion[:, INDEX["jawOpen"]] - motion[:, INDEX["mouthClose"]] < SEALED_GAP


@dataclass
class LipSealSettings:
    steps: int = 6000
    batch: int = 512
    hidden: int = 256
    past: int = 6      # frames of audio before the frame
    future: int = 1    # frames after it: the live motion generator's default look-ahead
    lr: float = 2e-3
    noise: float = 0.03  # std of the noise added to the normalised audio in training
    threads: int = 0
    seed: int = 0


class LipSealNet(nn.Module):
    def __init__(self, frames: int, hidden: int, audio_dim: int = AUDIO_DIM):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(frames * audio_dim, hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, 1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, frames, audio_dim) -> (B,) logits."""
        return self.net(audio).squeeze(1)


def framed_audio(audio: np.ndarray, lengths: np.ndarray, past: int, future: int) -> tuple[np.ndarray, np.ndarray]:
    """(padded audio, index of each frame in it): each utterance with `past` zero frames before
    and `future` after, as a stream starts and ends in silence."""
    parts, index, at, start = [], [], 0, 0
    for n in lengths:
        n = int(n)
        parts += [np.zeros((past, audio.shape[1]), np.float32), audio[start:start + n],
                  np.zeros((future, audio.shape[1]), np.float32)]
        index.append(at + past + np.arange(n))
        at += past + n + future
        start += n
    return np.concatenate(parts), np.concatenate(index)


def fit_lip_seal(data_paths: list[str], out_path: str, settings: LipSealSettings,
                 log: Callable[[str], None] = print) -> dict:
    """Train on corpus.npz files and export `out_path` (ONNX) and a JSON report beside it."""
    t_begin = time.monotonic()
    torch.manual_seed(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    audio, motion, _, lengths = load_data(data_paths)
    labels = sealed_frames(motion).astype(np.float32)
    speech = audio[:, N_MELS] > 0.5
    if not lip_closures(motion).any():
        raise ValueError("the data has no lip closures to learn from (corpora with /p b m/ are needed)")
    padded, index = framed_audio(audio, lengths, settings.past, settings.future)
    offsets = np.arange(-settings.past, settings.future + 1)
    rng = np.random.default_rng(settings.seed)
    utterance = np.repeat(np.arange(len(lengths)), lengths)
    held = rng.random(len(lengths)) < 0.05
    if held.all() or not held.any():
        held = np.arange(len(lengths)) == 0 if len(lengths) > 1 else np.zeros(1, bool)
    val = held[utterance]
    train_i, val_i = np.nonzero(~val & speech)[0], np.nonzero(val & speech)[0]
    if len(val_i) == 0:
        val_i = train_i
    padded_t = torch.from_numpy(padded)
    labels_t = torch.from_numpy(labels)

    def batch(frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = index[frames][:, None] + offsets[None]
        return padded_t[torch.from_numpy(rows)], labels_t[torch.from_numpy(frames)]

    model = LipSealNet(len(offsets), settings.hidden)
    optim = torch.optim.AdamW(model.parameters(), lr=settings.lr / 2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, settings.lr, total_steps=settings.steps)
    log(f"{len(lengths)} utterances, {len(labels)} frames, {int(speech.sum())} of speech, "
        f"{int(labels[speech].sum())} of them with the lips sealed; "
        f"{sum(p.numel() for p in model.parameters())} parameters")
    history = []

    def validate() -> dict:
        model.eval()
        with torch.no_grad():
            p = np.concatenate([torch.sigmoid(model(batch(val_i[k:k + 8192])[0])).numpy()
                                for k in range(0, len(val_i), 8192)])
        model.train()
        y = labels[val_i] > 0.5
        hit = p > 0.5
        return {"accuracy": round(float(np.mean(hit == y)), 4),
                "recall": round(float(hit[y].mean()) if y.any() else float("nan"), 4),
                "precision": round(float(y[hit].mean()) if hit.any() else float("nan"), 4)}

    for step in range(settings.steps):
        x, y = batch(rng.choice(train_i, settings.batch))
        loss = nn.functional.binary_cross_entropy_with_logits(model(x + settings.noise * torch.randn_like(x)), y)
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        if (step + 1) % 1000 == 0 or step + 1 == settings.steps:
            v = validate()
            history.append({"step": step + 1, "train_loss": round(loss.item(), 4), **v})
            log(f"step {step + 1}: train {loss.item():.4f}, validation {v}")
    report = {"steps": settings.steps, "minutes": round((time.monotonic() - t_begin) / 60, 2),
              "validation": history[-1], "frames": int(len(labels)), "speech_frames": int(speech.sum()),
              "sealed_frames": int(labels[speech].sum()),
              "utterances": int(len(lengths)), "data": [str(p) for p in data_paths], "settings": asdict(settings),
              "history": history}
    meta = {"past": settings.past, "future": settings.future, "audio_dim": AUDIO_DIM, "fps": float(FPS),
            "training": {k: report[k] for k in ("steps", "frames", "validation")}}
    export_lip_seal(model, out_path, meta)
    Path(out_path).with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    return report


def export_lip_seal(model: LipSealNet, path: str, meta: dict) -> None:
    import onnx  # noqa: PLC0415

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames = meta["past"] + 1 + meta["future"]
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Sequential(model, nn.Sigmoid()), (torch.zeros(2, frames, AUDIO_DIM),), path,
                          dynamo=False, input_names=["audio"], output_names=["p_sealed"],
                          dynamic_axes={"audio": {0: "batch"}, "p_sealed": {0: "batch"}}, opset_version=17)
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.producer_name = "vasa_nodes"
    onnx.save(proto, path)
