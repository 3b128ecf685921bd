"""Small ONNX models that read the normalised audio around each frame of speech.

The lip-seal detector (core/lip_seal.py) and the mouth-opening model (core/acoustic_opening.py)
both look at PAST frames of normalised audio (core.motion_model.normalize_audio) before a
frame and FUTURE after it, and give one value per frame. Frames before a stream, or not
received yet, are zeros, as at the ends of a training utterance, so offline and live
generation with a look-ahead of at least FUTURE frames give the same values. Their ONNX
files carry their frame layout as JSON metadata under the model's own key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class FrameModel:
    """An ONNX model over (batch, PAST + 1 + FUTURE, audio values) windows (ONNX Runtime)."""

    KIND = "frame model"
    """What the model is called in messages ("lip-seal detector not found: ...")."""

    METADATA_KEY = ""
    """The ONNX metadata entry that marks the file as this kind of model."""

    ERROR: type[Exception] = ValueError
    """Raised when the file is missing, unreadable or not this kind of model."""

    DEFAULT_PATH: Path | None = None
    """The shipped model of this kind."""

    OFF = "none"
    """The setting that asks for no model of this kind (see from_setting)."""

    @classmethod
    def from_setting(cls, choice: str | None):
        """The model a setting names: None or "" for the shipped one, OFF for none, else a path."""
        if choice == cls.OFF:
            return None
        return cls(choice or cls.DEFAULT_PATH)

    def __init__(self, path: str | Path | None = None):
        from .motion_model import load_session  # noqa: PLC0415

        path = path or self.DEFAULT_PATH

        self.session = load_session(path, self.KIND, self.ERROR)
        meta_map = self.session.get_modelmeta().custom_metadata_map
        if self.METADATA_KEY not in meta_map:
            raise self.ERROR(f"not a vasa_nodes {self.KIND} (no {self.METADATA_KEY} metadata): {path}")
        try:
            meta = json.loads(meta_map[self.METADATA_KEY])
            self.past, self.future = int(meta["past"]), int(meta["future"])
            self.audio_dim, self.fps = int(meta["audio_dim"]), float(meta["fps"])
        except (KeyError, ValueError, TypeError) as exc:
            raise self.ERROR(f"not a vasa_nodes {self.KIND} (bad {self.METADATA_KEY} metadata: {exc}): "
                             f"{path}") from None
        self.path = Path(path)
        self._input = self.session.get_inputs()[0].name

    @property
    def frames(self) -> int:
        return self.past + 1 + self.future

    def fits(self, fps: float, audio_dim: int) -> bool:
        """Whether it reads audio at this frame rate with at most `audio_dim` values per frame."""
        return abs(self.fps - fps) < 1e-6 and self.audio_dim <= audio_dim

    def windows(self, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """(count, frames, audio_dim) windows around frames first .. first + count - 1 of `audio`,
        (T, AUDIO_DIM) normalised frames; frames outside it are zeros."""
        if count <= 0:
            return np.zeros((0, self.frames, self.audio_dim), np.float32)
        lo, hi = first - self.past, first + count + self.future
        pad_lo, pad_hi = max(0, -lo), max(0, hi - len(audio))
        a = np.asarray(audio[max(lo, 0):min(hi, len(audio)), :self.audio_dim], np.float32)
        a = np.concatenate([np.zeros((pad_lo, self.audio_dim), np.float32), a,
                            np.zeros((pad_hi, self.audio_dim), np.float32)])
        return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(a, (self.frames, self.audio_dim))[:, 0])

    def run(self, windows: np.ndarray) -> np.ndarray:
        """(count,) values for (count, frames, audio_dim) windows."""
        if len(windows) == 0:
            return np.zeros(0, np.float32)
        return self.session.run(None, {self._input: windows})[0].reshape(len(windows)).astype(np.float32)
