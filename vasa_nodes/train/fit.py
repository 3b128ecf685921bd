"""Training the motion diffusion model (`vasa-train fit`).

Data: any number of corpus.npz files (synthetic, recorded, extracted from video). Each
training example is a random window of an utterance: K context frames, W target frames,
L look-ahead frames of audio. The motion is normalised per channel (mean/std over the
data, stored in the model). Per example:
- diffusion time t ~ U(0, 1), x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (cosine schedule);
- classifier-free guidance dropout: all audio (10 %), each control group (15 % each);
- streaming practice (30 %): the audio after a random frame of the window is masked, as
  it is when the live node generates a frame from what has arrived so far;
- the context is missing (start of a stream) 10 % of the time, and lightly noised
  otherwise so that generated context (which drifts a little) is no surprise; 20 % of
  the time its mouth is pushed off by a random offset, so the model learns to go where
  the audio says rather than hold the mouth its own previous frames left (in a live
  stream every frame continues from generated ones).
Loss: MSE on x0 with extra weight on the mouth channels, and more on the frames where
the lips close in speech (/p b m/: brief, and what a viewer checks first), plus a
velocity term.
Validation: a fixed 5 % of utterances. The best model is exported as ONNX with its
normalisation and sizes in the metadata (see core/motion_model.py), and as a torch
checkpoint (<name>.pt) from which `--init` continues training (normalised afresh for the
data it continues on, see renormalize).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.blendshapes import INDEX
from ..core.features import FeatureFrames
from ..core.motion_model import AUDIO_DIM, CONTROL_DIM, alpha_bar, normalize_audio
from .model import ModelConfig, MotionDiT, drop_controls, export_onnx, weights_from_onnx
from .visemes import MOUTH_CHANNELS


@dataclass
class FitSettings:
    minutes: float = 100.0
    max_steps: int = 0
    batch: int = 64
    width: int = 160
    layers: int = 4
    lr: float = 4e-4
    threads: int = 0
    seed: int = 0
    validate_every: int = 250
    export_best: bool = True
    init: str | None = None  # a checkpoint (.pt) written by an earlier fit: continue from its weights


@dataclass
class Dataset:
    audio: np.ndarray     # (N, AUDIO_DIM) normalised, all utterances concatenated
    motion: np.ndarray    # (N, D) normalised
    controls: np.ndarray  # (N, CONTROL_DIM)
    starts: np.ndarray    # first frame of each utterance
    lengths: np.ndarray
    closure: np.ndarray   # (N,) bool: the lips close for /p b m/ in this frame


CLOSURE_WEIGHT = 3.0
"""Extra weight of the mouth channels in frames where the lips close for a bilabial."""

CONTEXT_MOUTH_OFFSET = (0.2, 0.6)
"""(probability, std in normalised units) of the random offset added to the context's mouth."""


def lip_closures(motion: np.ndarray) -> np.ndarray:
    """Frames of raw motion vectors whose lips are pressed shut (the bilabial viseme)."""
    press = 0.5 * (motion[:, INDEX["mouthPressLeft"]] + motion[:, INDEX["mouthPressRight"]])
    gap = motion[:, INDEX["jawOpen"]] - motion[:, INDEX["mouthClose"]]
    return (press > 0.2) & (gap < 0.03)


def load_data(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(audio, motion, controls, lengths) of all the .npz files, audio normalised per utterance."""
    audio, motion, controls, lengths = [], [], [], []
    for p in paths:
        p = Path(p)
        p = p / "corpus.npz" if p.is_dir() else p
        with np.load(p) as d:
            feats, vad, mot, n = d["features"].astype(np.float32), d["voice_activity"], d["motion"], d["lengths"]
            ctrl = d["controls"] if "controls" in d else np.zeros((len(mot), CONTROL_DIM), np.float32)
        offset = 0
        for length in n:
            s = slice(offset, offset + int(length))
            frames = FeatureFrames(0, feats[s], np.zeros(int(length), np.float32), vad[s])
            audio.append(normalize_audio(frames))
            offset += int(length)
        motion.append(mot)
        controls.append(ctrl)
        lengths.append(n)
    return (np.concatenate(audio), np.concatenate(motion).astype(np.float32),
            np.concatenate(controls).astype(np.float32), np.concatenate(lengths))


class Windows:
    """Random training windows from a Dataset."""

    def __init__(self, data: Dataset, cfg: ModelConfig, rng: np.random.Generator):
        self.d, self.cfg, self.rng = data, cfg, rng
        self.mouth = np.array([INDEX[name] for name in MOUTH_CHANNELS])
        span = cfg.window + cfg.lookahead
        self.usable = np.flatnonzero(data.lengths > span)
        weights = (data.lengths[self.usable] - span).astype(np.float64)
        self.p = weights / weights.sum()

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        cfg, d, rng = self.cfg, self.d, self.rng
        k, w, look = cfg.context, cfg.window, cfg.lookahead
        n = k + w + look
        utt = rng.choice(self.usable, size, p=self.p)
        out = {"x0": np.zeros((size, w, cfg.motion_dim), np.float32),
               "context": np.zeros((size, k, cfg.motion_dim), np.float32),
               "context_mask": np.zeros((size, 1), np.float32),
               "audio": np.zeros((size, n, AUDIO_DIM), np.float32), "audio_mask": np.zeros((size, n), np.float32),
               "controls": np.zeros((size, CONTROL_DIM), np.float32),
               "closure": np.zeros((size, w), np.float32)}
        for b, u in enumerate(utt):
            start, length = int(d.starts[u]), int(d.lengths[u])
            w0 = int(rng.integers(0, length - w - look + 1))  # window start within the utterance
            g = start + w0
            out["x0"][b] = d.motion[g:g + w]
            out["closure"][b] = d.closure[g:g + w]
            out["controls"][b] = d.controls[g]
            if w0 >= k and rng.random() > 0.1:
                out["context"][b] = d.motion[g - k:g] + rng.normal(0, 0.05, (k, cfg.motion_dim))
                p_offset, std = CONTEXT_MOUTH_OFFSET
                if rng.random() < p_offset:  # the last frames' mouth off where the audio puts it
                    ramp = np.linspace(0.0, 1.0, k)[:, None]
                    out["context"][b][:, self.mouth] += ramp * rng.normal(0, std, len(self.mouth))
                out["context_mask"][b] = 1.0
            lo = max(w0 - k, 0)
            out["audio"][b, k - (w0 - lo):] = d.audio[start + lo:g + w + look]
            out["audio_mask"][b, k - (w0 - lo):] = 1.0
            if rng.random() < 0.3:  # streaming: audio known up to a window frame (+ 1 look-ahead), mostly early
                known = k + int(min(rng.integers(0, w), rng.integers(0, w), rng.integers(0, w))) + 2
                out["audio_mask"][b, known:] = 0.0
        drop_audio = rng.random(size) < 0.1
        out["audio_mask"][drop_audio] = 0.0
        return {key: torch.from_numpy(v) for key, v in out.items()}


def _loss(model: MotionDiT, batch: dict[str, torch.Tensor], weights: tuple[torch.Tensor, torch.Tensor], p_drop: float,
          generator: torch.Generator | None = None) -> torch.Tensor:
    x0 = batch["x0"]
    size = x0.shape[0]
    t = torch.rand(size, generator=generator)
    ab = torch.from_numpy(alpha_bar(t.numpy()).astype(np.float32))[:, None, None]
    eps = torch.randn(x0.shape, generator=generator)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    controls = drop_controls(batch["controls"], p_drop) if p_drop > 0 else batch["controls"]
    pred = model(x_t, t, batch["context"], batch["context_mask"], batch["audio"], batch["audio_mask"], controls)
    w = weights[0] + batch["closure"][..., None] * weights[1]  # (B, W, D)
    err = ((pred - x0) ** 2 * w).mean()
    vel = (((pred[:, 1:] - pred[:, :-1]) - (x0[:, 1:] - x0[:, :-1])) ** 2 * w[:, 1:]).mean()
    return err + 0.5 * vel


def load_checkpoint(path: str) -> dict:
    """A checkpoint written by fit (weights, sizes, normalisation), or the same recovered from
    an exported model (MODEL.onnx, see weights_from_onnx); ValueError if it is neither."""
    if str(path).endswith(".onnx"):
        return weights_from_onnx(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many kinds for files that are not checkpoints
        raise ValueError(f"cannot read {path}: not a torch checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or not {"state_dict", "config", "mean", "std"} <= ckpt.keys():
        raise ValueError(f"{path} is not a checkpoint written by vasa-train fit")
    return ckpt


@torch.no_grad()
def renormalize(model: MotionDiT, old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> None:
    """Re-express a model trained on motion normalised by `old` (mean, std) in the
    normalisation `new`, in place: the motion input and output layers absorb the change,
    so the same motion in gives the same motion out. Continuing on data with
    other statistics (new targets, a user's own videos) then starts where the model was,
    instead of meeting targets many of its standard deviations away."""
    (m0, s0), (m1, s1) = [(torch.as_tensor(m, dtype=torch.float32), torch.as_tensor(s, dtype=torch.float32))
                          for m, s in (old, new)]
    # input: x_old = (s1 x_new + m1 - m0) / s0
    w = model.motion_in.weight.clone()
    model.motion_in.weight.copy_(w * (s1 / s0)[None])
    model.motion_in.bias.add_(w @ ((m1 - m0) / s0))
    # output: x_new = (s0 x_old + m0 - m1) / s1
    model.out.weight.mul_((s0 / s1)[:, None])
    model.out.bias.copy_((s0 * model.out.bias + m0 - m1) / s1)


def fit(data_paths: list[str], out_path: str, settings: FitSettings,
        log: Callable[[str], None] = print) -> dict:
    """Train, export the best model to `out_path` (ONNX) and return a report (also written
    beside it as <name>.json)."""
    t_begin = time.monotonic()
    torch.manual_seed(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(settings.seed)
    audio, motion, controls, lengths = load_data(data_paths)
    init = load_checkpoint(settings.init) if settings.init else None
    mean = motion.mean(0)
    std = np.maximum(motion.std(0), 0.02)
    if init:  # continue: the same sizes as the model it continues, normalised for this data
        cfg = ModelConfig(**init["config"])
        if cfg.motion_dim != motion.shape[1] or cfg.audio_dim != audio.shape[1]:
            raise ValueError(f"{settings.init} was trained on other motion or audio features")
    else:
        cfg = ModelConfig(motion_dim=motion.shape[1], width=settings.width, layers=settings.layers)
    motion_n = (motion - mean) / std
    closure = lip_closures(motion)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    order = rng.permutation(len(lengths))
    n_val = max(1, len(lengths) // 20)
    val_ids, train_ids = order[:n_val], order[n_val:]
    subset = lambda ids: Dataset(audio, motion_n, controls, starts[ids], lengths[ids], closure)  # noqa: E731
    train, val = Windows(subset(train_ids), cfg, rng), Windows(subset(val_ids), cfg, np.random.default_rng(1))
    val_batches = [val.batch(settings.batch) for _ in range(8)]

    mouth = [INDEX[name] for name in MOUTH_CHANNELS]
    weights = (torch.ones(cfg.motion_dim), torch.zeros(cfg.motion_dim))  # every frame; closure frames on top
    weights[0][mouth] = 3.0
    weights[0][[INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]]] = 2.0
    weights[1][mouth] = CLOSURE_WEIGHT
    model = MotionDiT(cfg)
    if init:
        model.load_state_dict(init["state_dict"])
        renormalize(model, (np.asarray(init["mean"]), np.asarray(init["std"])), (mean, std))
    params = sum(p.numel() for p in model.parameters())
    optim = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    log(f"{len(lengths)} utterances, {len(motion)} frames ({len(motion) / cfg.fps / 60:.1f} min); "
        f"model {params / 1e6:.2f} M parameters; budget {settings.minutes:.0f} min")

    def validate() -> float:
        model.eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            loss = float(np.mean([_loss(model, b, weights, 0.0, g).item() for b in val_batches]))
        model.train()
        return loss

    Path(out_path).parent.mkdir(parents=True, exist_ok=True)

    def export(net: MotionDiT, validation_loss: float, steps: int) -> dict:
        report = {"steps": steps, "init": settings.init, "minutes": (time.monotonic() - t_begin) / 60,
                  "validation_loss": validation_loss,
                  "parameters": params, "frames": int(len(motion)), "utterances": int(len(lengths)),
                  "data": [str(p) for p in data_paths], "settings": vars(settings), "history": history}
        meta = {**cfg.to_dict(), "mean": mean.round(6).tolist(), "std": std.round(6).tolist(),
                "schedule": "cosine", "prediction": "x0",
                "training": {k: report[k] for k in ("steps", "validation_loss", "frames")}}
        export_onnx(net, out_path, {"vasa_motion": json.dumps(meta)})
        torch.save({"state_dict": net.state_dict(), "config": cfg.to_dict(), "mean": mean.tolist(),
                    "std": std.tolist(), "steps": steps}, Path(out_path).with_suffix(".pt"))
        net.train()
        Path(out_path).with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
        return report

    best = (math.inf, None)
    history = []
    step = 0
    deadline = t_begin + settings.minutes * 60
    warmup = min(200, settings.max_steps // 4) if settings.max_steps else 200
    while True:
        elapsed = time.monotonic() - t_begin
        if time.monotonic() > deadline or (settings.max_steps and step >= settings.max_steps):
            break
        progress = min(elapsed / (settings.minutes * 60), 1.0)
        if settings.max_steps:
            progress = max(progress, step / settings.max_steps)
        lr = settings.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optim.param_groups:
            group["lr"] = lr
        loss = _loss(model, train.batch(settings.batch), weights, 0.15)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        step += 1
        if step % settings.validate_every == 0:
            v = validate()
            history.append({"step": step, "minutes": round((time.monotonic() - t_begin) / 60, 2),
                            "train_loss": round(loss.item(), 5), "validation_loss": round(v, 5)})
            log(f"step {step}: train {loss.item():.4f}, validation {v:.4f}, lr {lr:.2e}")
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in model.state_dict().items()})
                if settings.export_best:  # a usable model at every improvement, should training be cut short
                    export(model, v, step)
    v = validate()
    if v < best[0] or best[1] is None:
        best = (v, model.state_dict())
    model.load_state_dict(best[1])
    report = export(model, best[0], step)
    log(f"exported {out_path}")
    return report
