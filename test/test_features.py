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


def test_peek_gives_each_frame_one_chunk_early_and_changes_nothing(speech):
    x, _ = speech
    whole = compute_features(x)
    extractor = StreamingFeatureExtractor()
    parts, early, received = [], {}, 0
    for i in range(0, len(x), 320):  # 20 ms chunks, as the audio capture sends them
        parts.append(extractor.push(x[i:i + 320]))
        received = min(i + 320, len(x))
        ahead = extractor.peek()
        assert len(ahead) <= 1
        if len(ahead):
            k = ahead.frame_offset
            assert k == extractor.frames_emitted  # the frame after those returned
            assert k not in early
            early[k] = ahead
            # The next frame with the audio before the gap mirrored into it.
            missing = (k + 1) * 640 + 192 - received
            mirrored = np.concatenate([x[:received], x[received - missing:received][::-1]])
            assert np.allclose(ahead.features[0], compute_features(mirrored).features[k], atol=1e-4)
            assert ahead.loudness_db[0] == whole.loudness_db[k]
            assert ahead.voice_activity[0] == whole.voice_activity[k]
    parts.append(extractor.finish())
    streamed = FeatureFrames.concat(parts)
    # Peeking changed nothing, and every frame but the last was had one chunk early.
    assert np.allclose(streamed.features, whole.features, atol=1e-4)
    assert np.array_equal(streamed.voice_activity, whole.voice_activity)
    assert sorted(early) == list(range(len(x) // 640))
    # ... close to the complete frame (only the faint tail of its window was missing): far
    # closer than consecutive frames are to each other.
    k = np.array(sorted(early))
    k = k[(k > 0) & (whole.voice_activity[k] > 0.5)]
    diff = np.array([np.abs(early[j].features[0] - whole.features[j]).mean() for j in k])
    step = np.abs(whole.features[k] - whole.features[k - 1]).mean(1)
    assert np.median(diff) < 0.2 * np.median(step), (np.median(diff), np.median(step))


def test_peek_is_empty_until_the_frame_s_own_samples_are_in():
    extractor = StreamingFeatureExtractor()
    extractor.push(np.ones(639, np.float32))
    assert len(extractor.peek()) == 0
    extractor.push(np.ones(1, np.float32))
    assert extractor.peek().frame_offset == 0
    assert len(extractor.push(np.ones(192, np.float32))) == 1
    assert len(extractor.peek()) == 0  # frame 0 is complete; frame 1's samples are not in


def test_rejects_rates_that_do_not_divide_16k():
    with pytest.raises(ValueError, match="whole samples"):
        StreamingFeatureExtractor(fps=30)
