"""Audio input: read any common file or raw buffer, and make it 16 kHz mono float32.

Every path into the system (files for the offline command, chunks on /vasa/audio) goes
through `condition()`, so resampling, downmixing and sanitising happen in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
"""Internal audio rate of every core, Hz."""

log = logging.getLogger(__name__)


class AudioError(ValueError):
    """Audio that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Audio:
    """Mono audio at SAMPLE_RATE."""

    samples: np.ndarray  # (N,) float32 in [-1, 1]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def condition(samples: np.ndarray, sample_rate: int, *, source: str = "audio") -> tuple[np.ndarray, list[str]]:
    """Downmix, sanitise and resample raw samples to 16 kHz mono float32.

    `samples` is (N,) or (N, channels), float or integer PCM. Returns the conditioned
    samples and a list of warnings (one line each) about what was repaired.
    Raises AudioError for input that cannot be repaired.
    """
    warnings: list[str] = []
    if sample_rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {sample_rate} Hz")
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        if x.shape[1] > 1:
            warnings.append(f"{source}: {x.shape[1]} channels downmixed to mono")
        x = x.mean(axis=1, dtype=np.float64).astype(np.float32)
    elif x.ndim != 1:
        raise AudioError(f"{source}: expected mono or multichannel samples, got shape {x.shape}")

    bad = ~np.isfinite(x)
    if bad.any():
        warnings.append(f"{source}: {int(bad.sum())} NaN/Inf samples replaced by silence")
        x = np.where(bad, 0.0, x).astype(np.float32)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 1.0:
        warnings.append(f"{source}: samples exceed [-1, 1] (peak {peak:.2f}); clipped")
        x = np.clip(x, -1.0, 1.0)

    if sample_rate != SAMPLE_RATE and len(x):
        import soxr  # noqa: PLC0415 - imported where used; resampling is the exception

        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x, warnings


def load_audio(path: str | Path, *, min_duration_s: float = 0.0) -> Audio:
    """Read an audio file (WAV, FLAC, OGG, AIFF, MP3, Opus, M4A, …) as 16 kHz mono.

    Raises AudioError with a one-line reason when the file is missing, unreadable,
    empty, or shorter than `min_duration_s`. Repairs (resampling aside) are logged.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"audio file not found: {p}")
    if not p.is_file():
        raise AudioError(f"audio path is not a file: {p}")
    samples, rate = _read(p)
    if samples.size == 0:
        raise AudioError(f"audio file has no samples: {p}")
    x, warnings = condition(samples, rate, source=p.name)
    for w in warnings:
        log.warning(w)
    audio = Audio(x)
    if audio.duration_s < min_duration_s:
        raise AudioError(
            f"audio is too short: {audio.duration_s * 1000:.0f} ms, need at least "
            f"{min_duration_s * 1000:.0f} ms (one video frame): {p}"
        )
    if not np.any(np.abs(x) > 1e-4):
        log.warning("%s: audio is silent; the face will idle", p.name)
    return audio


def _read(p: Path) -> tuple[np.ndarray, int]:
    """Decode with libsndfile, falling back to FFmpeg (PyAV) for compressed formats."""
    import soundfile  # noqa: PLC0415

    try:
        data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
        return data, int(rate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        pass
    import av  # noqa: PLC0415

    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise AudioError(f"file has no audio stream: {p}")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            parts = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(f"cannot read audio file {p}: {_first_line(exc)}") from None
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return data, SAMPLE_RATE


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class ChunkConditioner:
    """Streaming counterpart of `condition()` for live chunks of a mono stream.

    Keeps resampler state across chunks, so a 44.1 kHz stream cut into chunks gives
    the same 16 kHz signal as resampling it whole (no clicks at chunk borders).
    """

    def __init__(self):
        self._rate: int | None = None
        self._resampler = None

    def reset(self) -> None:
        self._rate = None
        self._resampler = None

    def push(self, samples: np.ndarray, sample_rate: int, last: bool = False) -> tuple[np.ndarray, list[str]]:
        """Condition one chunk; `last=True` flushes the resampler. Returns (samples, warnings)."""
        if sample_rate <= 0:
            raise AudioError(f"invalid sample rate {sample_rate} Hz")
        x = np.asarray(samples, np.float32).reshape(-1)
        warnings: list[str] = []
        bad = ~np.isfinite(x)
        if bad.any():
            warnings.append(f"{int(bad.sum())} NaN/Inf samples replaced by silence")
            x = np.where(bad, 0.0, x).astype(np.float32)
        if np.abs(x).max(initial=0.0) > 1.0:
            warnings.append("samples exceed [-1, 1]; clipped")
            x = np.clip(x, -1.0, 1.0)
        if sample_rate == SAMPLE_RATE and self._resampler is None:
            return x, warnings
        if self._rate != sample_rate:
            import soxr  # noqa: PLC0415

            if self._rate is not None:
                warnings.append(f"sample rate changed from {self._rate} to {sample_rate} Hz mid-stream")
            self._rate = sample_rate
            self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        return self._resampler.resample_chunk(x, last=last).astype(np.float32), warnings
