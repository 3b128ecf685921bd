"""Speech features at the motion frame rate, computed identically offline and streaming.

Frame k covers audio samples [k * hop, (k + 1) * hop) with hop = 16000 / fps. Its spectrum
is taken over a Hann window of `n_fft` samples centred on the frame, so a frame is ready
once `n_fft / 2 - hop / 2` samples past its end have arrived (12 ms at 25 fps). The
stream before sample 0 and after the end of stream is silence.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE

FEATURE_TYPE = "logmel80"
N_MELS = 80
N_FFT = 1024
LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class FeatureFrames:
    """A run of consecutive feature frames."""

    frame_offset: int          # stream index of the first frame
    features: np.ndarray       # (T, N_MELS) float32, log10 mel power
    loudness_db: np.ndarray    # (T,) float32, RMS level of the frame's samples, dBFS in [-100, 0]
    voice_activity: np.ndarray  # (T,) float32 in [0, 1]

    def __len__(self) -> int:
        return len(self.loudness_db)

    @staticmethod
    def concat(parts: list["FeatureFrames"]) -> "FeatureFrames":
        if not parts:
            return FeatureFrames(0, np.zeros((0, N_MELS), np.float32), np.zeros(0, np.float32),
                                 np.zeros(0, np.float32))
        return FeatureFrames(
            parts[0].frame_offset,
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.loudness_db for p in parts]),
            np.concatenate([p.voice_activity for p in parts]),
        )


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 40.0, f_max: float = 7600.0) -> np.ndarray:
    """Triangular mel filters (HTK mel scale, Slaney area normalisation), shape (n_mels, n_fft//2+1)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (upper - lower))
    return weights.astype(np.float32)


def mel_band_centres() -> np.ndarray:
    """(N_MELS,) centre frequency of each band of `mel_filterbank()`, Hz (its weighted mean)."""
    fb = mel_filterbank()
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    return (fb * freqs[None, :]).sum(1) / np.maximum(fb.sum(1), 1e-9)


class VoiceActivityDetector:
    """Energy-based voice activity with an adaptive noise floor and hangover.

    Deterministic and frame-sequential, so streaming and offline agree. Output is a
    soft probability: a logistic of the level above the tracked noise floor.
    """

    def __init__(self, margin_db: float = 12.0, slope_db: float = 3.0, min_floor_db: float = -70.0,
                 hangover_frames: int = 4):
        self.margin_db = margin_db
        self.slope_db = slope_db
        self.min_floor_db = min_floor_db
        self.hangover_frames = hangover_frames
        self.reset()

    def reset(self) -> None:
        self._floor_db = -60.0
        self._hang = 0
        self._prev = 0.0

    def __call__(self, loudness_db: float) -> float:
        # The floor follows quiet frames quickly and loud ones very slowly, so speech
        # does not raise it but a change of room noise is learnt within seconds.
        rate = 0.2 if loudness_db < self._floor_db else 0.005
        self._floor_db += rate * (loudness_db - self._floor_db)
        self._floor_db = max(self._floor_db, self.min_floor_db)
        threshold = self._floor_db + self.margin_db
        p = 1.0 / (1.0 + np.exp(-(loudness_db - threshold) / self.slope_db))
        if p > 0.5:
            self._hang = self.hangover_frames
        elif self._hang > 0:
            # Short dips (stops, bilabials) stay "speech" for the motion's sake.
            self._hang -= 1
            p = max(p, 0.5 * self._prev)
        self._prev = p
        return float(p)


class StreamingFeatureExtractor:
    """Turns arbitrary-size 16 kHz chunks into feature frames at `fps`.

    `push()` returns the frames that became complete; `finish()` flushes the tail
    (zero-padded) and resets for a new stream. Concatenating the outputs equals
    `compute_features()` of the whole signal, for any chunking.
    """

    def __init__(self, fps: float = 25.0):
        hop = SAMPLE_RATE / fps
        if abs(hop - round(hop)) > 1e-9:
            raise ValueError(f"fps {fps} must divide {SAMPLE_RATE} Hz into whole samples")
        self.fps = fps
        self.hop = int(round(hop))
        self.n_fft = max(N_FFT, 1 << int(np.ceil(np.log2(self.hop))))
        self._pad = (self.n_fft - self.hop) // 2  # samples before/after each frame in its window
        self._span = self.hop + 2 * self._pad      # samples a frame needs, its window's margins included
        self._window = np.hanning(self.n_fft + 2)[1:-1].astype(np.float32)
        self._mel = mel_filterbank(n_fft=self.n_fft)
        self._vad = VoiceActivityDetector()
        self.reset()

    def reset(self) -> None:
        """Start a new stream: frame 0 begins at the next pushed sample."""
        self._buffer = np.zeros(self._pad, np.float32)  # silence before the stream
        self._next_frame = 0
        self._samples_in = 0
        self._vad.reset()

    @property
    def frames_emitted(self) -> int:
        return self._next_frame

    def push(self, samples: np.ndarray) -> FeatureFrames:
        """Add 16 kHz mono samples; return the frames completed by them (maybe none)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, x])
        self._samples_in += len(x)
        return self._drain()

    def finish(self) -> FeatureFrames:
        """End of stream: emit the remaining frames (the last partial frame included), then reset."""
        n_frames = int(np.ceil(self._samples_in / self.hop))
        needed = (n_frames - self._next_frame) * self.hop + 2 * self._pad
        if needed > len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.zeros(needed - len(self._buffer), np.float32)])
        out = self._drain(limit=n_frames)
        self.reset()
        return out

    def peek(self) -> FeatureFrames:
        """The next frame ahead of time, for live consumers: once all of its own samples are in
        but not yet the end of its spectrum window (the window's last `n_fft / 2 - hop / 2`
        samples, 12 ms at 25 fps), it is computed with the samples before the gap mirrored
        into it (a continuation without a step, unlike silence). Empty when the frame's own
        samples are not all in, or it is complete (`push()` has returned it). Changes
        nothing: `push()` returns the same frame complete once that audio arrives. The two
        differ only where the Hann window is below a third of its peak; on read speech by
        about a twelfth of what consecutive frames differ by. Loudness and voice activity
        are exact."""
        own = self._pad + self.hop  # the buffer starts `pad` samples before the next frame
        if not own <= len(self._buffer) < self._span:
            return self._frames(np.zeros(0, np.float32), 0, self._vad)
        missing = self._span - len(self._buffer)  # < pad <= len(buffer)
        padded = np.concatenate([self._buffer, self._buffer[:-missing - 1:-1]])
        return self._frames(padded, 1, copy.copy(self._vad))

    def _drain(self, limit: int | None = None) -> FeatureFrames:
        count = (len(self._buffer) - self._span) // self.hop + 1 if len(self._buffer) >= self._span else 0
        if limit is not None:
            count = min(count, limit - self._next_frame)
        count = max(count, 0)
        out = self._frames(self._buffer, count, self._vad)
        self._buffer = self._buffer[count * self.hop:]
        self._next_frame += count
        return out

    def _frames(self, buffer: np.ndarray, count: int, vad: VoiceActivityDetector) -> FeatureFrames:
        """The first `count` frames of `buffer` (which starts `pad` samples before the next frame)."""
        offset = self._next_frame
        if count == 0:
            return FeatureFrames(offset, np.zeros((0, N_MELS), np.float32), np.zeros(0, np.float32),
                                 np.zeros(0, np.float32))
        idx = np.arange(count)[:, None] * self.hop + np.arange(self.n_fft)[None, :]
        idx = idx + (self._span - self.n_fft) // 2
        windows = buffer[idx] * self._window
        power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
        mel = np.log10(power.astype(np.float32) @ self._mel.T + LOG_FLOOR).astype(np.float32)

        core = buffer[np.arange(count)[:, None] * self.hop + self._pad + np.arange(self.hop)[None, :]]
        rms = np.sqrt(np.mean(core.astype(np.float64) ** 2, axis=1))
        loud = np.clip(20.0 * np.log10(rms + 1e-5), -100.0, 0.0).astype(np.float32)
        activity = np.array([vad(float(v)) for v in loud], np.float32)
        return FeatureFrames(offset, mel, loud, activity)


def compute_features(samples: np.ndarray, fps: float = 25.0) -> FeatureFrames:
    """Features of a whole 16 kHz signal: ceil(len / hop) frames."""
    extractor = StreamingFeatureExtractor(fps)
    return FeatureFrames.concat([extractor.push(samples), extractor.finish()])
