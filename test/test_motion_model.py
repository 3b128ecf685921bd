"""The shipped motion diffusion model run by ONNX Runtime: determinism, streaming, idle,
lips, controls, any length. Every test runs the real model on real (synthesised) speech."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import speech_with_pauses

from vasa_nodes.core.blendshapes import INDEX, NUM_BLENDSHAPES
from vasa_nodes.core.features import FeatureFrames, StreamingFeatureExtractor, compute_features
from vasa_nodes.core.motion import Controls
from vasa_nodes.core.motion_model import (DEFAULT_MODEL, AudioNormalizer, DiffusionMotionGenerator, MotionModel,
                                          MotionModelError, normalize_audio)

FPS = 25.0


@pytest.fixture(scope="module")
def model():
    return MotionModel(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def speech():
    # Swedish is not among the training languages; the voice variant is not either.
    return speech_with_pauses(["Bob, Peter och Maria bor i ett blått hus vid havet.",
                               "Mamma bakar bullar med mjöl och smör."], pause_s=1.5, lead_s=1.5, voice="sv+m7")


def blend(frames, name):
    return np.array([f.blendshapes[INDEX[name]] for f in frames])


def speech_mask(n, spans, pad=(0.0, 0.0)):
    t = (np.arange(n) + 0.5) / FPS
    mask = np.zeros(n, bool)
    for start, end in spans:
        mask |= (t > start - pad[0]) & (t < end + pad[1])
    return mask


def test_model_file_is_the_whole_model(model):
    i = model.info
    assert (i.context, i.window, i.motion_dim, i.fps) == (10, 25, 61, 25.0)
    assert i.mean.shape == i.std.shape == (61,) and (i.std > 0).all()
    assert DEFAULT_MODEL.stat().st_size < 50e6


def test_missing_or_bad_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(MotionModelError, match="not found"):
        MotionModel(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(MotionModelError, match="cannot load"):
        MotionModel(bad)


def test_same_seed_same_motion_other_seed_other_motion(model, speech):
    feats = compute_features(speech[0])
    a = DiffusionMotionGenerator(model, seed=5).generate(feats)
    b = DiffusionMotionGenerator(model, seed=5).generate(feats)
    c = DiffusionMotionGenerator(model, seed=6).generate(feats)
    assert len(a) == len(feats)
    assert all(np.array_equal(x.to_vector(), y.to_vector()) for x, y in zip(a, b))
    assert not all(np.array_equal(x.to_vector(), y.to_vector()) for x, y in zip(a, c))


def test_one_thread_gives_the_motion_of_one_thread_per_core(model, speech):
    feats = compute_features(speech[0][:16000 * 2])
    one = MotionModel(threads=1)
    assert one.session.get_session_options().intra_op_num_threads == 1
    a = DiffusionMotionGenerator(model, seed=3).generate(feats)
    b = DiffusionMotionGenerator(one, seed=3).generate(feats)
    assert all(np.allclose(x.to_vector(), y.to_vector(), atol=1e-4) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="threads must be 0"):
        MotionModel(threads=-1)


def test_audio_normaliser_is_level_invariant_and_streams():
    x = speech_with_pauses(["Hello there."], lead_s=0.5)[0]
    loud, quiet = compute_features(x), compute_features(x * 10 ** (-24 / 20))
    a, b = normalize_audio(loud), normalize_audio(quiet)
    speaking = loud.voice_activity > 0.5
    assert np.abs(a[speaking, :80] - b[speaking, :80]).mean() < 0.1
    norm = AudioNormalizer()
    parts = [norm(FeatureFrames(i, loud.features[i:i + 7], loud.loudness_db[i:i + 7], loud.voice_activity[i:i + 7]))
             for i in range(0, len(loud), 7)]
    assert np.array_equal(np.concatenate(parts), a)
    # Digital silence sits at the floor, not normalised up to speech level.
    silence = normalize_audio(compute_features(np.zeros(16000, np.float32)))
    assert silence[:, :80].max() < 0.01


def test_lips_move_with_held_out_language_and_rest_in_silence(model, speech):
    samples, spans = speech
    frames = DiffusionMotionGenerator(model, seed=0).generate(compute_features(samples))
    jaw = blend(frames, "jawOpen")
    talking = speech_mask(len(frames), spans)
    silent = ~speech_mask(len(frames), spans, pad=(0.2, 0.3))
    assert np.percentile(jaw[talking], 90) > 0.25
    assert np.percentile(jaw[silent], 95) < 0.08
    # The mouth opens and closes with the syllables, not held open.
    assert np.std(jaw[talking]) > 0.07


def test_streaming_is_chunking_invariant_and_waits_one_frame(model, speech):
    feats = compute_features(speech[0][:16000 * 4])

    def stream(chunk):
        gen = DiffusionMotionGenerator(model, seed=2, lookahead_frames=1)
        out, first_ready = [], None
        for i in range(0, len(feats), chunk):
            got = gen.push(FeatureFrames(i, feats.features[i:i + chunk], feats.loudness_db[i:i + chunk],
                                         feats.voice_activity[i:i + chunk]))
            if got and first_ready is None:
                first_ready = i + chunk
            out += got
        return out + gen.finish(), first_ready

    a, first_a = stream(1)
    b, _ = stream(7)
    assert len(a) == len(b) == len(feats)
    assert [f.frame_index for f in a] == list(range(len(feats)))
    assert first_a == 2  # frame 0 is out as soon as frame 1 (its look-ahead) is in
    assert all(np.allclose(x.to_vector(), y.to_vector(), atol=1e-5) for x, y in zip(a, b))


def test_the_frame_ahead_makes_each_frame_one_chunk_sooner_with_the_same_lips(model, speech):
    x = speech[0][:16000 * 4]

    def stream(lookahead, use_ahead):
        extractor = StreamingFeatureExtractor()
        gen = DiffusionMotionGenerator(model, seed=2, lookahead_frames=lookahead)
        out, ready = [], []
        for c, i in enumerate(range(0, len(x), 320)):  # 20 ms chunks
            frames = extractor.push(x[i:i + 320])
            got = gen.push(frames, extractor.peek() if use_ahead else None)
            out += got
            ready += [c] * len(got)
        out += gen.push(extractor.finish()) + gen.finish()
        return out, np.array(ready)

    early, early_ready = stream(1, True)
    late, late_ready = stream(1, False)
    n = len(x) // 640
    assert [f.frame_index for f in early] == [f.frame_index for f in late] == list(range(n))
    assert early_ready[0] == 3  # frame 0 once frame 1's own audio is in (80 ms), not 20 ms after
    assert np.array_equal(early_ready[:len(late_ready)], late_ready - 1)

    def gap(frames):
        return blend(frames, "jawOpen") - blend(frames, "mouthClose")

    assert np.corrcoef(gap(early), gap(late))[0, 1] > 0.9
    assert np.abs(gap(early) - gap(late)).mean() < 0.2 * np.abs(gap(late)).mean()
    # Without look-ahead there is nothing for the frame ahead to stand in for.
    plain, _ = stream(0, False)
    same, _ = stream(0, True)
    assert all(np.array_equal(a.to_vector(), b.to_vector()) for a, b in zip(plain, same))
    # A frame ahead that is not the next one is refused, not silently misplaced.
    feats = compute_features(x[:16000])
    gen = DiffusionMotionGenerator(model, seed=2)
    with pytest.raises(ValueError, match="frame ahead"):
        gen.push(FeatureFrames(0, feats.features[:3], feats.loudness_db[:3], feats.voice_activity[:3]),
                 FeatureFrames(4, feats.features[4:5], feats.loudness_db[4:5], feats.voice_activity[4:5]))


def test_streamed_lips_follow_the_speech_and_the_head_moves_smoothly(model):
    from vasa_nodes.train.corpus import make_utterance

    # Swedish, not a training language; the phone timeline gives the lips' target.
    lips = make_utterance(["Bob, Peter och Maria bor i ett blått hus vid havet.",
                           "Mamma bakar bullar med mjöl och smör."], "sv", np.random.default_rng(5), augmented=False)
    feats = FeatureFrames(0, lips.features, lips.loudness_db, lips.voice_activity)
    # The model's own lips against its phone-based target (the heard opening, which follows
    # acoustics instead, is tested in test_acoustic_opening.py).
    gen = DiffusionMotionGenerator(model, seed=2, acoustic_opening=0.0)
    streamed = []
    for i in range(len(feats)):  # one feature frame at a time, as live
        streamed += gen.push(FeatureFrames(i, feats.features[i:i + 1], feats.loudness_db[i:i + 1],
                                           feats.voice_activity[i:i + 1]))
    streamed += gen.finish()
    offline = DiffusionMotionGenerator(model, seed=2, acoustic_opening=0.0).generate(feats)

    def gap(frames):
        return blend(frames, "jawOpen") - blend(frames, "mouthClose")

    target = lips.motion[:, INDEX["jawOpen"]] - lips.motion[:, INDEX["mouthClose"]]
    assert np.corrcoef(gap(streamed), target)[0, 1] > 0.55
    assert np.corrcoef(gap(streamed), gap(offline))[0, 1] > 0.6
    # Live, each frame comes from its own window: the head still moves smoothly.
    for frames in (streamed, offline):
        step = np.abs(np.diff(np.degrees([f.head_rotation for f in frames]), axis=0))
        assert step.mean() < 0.5 and step.max() < 4.0, (step.mean(), step.max())


def test_idle_face_blinks_moves_and_keeps_mouth_closed(model):
    gen = DiffusionMotionGenerator(model, seed=1)
    frames = [gen.idle() for _ in range(int(FPS * 60))]
    blink = blend(frames, "eyeBlinkLeft")
    closures = np.sum((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert 8 <= closures <= 35, closures
    assert blend(frames, "jawOpen").max() < 0.1
    yaw = np.degrees([f.head_rotation[0] for f in frames])
    assert np.std(yaw) > 0.2  # the head keeps moving
    step = np.abs(np.diff(yaw))
    assert step.max() < 3.0  # smoothly: no jumps between frames
    gaze = np.array([f.gaze for f in frames])
    assert np.ptp(gaze[:, 0]) > 0.05  # the eyes wander


def test_controls_change_the_motion_in_the_commanded_direction(model, speech):
    feats = compute_features(speech[0])

    def mean_of(controls, fn):
        frames = DiffusionMotionGenerator(model, seed=3, controls=controls).generate(feats)
        return float(np.mean([fn(f) for f in frames[25:]]))

    look = lambda f: f.gaze[0] + f.head_rotation[0]  # noqa: E731
    assert mean_of(Controls(gaze_enabled=True, gaze_yaw=0.35), look) > \
        mean_of(Controls(gaze_enabled=True, gaze_yaw=-0.35), look) + 0.3
    up = lambda f: f.gaze[1] + f.head_rotation[1]  # noqa: E731
    assert mean_of(Controls(gaze_enabled=True, gaze_pitch=0.25), up) > \
        mean_of(Controls(gaze_enabled=True, gaze_pitch=-0.25), up) + 0.2
    scale = lambda f: f.head_scale  # noqa: E731
    assert mean_of(Controls(distance_enabled=True, head_scale=1.3), scale) > \
        mean_of(Controls(distance_enabled=True, head_scale=0.8), scale) + 0.25
    neutral = Controls()
    cases = {"happy": ["mouthSmileLeft", "cheekSquintLeft"], "sad": ["mouthFrownLeft", "browInnerUp"],
             "angry": ["browDownLeft", "noseSneerLeft"], "surprised": ["eyeWideLeft", "browOuterUpLeft"]}
    for emotion, names in cases.items():
        felt = Controls(emotion=emotion, emotion_intensity=1.0)
        for name in names:
            b = lambda f: f.blendshapes[INDEX[name]]  # noqa: E731
            assert mean_of(felt, b) > mean_of(neutral, b) + 0.15, (emotion, name)


def test_ten_minutes_of_speech_in_constant_memory_without_drift(model, speech):
    samples = np.tile(speech[0], int(np.ceil(600 * 16000 / len(speech[0]))))[:600 * 16000]
    feats = compute_features(samples)
    gen = DiffusionMotionGenerator(model, seed=4)
    frames = gen.generate(feats)
    assert len(frames) == 600 * 25
    x = np.stack([f.to_vector() for f in frames])
    first, last = x[:25 * 60], x[-25 * 60:]
    head = slice(NUM_BLENDSHAPES, NUM_BLENDSHAPES + 3)
    assert np.abs(first[:, head].mean(0) - last[:, head].mean(0)).max() < np.radians(3)
    assert 0.5 < last[:, head].std() / max(first[:, head].std(), 1e-6) < 2.0
    jaw = slice(INDEX["jawOpen"], INDEX["jawOpen"] + 1)
    assert abs(first[:, jaw].mean() - last[:, jaw].mean()) < 0.05
    # No jump at window boundaries: the step across a boundary is like any other step.
    steps = np.abs(np.diff(x[:, head], axis=0)).sum(1)
    boundary = steps[24::25]
    assert boundary.mean() < 2.0 * steps.mean()
    # The streaming buffers stay bounded, whatever the length.
    assert len(gen._audio) <= 64 and len(gen._motion) <= model.info.context + gen.LIVE_LAG


def test_nodes_and_runtime_do_not_import_torch():
    code = ("import sys, vasa_nodes.core.motion_model, vasa_nodes.core.lip_seal, vasa_nodes.core.pipeline, "
            "vasa_nodes.nodes.motion_generator; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
