"""The motion diffusion transformer (torch; training and ONNX export only).

A window of W noisy motion frames is denoised in one sequence with the K previous motion
frames and L look-ahead frames: K + W + L tokens, each carrying that frame's audio
features (or a learnt 'unknown audio' vector where masked) and its motion (clean context,
noisy window, nothing for look-ahead). Diffusion time and the controls modulate every
block (adaptive layer norm); the window's tokens predict the clean motion x0.
Inputs and outputs are those of vasa_nodes.core.motion_model.MotionModel.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.motion_model import AUDIO_DIM, CONTROL_DIM, CONTROL_GROUPS


@dataclass
class ModelConfig:
    motion_dim: int = 61
    context: int = 10
    window: int = 25
    lookahead: int = 2
    audio_dim: int = AUDIO_DIM
    width: int = 160
    layers: int = 4
    heads: int = 4
    fps: float = 25.0

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * 1000.0 * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention from plain operations (exports to any ONNX opset)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.softmax(q @ k.transpose(-1, -2) * (w // self.heads) ** -0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s1, b1, g1, s2, b2, g2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + s1) + b1
        x = x + (1 + g1) * self.attn(h)
        h = self.norm2(x) * (1 + s2) + b2
        return x + (1 + g2) * self.mlp(h)


class MotionDiT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        w, n = cfg.width, cfg.context + cfg.window + cfg.lookahead
        self.audio_in = nn.Sequential(nn.Linear(cfg.audio_dim, w), nn.GELU(), nn.Linear(w, w))
        self.audio_null = nn.Parameter(torch.zeros(w))
        self.motion_in = nn.Linear(cfg.motion_dim, w)
        self.role = nn.Parameter(torch.zeros(4, w))  # context, missing context, window, look-ahead
        self.position = nn.Parameter(torch.randn(n, w) * 0.02)
        self.time_in = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, w))
        self.control_in = nn.Sequential(nn.Linear(CONTROL_DIM, w), nn.GELU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList([Block(w, cfg.heads) for _ in range(cfg.layers)])
        self.norm_out = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.motion_dim)

    def forward(self, x_t, t, context, context_mask, audio, audio_mask, controls):
        """x_t (B, W, D) noisy window; t (B,) in [0, 1]; context (B, K, D) normalised;
        context_mask (B, 1); audio (B, N, AUDIO_DIM); audio_mask (B, N); controls
        (B, CONTROL_DIM). Returns x0 (B, W, D), normalised."""
        cfg = self.cfg
        k, wdw = cfg.context, cfg.window
        a = self.audio_in(audio)
        m = audio_mask[..., None]
        a = a * m + self.audio_null * (1 - m)
        cm = context_mask[:, :, None]
        ctx = self.motion_in(context) * cm + self.role[0] * cm + self.role[1] * (1 - cm)
        win = self.motion_in(x_t) + self.role[2]
        look = self.role[3].expand(x_t.shape[0], cfg.lookahead, -1)
        tokens = torch.cat([ctx, win, look], dim=1) + a + self.position
        c = self.time_in(timestep_embedding(t, cfg.width)) + self.control_in(controls)
        for block in self.blocks:
            tokens = block(tokens, c)
        return self.out(self.norm_out(tokens[:, k:k + wdw]))


def drop_controls(controls: torch.Tensor, p: float) -> torch.Tensor:
    """Classifier-free guidance training: each control group independently switched off."""
    out = controls.clone()
    for lo, hi in CONTROL_GROUPS.values():
        keep = (torch.rand(controls.shape[0], 1) >= p).float()
        out[:, lo:hi] = out[:, lo:hi] * keep
    return out


INPUT_NAMES = ["x_t", "t", "context", "context_mask", "audio", "audio_mask", "controls"]


def export_onnx(model: MotionDiT, path: str, metadata: dict[str, str]) -> None:
    """Write the model as ONNX (dynamic batch) with `metadata` in its metadata_props."""
    import onnx  # noqa: PLC0415

    cfg = model.cfg
    n = cfg.context + cfg.window + cfg.lookahead
    b = 3
    example = (torch.zeros(b, cfg.window, cfg.motion_dim), torch.zeros(b), torch.zeros(b, cfg.context, cfg.motion_dim),
               torch.ones(b, 1), torch.zeros(b, n, cfg.audio_dim), torch.ones(b, n), torch.zeros(b, CONTROL_DIM))
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(model, example, path, dynamo=False, input_names=INPUT_NAMES, output_names=["x0"],
                          dynamic_axes={name: {0: "batch"} for name in [*INPUT_NAMES, "x0"]}, opset_version=17)
    proto = onnx.load(path)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "vasa_nodes"
    onnx.save(proto, path)


def weights_from_onnx(path: str) -> dict:
    """The weights of a model exported by export_onnx, as a checkpoint dict (state_dict,
    config, mean, std, as fit writes beside its ONNX), so training can continue from any
    exported model, the shipped one included. ValueError if the file is not one of ours.

    The exporter folds some parameters (the transposed weight of each linear layer, the
    role rows) into anonymous initializers. A probe model with distinct random values,
    exported the same way, tells which parameter each one holds; the recovered model is
    checked against the ONNX one under ONNX Runtime.
    """
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    from ..core.motion_model import load_session  # noqa: PLC0415

    try:
        proto = onnx.load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # protobuf raises its own kinds for files that are not ONNX
        raise ValueError(f"cannot read {path}: not an ONNX model ({type(exc).__name__})") from None
    try:
        meta = json.loads({p.key: p.value for p in proto.metadata_props}["vasa_motion"])
        cfg = ModelConfig(**{k: meta[k] for k in ModelConfig().to_dict()})
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path} is not a motion model exported by vasa-train") from None
    shipped = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    probe = MotionDiT(cfg)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(probe, str(Path(tmp) / "probe.onnx"), {})
        probe_inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(Path(tmp) / "probe.onnx")).graph.initializer}
    if set(probe_inits) != set(shipped):
        raise ValueError(f"{path} was exported from another version of the model")
    params = {k: v.numpy() for k, v in probe.state_dict().items()}
    state = {k: torch.zeros_like(v) for k, v in probe.state_dict().items()}
    filled = {k: np.zeros(v.shape[:1], bool) for k, v in params.items()}
    def place(name: str, value: np.ndarray) -> None:
        """Put the shipped initializer `name` where the probe's `value` sits in the state dict."""
        for key, p in params.items():
            if p.shape == value.shape and np.array_equal(p, value):
                state[key], filled[key][:] = torch.from_numpy(shipped[name].copy()), True
                return
            if p.ndim == 2 and p.T.shape == value.shape and np.array_equal(p.T, value):  # a linear layer's weight
                state[key], filled[key][:] = torch.from_numpy(shipped[name].T.copy()), True
                return
            if p.ndim == 2 and value.shape[-1:] == p.shape[1:]:  # a row (a role), maybe broadcast
                first = value.reshape(-1, p.shape[1])[0]
                rows = [r for r, row in enumerate(p) if np.array_equal(row, first)]
                if rows:
                    r = rows[0]
                    state[key][r], filled[key][r] = torch.from_numpy(shipped[name].reshape(-1, p.shape[1])[0].copy()), True
                    return

    for name, value in probe_inits.items():
        place(name, value)
    if not all(f.all() for f in filled.values()):
        raise ValueError(f"{path}: not every weight could be recovered")
    model = MotionDiT(cfg)
    model.load_state_dict(state)
    model.eval()
    # The recovered model must compute what the ONNX model does.
    rng = np.random.default_rng(0)
    n = cfg.context + cfg.window + cfg.lookahead
    session = load_session(path)
    inputs = [rng.normal(size=(2, cfg.window, cfg.motion_dim)), rng.uniform(size=2),
              rng.normal(size=(2, cfg.context, cfg.motion_dim)), np.array([[1.0], [0.0]]),
              rng.normal(size=(2, n, cfg.audio_dim)), (rng.uniform(size=(2, n)) > 0.3) * 1.0,
              rng.normal(size=(2, session.get_inputs()[6].shape[1]))]
    inputs = [np.asarray(x, np.float32) for x in inputs]
    expected = session.run(None, dict(zip(INPUT_NAMES, inputs)))[0]
    with torch.no_grad():
        got = model(*[torch.from_numpy(x) for x in inputs]).numpy()
    if np.abs(got - expected).max() > 1e-3:
        raise ValueError(f"{path}: the recovered weights do not reproduce the model")
    return {"state_dict": model.state_dict(), "config": cfg.to_dict(), "mean": meta["mean"], "std": meta["std"],
            "steps": meta.get("training", {}).get("steps", 0)}
