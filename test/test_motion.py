"""Rule-based motion from real (synthesised) speech: lips, idle behaviour, controls."""

import numpy as np
import pytest
from helpers import speech_with_pauses

from vasa_nodes.core.blendshapes import ARKIT_BLENDSHAPES, INDEX, NUM_BLENDSHAPES
from vasa_nodes.core.features import compute_features
from vasa_nodes.core.motion import Controls, RuleBasedMotionGenerator


@pytest.fixture(scope="module")
def speech():
    return speech_with_pauses(["Hello there, how are you doing today?", "I am fine, thank you very much."],
                              pause_s=1.5, lead_s=1.5)


def run(samples, seed=0, controls=None):
    gen = RuleBasedMotionGenerator(25.0, seed=seed, controls=controls)
    return gen.generate(compute_features(samples))


def frame_times(frames):
    return (np.arange(len(frames)) + 0.5) / 25.0


def test_52_arkit_names():
    assert NUM_BLENDSHAPES == 52 and len(set(ARKIT_BLENDSHAPES)) == 52
    assert {"jawOpen", "mouthClose", "eyeBlinkLeft", "browInnerUp", "tongueOut"} <= set(ARKIT_BLENDSHAPES)


def test_mouth_opens_in_speech_and_rests_closed_in_silence(speech):
    samples, spans = speech
    frames = run(samples)
    jaw = np.array([f.blendshapes[INDEX["jawOpen"]] for f in frames])
    t = frame_times(frames)
    in_speech = np.zeros(len(t), bool)
    for start, end in spans:
        in_speech |= (t > start) & (t < end)
    silent = ~in_speech
    for start, end in spans:  # leave the onsets and offsets out of "silence"
        silent &= ~((t > start - 0.2) & (t < end + 0.3))
    assert jaw[in_speech].max() > 0.4
    assert np.percentile(jaw[in_speech], 75) > 0.15
    assert jaw[silent].max() < 0.05
    # Lips are sealed in silence.
    assert np.mean([f.blendshapes[INDEX["mouthClose"]] > 0.1 for f, s in zip(frames, silent) if s]) > 0.95


def test_same_seed_same_motion_other_seed_other_idle(speech):
    samples, _ = speech
    a, b, c = run(samples, seed=3), run(samples, seed=3), run(samples, seed=4)
    assert all(np.array_equal(x.blendshapes, y.blendshapes) and np.array_equal(x.head_rotation, y.head_rotation)
               for x, y in zip(a, b))
    assert not all(np.array_equal(x.head_rotation, y.head_rotation) for x, y in zip(a, c))


def test_idle_face_blinks_10_to_30_per_minute_and_moves():
    gen = RuleBasedMotionGenerator(25.0, seed=1)
    frames = [gen.idle() for _ in range(25 * 120)]
    blink = np.array([f.blendshapes[INDEX["eyeBlinkLeft"]] for f in frames])
    onsets = np.sum((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert 20 <= onsets <= 60  # per 2 minutes
    yaw = np.degrees([f.head_rotation[0] for f in frames])
    assert 0.3 < yaw.std() < 8.0
    gaze = np.array([f.gaze for f in frames])
    assert np.abs(np.diff(gaze, axis=0)).max() > 0.01  # saccades happen
    jaw = np.array([f.blendshapes[INDEX["jawOpen"]] for f in frames])
    assert jaw.max() < 0.01


def test_emotion_control_shows_in_the_expression(speech):
    samples, _ = speech
    neutral = run(samples)[-10:]
    happy = run(samples, controls=Controls(emotion="happy", emotion_intensity=1.0))[-10:]
    sad = run(samples, controls=Controls(emotion="sad", emotion_intensity=1.0))[-10:]
    smile = lambda fs: np.mean([f.blendshapes[INDEX["mouthSmileLeft"]] for f in fs])  # noqa: E731
    frown = lambda fs: np.mean([f.blendshapes[INDEX["mouthFrownLeft"]] for f in fs])  # noqa: E731
    assert smile(happy) > smile(neutral) + 0.3
    assert frown(sad) > frown(neutral) + 0.3


def test_gaze_and_distance_controls_are_followed():
    gen = RuleBasedMotionGenerator(25.0, controls=Controls(gaze_enabled=True, gaze_yaw=0.3, gaze_pitch=-0.2,
                                                           distance_enabled=True, head_scale=1.4))
    frames = [gen.idle() for _ in range(100)][-25:]
    # Head and eyes together point where commanded.
    total_yaw = np.mean([f.head_rotation[0] + f.gaze[0] for f in frames])
    total_pitch = np.mean([f.head_rotation[1] + f.gaze[1] for f in frames])
    assert total_yaw == pytest.approx(0.3, abs=0.08)
    assert total_pitch == pytest.approx(-0.2, abs=0.08)
    assert np.mean([f.head_scale for f in frames]) == pytest.approx(1.4, abs=0.05)


def test_unknown_emotion_is_rejected():
    with pytest.raises(ValueError, match="unknown emotion"):
        Controls(emotion="bored").validated()
