"""The mouth opening heard in the sound (the shipped mouth-opening model under ONNX Runtime, and
the 2-4 kHz band level) and the generator's blend of it into the lip aperture: real espeak-ng
speech, the real feature pipeline and the shipped motion model."""

import numpy as np
import pytest

from helpers import assert_live_frames_match_whole

from vasa_nodes.core.acoustic_opening import (BLEND_FULLY_FROM, DEFAULT_OPENING_MODEL, DEFAULT_WEIGHT,
                                              KEEP_SHUT_BELOW, OPEN_APERTURE, OpeningModel, OpeningModelError,
                                              heard_opening, load_opening_model, open_mouth)
from vasa_nodes.core.blendshapes import INDEX
from vasa_nodes.core.lip_seal import DEFAULT_LIP_SEAL
from vasa_nodes.core.features import N_MELS, StreamingFeatureExtractor, compute_features
from vasa_nodes.core.motion_model import (DEFAULT_MODEL, DiffusionMotionGenerator, MotionModel, MotionModelError,
                                          normalize_audio)
from vasa_nodes.train.visemes import viseme_of

FPS = 25
JAW, CLOSE = INDEX["jawOpen"], INDEX["mouthClose"]


def centre_frames(phones, visemes, min_s=0.0):
    return [int((s + e) / 2 * FPS) for p, s, e in phones if viseme_of(p) in visemes and e - s > min_s]


def aperture(frames):
    return np.array([max(f.blendshapes[JAW] - f.blendshapes[CLOSE], 0.0) for f in frames])


def test_open_vowels_are_heard_open_closures_and_silence_shut(finnish):
    samples, phones = finnish
    audio = normalize_audio(compute_features(samples))
    o = heard_opening(audio)
    assert o.shape == (len(audio),) and np.all((o >= 0) & (o <= 1))
    assert np.all(o[:int(0.4 * FPS)] == 0.0)  # silence: no voice activity, nothing heard
    vowels = centre_frames(phones, {"open", "mid"}, min_s=0.06)
    closures = centre_frames(phones, {"bilabial"})
    assert len(vowels) >= 5 and len(closures) >= 8
    assert np.median(o[vowels]) > 0.5
    assert np.median(o[closures]) < np.median(o[vowels]) - 0.2


def test_the_blend_moves_the_aperture_only_where_there_is_voice_and_the_lips_are_apart():
    nearly_shut = 0.5 * KEEP_SHUT_BELOW
    half_way = 0.5 * (KEEP_SHUT_BELOW + BLEND_FULLY_FROM)  # half the blend's weight
    x = np.zeros((5, 61), np.float32)
    x[:, CLOSE] = 0.1
    x[:, JAW] = 0.1 + np.array([0.0, 0.2, 0.2, nearly_shut, half_way])
    x[:, INDEX["mouthPucker"]] = 0.4
    audio = np.zeros((5, N_MELS + 4), np.float32)
    audio[:, :N_MELS] = 1.0  # every band at the running peak level: heard well open
    audio[:, N_MELS] = [1.0, 1.0, 0.0, 1.0, 1.0]  # voice activity
    before = x.copy()
    heard = heard_opening(audio)
    assert heard[2] == 0.0 and np.all(heard[[0, 1, 3, 4]] > 0.5)
    target = OPEN_APERTURE * heard[1]
    assert np.array_equal(open_mouth(x.copy(), audio, weight=0.0), before)
    out = open_mouth(x, audio, weight=0.5)
    assert out is x
    aperture = out[:, JAW] - out[:, CLOSE]
    # In voice, half-way from the model's aperture (0.2) to the heard one; mouthClose stays.
    assert aperture[1] == pytest.approx(0.2 + 0.5 * (target - 0.2), abs=1e-6)
    # Shut or nearly shut lips stay as they are; from there the blend fades in.
    assert aperture[0] == pytest.approx(0.0) and aperture[3] == pytest.approx(nearly_shut)
    assert aperture[4] == pytest.approx(half_way + 0.25 * (target - half_way), abs=1e-6)
    assert out[2, JAW] == pytest.approx(0.3)  # no voice activity: untouched
    assert np.array_equal(np.delete(out, JAW, axis=1), np.delete(before, JAW, axis=1))


def test_the_generated_aperture_follows_the_heard_opening_and_streams_the_same(finnish):
    samples, phones = finnish
    model = MotionModel(DEFAULT_MODEL)
    feats = compute_features(samples)
    heard = heard_opening(normalize_audio(feats))
    own = DiffusionMotionGenerator(model, seed=0, acoustic_opening=0.0).generate(feats)
    blended = DiffusionMotionGenerator(model, seed=0).generate(feats)
    assert DiffusionMotionGenerator(model, seed=0).acoustic_opening == DEFAULT_WEIGHT > 0
    voiced = feats.voice_activity > 0.5
    r_own = np.corrcoef(aperture(own)[voiced], heard[voiced])[0, 1]
    r_blended = np.corrcoef(aperture(blended)[voiced], heard[voiced])[0, 1]
    assert r_blended > r_own + 0.2 and r_blended > 0.6, (r_own, r_blended)
    # Nothing but the jaw changes, and the silence before the speech stays as the model left it.
    a, b = np.stack([f.to_vector() for f in own]), np.stack([f.to_vector() for f in blended])
    assert np.array_equal(np.delete(a, JAW, axis=1), np.delete(b, JAW, axis=1))
    assert np.array_equal(a[feats.voice_activity == 0], b[feats.voice_activity == 0])

    # Live, in 20 ms chunks with the frame ahead: the blend acts as offline (the opening is a
    # function of each frame's own normalised audio).
    def live(weight):
        extractor = StreamingFeatureExtractor(FPS)
        gen = DiffusionMotionGenerator(model, seed=0, acoustic_opening=weight)
        out = []
        for i in range(0, len(samples), 320):
            out += gen.push(extractor.push(samples[i:i + 320]), extractor.peek())
        return aperture(out + gen.push(extractor.finish()) + gen.finish())[voiced]

    r_live_own = np.corrcoef(live(0.0), heard[voiced])[0, 1]
    r_live = np.corrcoef(live(DEFAULT_WEIGHT), heard[voiced])[0, 1]
    assert r_live > r_live_own + 0.2 and r_live > 0.6, (r_live_own, r_live)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_weight_outside_0_to_1_is_refused(weight):
    with pytest.raises(MotionModelError, match="acoustic opening must be within 0..1"):
        DiffusionMotionGenerator(MotionModel(DEFAULT_MODEL), acoustic_opening=weight)


@pytest.fixture(scope="module")
def opening_model():
    return OpeningModel(DEFAULT_OPENING_MODEL)


def test_the_opening_model_hears_open_vowels_wider_than_closures(opening_model, finnish):
    samples, phones = finnish
    audio = normalize_audio(compute_features(samples))
    o = opening_model.openings(audio, 0, len(audio))
    assert o.shape == (len(audio),) and np.all((o >= 0) & (o <= 1))
    vowels = centre_frames(phones, {"open", "mid"}, min_s=0.06)
    closures = centre_frames(phones, {"bilabial"})
    assert np.median(o[vowels]) > np.median(o[closures]) + 0.15
    assert o[:int(0.4 * FPS)].max() < 0.3  # the silence before the speech: heard nearly shut


def test_a_stream_hears_the_same_opening_as_the_whole_clip(opening_model, finnish):
    assert_live_frames_match_whole(opening_model.openings, normalize_audio(compute_features(finnish[0])),
                                   opening_model.future)


def test_the_generated_aperture_follows_the_opening_model(opening_model, finnish):
    samples, _ = finnish
    model = MotionModel(DEFAULT_MODEL)
    feats = compute_features(samples)
    heard = opening_model.openings(normalize_audio(feats), 0, len(feats.features))
    voiced = feats.voice_activity > 0.5
    own = DiffusionMotionGenerator(model, seed=0, acoustic_opening=0.0, opening_model=opening_model).generate(feats)
    blended = DiffusionMotionGenerator(model, seed=0, opening_model=opening_model).generate(feats)
    band = DiffusionMotionGenerator(model, seed=0).generate(feats)  # no model given: the band is heard
    r_own, r_blended, r_band = (np.corrcoef(aperture(x)[voiced], heard[voiced])[0, 1] for x in (own, blended, band))
    assert r_blended > r_own + 0.2 and r_blended > r_band + 0.1 and r_blended > 0.5, (r_own, r_blended, r_band)
    a, b = np.stack([f.to_vector() for f in own]), np.stack([f.to_vector() for f in blended])
    assert np.array_equal(np.delete(a, JAW, axis=1), np.delete(b, JAW, axis=1))
    assert np.array_equal(a[feats.voice_activity == 0], b[feats.voice_activity == 0])


def test_missing_or_wrong_opening_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(OpeningModelError, match="mouth-opening model not found"):
        OpeningModel(tmp_path / "nope.onnx")
    with pytest.raises(OpeningModelError, match="not a vasa_nodes mouth-opening model") as err:
        OpeningModel(DEFAULT_LIP_SEAL)  # a lip-seal detector is not a mouth-opening model
    assert "\n" not in str(err.value)
    assert load_opening_model("band") is None
    assert load_opening_model("").path == DEFAULT_OPENING_MODEL
