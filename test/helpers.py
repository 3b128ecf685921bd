"""Test helpers shared by several test modules."""

from __future__ import annotations

import numpy as np


def speech_with_pauses(texts: list[str], pause_s: float = 1.0, lead_s: float = 1.0, voice: str = "en-us"):
    """Synthesised speech at 16 kHz with silence before, between and after the texts.

    Returns (samples, list of (start_s, end_s) speech intervals from espeak's phoneme events).
    """
    import soxr

    from vasa_nodes.core.tts import synthesize

    parts, spans, t = [np.zeros(int(lead_s * 16000), np.float32)], [], lead_s
    for text in texts:
        speech = synthesize(text, voice=voice)
        x = soxr.resample(speech.samples, speech.sample_rate, 16000).astype(np.float32)
        voiced = [p for p in speech.phonemes if not p.phoneme.startswith("_")]
        spans.append((t + voiced[0].start_s, t + voiced[-1].end_s))
        parts += [x, np.zeros(int(pause_s * 16000), np.float32)]
        t += len(x) / 16000 + pause_s
    return np.concatenate(parts), spans


def assert_live_frames_match_whole(values, audio: np.ndarray, future: int) -> None:
    """A frame model's `values(audio, first, count)` for frame t, computed live (as soon as its
    `future` look-ahead frames are in, from a buffer that dropped old frames), equal those of the
    whole clip."""
    import pytest

    whole = values(audio, 0, len(audio))
    for t in range(0, len(audio), 7):
        first = max(0, t - 12)
        buffered = audio[first:t + 1 + future]
        assert values(buffered, t - first, 1)[0] == pytest.approx(whole[t], abs=1e-6)
