"""Streaming log-mel features: identical to whole-file features for any chunking."""

import numpy as np
import pytest
from helpers import speech_with_pauses

from vasa_nodes.core.features import N_MELS, FeatureFrames, StreamingFeatureExtractor, compute_features


@pytest.fixture(scope="module")
def speech():
    return speech_with_pauses(["The quick brown fox jumps over the lazy dog."], pause_s=1.0)


def test_one_frame_per_40_ms_rounded_up(speech):
    x, _ = speech
    f = compute_features(x, fps=25)
    assert len(f) == -(-len(x) // 640)
    assert f.features.shape == (len(f), N_MELS)
    assert np.all(np.isfinite(f.features))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_for_any_chunking(speech, seed):
    x, _ = speech
    whole = compute_features(x)
    rng = np.random.default_rng(seed)
    extractor = StreamingFeatureExtractor()
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        parts.append(extractor.push(x[i:i + n]))
        i += n
    parts.append(extractor.finish())
    streamed = FeatureFrames.concat(parts)
    assert len(streamed) == len(whole)
    assert np.allclose(streamed.features, whole.features, atol=1e-4)
    assert np.array_equal(streamed.voice_activity, whole.voice_activity)
    assert np.array_equal(streamed.loudness_db, whole.loudness_db)


def test_voice_activity_separates_speech_from_silence(speech):
    x, spans = speech
    f = compute_features(x)
    t = (np.arange(len(f)) + 0.5) / 25
    (start, end), = spans
    inside = (t > start + 0.1) & (t < end - 0.1)
    silent = (t < start - 0.1) | (t > end + 0.3)
    assert f.voice_activity[inside].mean() > 0.8
    assert f.voice_activity[silent].max() < 0.2


def test_frames_are_ready_with_12_ms_lookahead():
    extractor = StreamingFeatureExtractor()
    assert len(extractor.push(np.zeros(640, np.float32))) == 0
    assert len(extractor.push(np.zeros(192, np.float32))) == 1


def test_rejects_rates_that_do_not_divide_16k():
    with pytest.raises(ValueError, match="whole samples"):
        StreamingFeatureExtractor(fps=30)
