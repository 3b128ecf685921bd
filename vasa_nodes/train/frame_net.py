"""What the small frame models share in training: the network, the framing of the audio,
the held-out utterances and the ONNX export (`vasa-train lipseal`, `vasa-train opening`).

A frame model reads the motion model's normalised audio around one frame (PAST frames before
it, FUTURE after) and gives one value for it; the run time side is core/frame_model.py.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.motion_model import AUDIO_DIM
from .corpus import FPS


@dataclass
class FrameNetSettings:
    steps: int = 2000
    batch: int = 512
    hidden: int = 128
    past: int = 6      # frames of audio before the frame
    future: int = 1    # frames after it: the live motion generator's default look-ahead
    lr: float = 2e-3   # peak of the one-cycle learning rate
    weight_decay: float = 0.01
    noise: float = 0.03  # std of the noise added to the normalised audio in training
    threads: int = 0
    seed: int = 0


class FrameNet(nn.Module):
    """An MLP over the stacked frames: (B, frames, audio_dim) -> (B,)."""

    def __init__(self, frames: int, hidden: int, audio_dim: int = AUDIO_DIM):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(frames * audio_dim, hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, 1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
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


class FrameBatches:
    """Windows of frames from the padded audio of all utterances, with their targets."""

    def __init__(self, audio: np.ndarray, lengths: np.ndarray, targets: np.ndarray, past: int, future: int):
        padded, self.index = framed_audio(audio, lengths, past, future)
        self.padded, self.targets = torch.from_numpy(padded), torch.from_numpy(np.asarray(targets, np.float32))
        self.offsets = np.arange(-past, future + 1)

    @property
    def frames(self) -> int:
        return len(self.offsets)

    def __call__(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.index[frames][:, None] + self.offsets[None]
        return self.padded[torch.from_numpy(rows)], self.targets[torch.from_numpy(frames)]


def begin_training(settings: FrameNetSettings) -> None:
    """Seed torch and set its threads, before the network is made."""
    torch.manual_seed(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)


def split_frames(lengths: np.ndarray, usable: np.ndarray, fraction: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices of the `usable` frames: validation holds the frames of about
    `fraction` of the utterances (at least one when there are two or more); with none to hold out,
    the training frames validate."""
    held = rng.random(len(lengths)) < fraction
    if held.all() or not held.any():
        held = np.arange(len(lengths)) == 0 if len(lengths) > 1 else np.zeros(1, bool)
    val = held[np.repeat(np.arange(len(lengths)), lengths)]
    train_i, val_i = np.nonzero(~val & usable)[0], np.nonzero(val & usable)[0]
    return train_i, (val_i if len(val_i) else train_i)


def train_frame_net(model: nn.Module, batch: FrameBatches, frames: np.ndarray, settings: FrameNetSettings,
                    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], validate: Callable[[], dict],
                    log: Callable[[str], None], rng: np.random.Generator, p: np.ndarray | None = None,
                    every: int = 1000) -> list[dict]:
    """`settings.steps` steps of AdamW with a one-cycle learning rate on batches drawn from
    `frames` (with probabilities `p`), Gaussian noise on the audio; validated every `every`
    steps and at the end. Returns the history of validations."""
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=settings.lr / 2, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, settings.lr, total_steps=settings.steps)
    history = []
    for step in range(settings.steps):
        x, y = batch(rng.choice(frames, settings.batch, p=p))
        value = loss(model(x + settings.noise * torch.randn_like(x)), y)
        optim.zero_grad()
        value.backward()
        optim.step()
        sched.step()
        if (step + 1) % every == 0 or step + 1 == settings.steps:
            v = validate()
            history.append({"step": step + 1, "train_loss": round(value.item(), 4), **v})
            log(f"step {step + 1}: train {value.item():.4f}, validation {v}")
    return history


def predict(model: nn.Module, batch: FrameBatches, frames: np.ndarray) -> np.ndarray:
    """The model's outputs for these frames (in eval mode, without gradients, in chunks)."""
    training = model.training
    model.eval()
    with torch.no_grad():
        out = np.concatenate([model(batch(frames[k:k + 8192])[0]).numpy() for k in range(0, len(frames), 8192)])
    model.train(training)
    return out


def save_frame_model(model: nn.Module, out_path: str, settings: FrameNetSettings, report: dict,
                     training_keys: tuple[str, ...], metadata_key: str, output: str) -> None:
    """Export `out_path` (ONNX; its metadata: the frame layout and report[training_keys]) and write
    `report` as JSON beside it."""
    meta = {"past": settings.past, "future": settings.future, "audio_dim": AUDIO_DIM, "fps": float(FPS),
            "training": {k: report[k] for k in training_keys}}
    export_frame_model(model, out_path, meta, metadata_key, output)
    Path(out_path).with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))


def export_frame_model(model: nn.Module, path: str, meta: dict, metadata_key: str, output: str) -> None:
    """ONNX with input "audio" (batch, frames, AUDIO_DIM), output `output` (batch,), and `meta`
    as JSON under `metadata_key` (what core/frame_model.py reads)."""
    import onnx  # noqa: PLC0415

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames = meta["past"] + 1 + meta["future"]
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, frames, AUDIO_DIM),), path, dynamo=False, input_names=["audio"],
                          output_names=[output], dynamic_axes={"audio": {0: "batch"}, output: {0: "batch"}},
                          opset_version=17)
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = metadata_key, json.dumps(meta)
    proto.producer_name = "vasa_nodes"
    onnx.save(proto, path)
