"""The shipped lip-seal detector under ONNX Runtime, and the seal it puts on generated motion.
Real espeak-ng speech in a language the detector never heard, the real motion model."""

import numpy as np
import pytest

from helpers import assert_live_frames_match_whole

from vasa_nodes.core.blendshapes import INDEX
from vasa_nodes.core.features import compute_features
from vasa_nodes.core.lip_seal import (DEFAULT_LIP_SEAL, SEAL_FULL, SEALED_JAW, LipSeal, LipSealError, load_lip_seal,
                                      seal_lips, seal_weight)
from vasa_nodes.core.motion_model import DEFAULT_MODEL, DiffusionMotionGenerator, MotionModel, normalize_audio
from vasa_nodes.train.visemes import viseme_of

FPS = 25
VOWELS = {"open", "mid", "schwa", "open_round", "close_front", "close_round", "front_round"}


@pytest.fixture(scope="module")
def detector():
    return LipSeal(DEFAULT_LIP_SEAL)


def frames_of(start, end, n):
    return slice(max(int(np.floor(start * FPS)), 0), min(int(np.ceil(end * FPS)), n))


def bilabials(phones):
    return [(s, e) for p, s, e in phones if viseme_of(p) == "bilabial"]


def vowel_centres(phones):
    return [int((s + e) / 2 * FPS) for p, s, e in phones if viseme_of(p) in VOWELS and e - s > 0.06]


def test_detector_hears_the_bilabials_of_an_unknown_language(detector, finnish):
    samples, phones = finnish
    audio = normalize_audio(compute_features(samples))
    p = detector.probabilities(audio, 0, len(audio))
    assert p.shape == (len(audio),) and np.all((p >= 0) & (p <= 1))
    spans = bilabials(phones)
    assert len(spans) >= 8
    heard = [p[frames_of(s, e, len(p))].max() > SEAL_FULL for s, e in spans]
    assert np.mean(heard) >= 0.75, heard
    centres = vowel_centres(phones)
    assert np.mean(p[centres] < 0.3) >= 0.85
    lead = slice(0, int(0.4 * FPS))  # the silence before the speech: nothing to seal
    assert p[lead].max() < 0.3


def test_a_stream_gets_the_same_probabilities_as_the_whole_clip(detector, finnish):
    assert_live_frames_match_whole(detector.probabilities, normalize_audio(compute_features(finnish[0])),
                                   detector.future)


def test_the_seal_closes_the_lips_where_the_model_alone_falls_short(detector, finnish):
    samples, phones = finnish
    model = MotionModel(DEFAULT_MODEL)
    feats = compute_features(samples)
    raw = DiffusionMotionGenerator(model, seed=0).generate(feats)
    sealed = DiffusionMotionGenerator(model, seed=0, lip_seal=detector).generate(feats)

    def gap(frames):
        return np.array([f.blendshapes[INDEX["jawOpen"]] - f.blendshapes[INDEX["mouthClose"]] for f in frames])

    def closed_fraction(g):
        return np.mean([g[frames_of(s, e, len(g))].min() < 0.02 for s, e in bilabials(phones)])

    g_raw, g_sealed = gap(raw), gap(sealed)
    assert closed_fraction(g_sealed) >= 0.85
    assert closed_fraction(g_sealed) >= closed_fraction(g_raw)
    # Vowels keep their opening, and everything but the jaw and lips is untouched.
    centres = vowel_centres(phones)
    assert np.mean(np.abs(g_sealed[centres] - g_raw[centres])) < 0.03
    lips = [INDEX[n] for n in ("jawOpen", "mouthClose", "mouthPressLeft", "mouthPressRight", "mouthFunnel",
                               "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
                               "mouthRollLower", "tongueOut")]
    others = np.setdiff1d(np.arange(len(raw[0].to_vector())), lips)
    assert np.array_equal(np.stack([f.to_vector() for f in raw])[:, others],
                          np.stack([f.to_vector() for f in sealed])[:, others])


def test_seal_weight_fades_the_lips_shut():
    b = np.zeros((3, 52), np.float32)
    b[:, INDEX["jawOpen"]] = 0.4
    b[:, INDEX["mouthFunnel"]] = 0.5
    training = b.copy()
    seal_lips(training, 1.0)  # as the training targets are sealed: the jaw stays (ARKit's lips together, jaw apart)
    assert np.allclose(training[:, INDEX["jawOpen"]], 0.4) and np.allclose(training[:, INDEX["mouthClose"]], 0.4)
    seal_lips(b, seal_weight(np.array([0.1, 0.4, 0.9])), max_jaw=SEALED_JAW)
    assert b[0, INDEX["jawOpen"]] == pytest.approx(0.4)
    assert b[0, INDEX["mouthClose"]] == 0.0 and b[0, INDEX["mouthFunnel"]] == 0.5
    half_jaw = 0.4 - 0.5 * (0.4 - SEALED_JAW)  # half-way sealed: the jaw half-way up, the lips half-way shut
    assert b[1, INDEX["jawOpen"]] == pytest.approx(half_jaw)
    assert b[1, INDEX["mouthClose"]] == pytest.approx(0.5 * half_jaw)
    assert b[1, INDEX["mouthFunnel"]] == pytest.approx(0.25)
    assert b[2, INDEX["jawOpen"]] == pytest.approx(SEALED_JAW)
    assert b[2, INDEX["mouthClose"]] == b[2, INDEX["jawOpen"]] and b[2, INDEX["mouthFunnel"]] == 0.0
    assert b[2, INDEX["mouthPressLeft"]] == pytest.approx(0.3)


def test_missing_or_wrong_detector_file_is_one_clear_error(tmp_path):
    with pytest.raises(LipSealError, match="lip-seal detector not found"):
        LipSeal(tmp_path / "nope.onnx")
    with pytest.raises(LipSealError, match="not a vasa_nodes lip-seal detector") as err:
        LipSeal(DEFAULT_MODEL)  # a motion model is not a detector
    assert "\n" not in str(err.value)
    assert load_lip_seal("none") is None
    assert load_lip_seal("").path == DEFAULT_LIP_SEAL
