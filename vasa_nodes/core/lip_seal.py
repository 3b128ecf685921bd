"""Lip seal: where the speech has a /p b m/, the generated lips are pressed shut.

The motion diffusion model usually closes the lips for a bilabial, but its few-step
sampler averages a brief, all-or-nothing closure into a near miss when the audio is
ambiguous (quiet, reverberant, unlike the voices it learnt from). A small detector,
trained on the same corpora (`vasa-train lipseal`, see vasa_nodes/train/lip_seal.py),
reads the normalised audio around each frame of speech and gives the probability that
the lips are together there (a /p b m/, a brief pause); where it is confident, the lips
are sealed (seal_lips), fading in between SEAL_FROM and SEAL_FULL. Outside voice activity
it says 0: in silence the motion model's own rest holds (and an emotion's open mouth
stays). Run by ONNX Runtime; no torch.

The detector sees PAST frames before a frame and FUTURE after it (1: the live motion
generator's default look-ahead), as every frame model does (core/frame_model.py), so offline
and live generation with at least that look-ahead give the same seal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .blendshapes import INDEX
from .features import N_MELS
from .frame_model import FrameModel

METADATA_KEY = "vasa_lip_seal"

DEFAULT_LIP_SEAL = Path(__file__).resolve().parent.parent / "models" / "lip_seal.onnx"
"""The shipped detector, installed inside the Python package."""

SEAL_FROM, SEAL_FULL = 0.3, 0.5
"""Detector probabilities where sealing starts and where the lips are fully shut."""

SEALED_JAW = 0.15
"""jawOpen of sealed lips at most (the bilabial viseme's jaw, with room for its neighbours')."""

_RELEASED = ("mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
             "mouthRollLower", "tongueOut")
"""Shapes that part or hide the lips: gone while they are sealed."""


class LipSealError(ValueError):
    """The detector file is missing, unreadable or not a lip-seal detector."""


def seal_lips(blendshapes: np.ndarray, weight: np.ndarray | float = 1.0, max_jaw: float | None = None) -> np.ndarray:
    """Seal the lips of (T, 52+) coefficients or motion vectors in place, by `weight` in [0, 1] per
    frame: mouthClose cancels whatever jawOpen leaves (ARKit's convention for lips together with
    the jaw apart), the lips press a little, and shapes that part them are released. With
    `max_jaw`, a jaw opened wider is raised towards it as well (lips meet with the jaw nearly
    closed, not stretched over a dropped chin)."""
    w = np.broadcast_to(np.asarray(weight, np.float32), (len(blendshapes),))
    rows = np.nonzero(w > 0)[0]
    if not len(rows):
        return blendshapes
    w = w[rows]
    b = blendshapes
    jaw, close = b[rows, INDEX["jawOpen"]], b[rows, INDEX["mouthClose"]]
    if max_jaw is not None:
        jaw = jaw - w * np.maximum(jaw - max_jaw, 0.0)
        b[rows, INDEX["jawOpen"]] = jaw
    b[rows, INDEX["mouthClose"]] = (1.0 - w) * close + w * jaw  # exactly jawOpen where fully sealed
    for side in ("Left", "Right"):
        i = INDEX[f"mouthPress{side}"]
        b[rows, i] = np.maximum(b[rows, i], 0.3 * w)
    for name in _RELEASED:
        b[rows, INDEX[name]] *= 1.0 - w
    return blendshapes


def seal_weight(p_sealed: np.ndarray) -> np.ndarray:
    """How far to seal the lips at these detector probabilities."""
    return np.clip((np.asarray(p_sealed, np.float32) - SEAL_FROM) / (SEAL_FULL - SEAL_FROM), 0.0, 1.0)


class LipSeal(FrameModel):
    """The detector (ONNX Runtime)."""

    KIND = "lip-seal detector"
    METADATA_KEY = METADATA_KEY
    ERROR = LipSealError
    DEFAULT_PATH = DEFAULT_LIP_SEAL

    def probabilities(self, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """(count,) probabilities that the lips are sealed in frames first .. first + count - 1 of
        `audio`, (T, AUDIO_DIM) normalised frames (frames outside it are zeros); 0 where the
        frame has no voice activity."""
        windows = self.windows(audio, first, count)
        # The detector knows speech only: outside voice activity the motion model's rest holds.
        return self.run(windows) * (windows[:, self.past, N_MELS] > 0.5)


def load_lip_seal(choice: str | None) -> LipSeal | None:
    """The detector a setting names: None or "" for the shipped one, "none" for none, else a path."""
    return LipSeal.from_setting(choice)
