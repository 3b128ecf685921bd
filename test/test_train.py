"""Training data: the synthetic corpus and motion fitted to talking videos (real espeak-ng, tracker, video)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from vasa_nodes.core.blendshapes import INDEX
from vasa_nodes.core.motion import MOTION_DIM
from vasa_nodes.train.visemes import viseme_of

BIN = Path(sys.prefix) / "bin"


def small_corpus(folder: Path):
    """Two sentences in six languages saved as `folder`/corpus.npz; returns the utterances."""
    from vasa_nodes.train.corpus import make_utterance, save_utterances

    rng = np.random.default_rng(0)
    utterances = [make_utterance(["Bob bought a big blue map.", "Maybe we meet at noon."], v, rng)
                  for v in ("en-us", "fr", "de", "es", "it", "nl")]
    save_utterances(folder / "corpus.npz", utterances)
    return utterances


def test_corpus_pairs_features_with_motion_targets(tmp_path):
    r = subprocess.run([str(BIN / "vasa-train"), "corpus", "--out", str(tmp_path), "--minutes", "0.25",
                        "--languages", "en-us,fr,de"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = np.load(tmp_path / "corpus.npz")
    meta = json.loads((tmp_path / "corpus.json").read_text())
    total = int(data["lengths"].sum())
    assert data["features"].shape == (total, 80) and data["motion"].shape == (total, MOTION_DIM)
    assert meta["minutes"] >= 0.25 and set(meta["languages"]) <= {"en-us", "fr", "de"}
    # In every utterance the lips close on its bilabials and the jaw opens somewhere.
    start = 0
    for length, item in zip(data["lengths"], meta["items"]):
        jaw = data["motion"][start:start + length, INDEX["jawOpen"]]
        assert jaw.max() > 0.3
        for phone, s, e in item["phones"]:
            if viseme_of(phone) == "bilabial":
                lo, hi = int((s - 0.04) * 25), int(np.ceil(e * 25))
                assert jaw[max(lo, 0):hi + 1].min() < 0.15, (item["text"], phone, s)
        # In pauses (0.15 s away from any sound) the lips rest closed, not in the last sound's shape.
        t = (np.arange(length) + 0.5) / 25
        near = np.zeros(length, bool)
        for phone, s, e in item["phones"]:
            if viseme_of(phone) != "rest":
                near |= (t > s - 0.15) & (t < e + 0.15)
        assert (~near).sum() > 5 and jaw[~near].max() < 0.1, item["text"]
        start += length


def test_unknown_language_is_one_line(tmp_path):
    r = subprocess.run([str(BIN / "vasa-train"), "corpus", "--out", str(tmp_path), "--minutes", "0.1",
                        "--languages", "klingon"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().startswith("vasa-train: error: no texts for klingon")


def test_random_words_vary_the_sentences_reproducibly(tmp_path):
    from vasa_nodes.train.corpus import TEXTS

    def items(folder):  # each build in its own process, as the command is run
        r = subprocess.run([str(BIN / "vasa-train"), "corpus", "--out", str(folder), "--minutes", "0.2", "--seed", "1",
                            "--languages", "de,pt", "--random-words", "1"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads((folder / "corpus.json").read_text())["items"]

    first, again = items(tmp_path / "a"), items(tmp_path / "b")
    assert [i["text"] for i in first] == [i["text"] for i in again]  # same seed, same corpus
    german = [i for i in first if i["voice"].startswith("de")]
    assert german, "no German utterance in the corpus"
    for item in german:  # German has a word list: none of its built-in sentences is used
        assert not any(s in item["text"] for s in TEXTS["de"]), item["text"]
        assert len(item["text"].split()) >= 4 and item["phones"]
    for item in first:  # Portuguese has none: its built-in sentences stay
        if item["voice"].startswith("pt"):
            assert any(s in item["text"] for s in TEXTS["pt"]), item["text"]
    r = subprocess.run([str(BIN / "vasa-train"), "corpus", "--out", str(tmp_path / "c"), "--minutes", "0.1",
                        "--random-words", "1.5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "vasa-train: error: random_words must be within 0..1, got 1.5"
    assert not (tmp_path / "c" / "corpus.npz").exists()


def _talking_video(tmp_path, portrait_path, jaw, yaw, sound):
    """An mp4 of the portrait rendered from per-frame JawOpen and HeadYaw (25 fps) with `sound` (16 kHz)."""
    csv = tmp_path / "motion.csv"
    csv.write_text("JawOpen,HeadYaw\n" + "".join(f"{j:.4f},{y:.4f}\n" for j, y in zip(jaw, yaw)))
    wav = tmp_path / "sound.wav"
    soundfile.write(wav, np.asarray(sound, np.float32), 16000)
    video = tmp_path / "talk.mp4"
    r = subprocess.run([str(BIN / "vasa-generate"), "--portrait", str(portrait_path), "--motion", str(csv),
                        "--audio", str(wav), "--out", str(video), "--quiet"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return video


def test_motion_fitted_to_a_video_recovers_the_motion_that_made_it(tmp_path, portrait_path):
    n = 100
    t = np.arange(n)
    jaw = 0.5 + 0.5 * np.sin(t / 4)
    yaw = 0.2 * np.sin(t / 13)
    video = _talking_video(tmp_path, portrait_path, jaw, yaw, 0.1 * np.sin(np.arange(n * 640) / 7))
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(video), "--out", str(tmp_path / "data.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    motion = np.load(tmp_path / "data.npz")["motion"]
    assert abs(len(motion) - n) <= 1
    k = min(len(motion), n)
    assert np.corrcoef(motion[:k, INDEX["jawOpen"]], jaw[:k])[0, 1] > 0.9
    assert np.corrcoef(motion[:k, 52], yaw[:k])[0, 1] > 0.9  # head yaw, same sign


def test_fit_refuses_a_file_that_is_not_its_checkpoint(tmp_path):
    from vasa_nodes.train.corpus import make_utterance, save_utterances

    save_utterances(tmp_path / "corpus.npz", [make_utterance(["Hello there."], "en-us", np.random.default_rng(0))])
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    r = subprocess.run([str(BIN / "vasa-train"), "fit", str(tmp_path), "--out", str(tmp_path / "m.onnx"),
                        "--init", str(tmp_path / "junk.pt"), "--steps", "1"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith("vasa-train: error: cannot read")
    assert "Traceback" not in r.stderr and not (tmp_path / "m.onnx").exists()


def test_extract_copies_share_the_motion_and_augment_the_sound(tmp_path, portrait_path):
    """--copies N: the video's own sound once, then N - 1 augmented copies, all with the motion tracked once."""
    n = 50
    t = np.arange(n * 640) / 16000
    video = _talking_video(tmp_path, portrait_path, 0.5 + 0.5 * np.sin(np.arange(n) / 3), np.zeros(n),
                           0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)))
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(video), "--out", str(tmp_path / "data.npz"),
                        "--copies", "3", "--seed", "4"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "x3" in r.stdout
    data = np.load(tmp_path / "data.npz")
    lengths = data["lengths"]
    assert len(lengths) == 3 and len(set(lengths.tolist())) == 1
    motion = np.split(data["motion"], np.cumsum(lengths)[:-1])
    features = np.split(data["features"], np.cumsum(lengths)[:-1])
    assert all(np.array_equal(motion[0], m) for m in motion[1:])
    assert not np.allclose(features[0], features[1]) and not np.allclose(features[1], features[2])
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(video), "--out", str(tmp_path / "none.npz"),
                        "--copies", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "vasa-train: error: --copies must be at least 1"
    assert not (tmp_path / "none.npz").exists()


def test_opening_learns_a_real_video_and_finds_its_picture_sound_offset(tmp_path, portrait_path):
    """`vasa-train opening` on a rendered talking video whose sound (a buzz, loud where the jaw is
    open) comes 3 frames after the picture: the offset is found, and the exported model hears the
    opening in that sound."""
    from scipy.ndimage import gaussian_filter1d

    from vasa_nodes.core.acoustic_opening import OpeningModel
    from vasa_nodes.core.features import compute_features
    from vasa_nodes.core.motion_model import normalize_audio

    n, lag = 150, 3
    rng = np.random.default_rng(0)
    jaw = gaussian_filter1d(rng.normal(size=n), 1.5)
    jaw = np.clip((jaw - jaw.min()) / np.ptp(jaw), 0, 1)
    t = np.arange(n * 640) / 16000
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 27))  # harmonics up to 3.9 kHz
    envelope = np.interp(t * 25 - 0.5, np.arange(n), np.r_[np.zeros(lag), jaw[:n - lag]])  # jaw, 3 frames late
    video = _talking_video(tmp_path, portrait_path, jaw, np.zeros(n), 0.15 * buzz * (0.03 + envelope))
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(video), "--out", str(tmp_path / "data.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "opening.onnx"
    r = subprocess.run([str(BIN / "vasa-train"), "opening", str(tmp_path / "data.npz"), "--out", str(out),
                        "--steps", "400", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "validation correlation" in r.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["videos"] == 1 and abs(report["offsets_frames"][0]["frames"] - lag) <= 1, report["offsets_frames"]
    model = OpeningModel(out)
    assert (model.past, model.future) == (6, 1)
    audio = normalize_audio(compute_features(soundfile.read(tmp_path / "sound.wav", dtype="float32")[0]))
    heard = model.openings(audio, 0, len(audio))
    k = min(len(heard), n) - lag
    assert np.corrcoef(heard[lag:lag + k], jaw[:k])[0, 1] > 0.6  # the opening, where the sound has it

    r = subprocess.run([str(BIN / "vasa-train"), "opening", str(tmp_path / "data.npz"), "--out", str(out),
                        "--steps", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "vasa-train: error: --steps must be at least 1"
    r = subprocess.run([str(BIN / "vasa-train"), "opening", str(tmp_path / "none.npz"), "--out",
                        str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("vasa-train: error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_extract_reports_a_missing_video(tmp_path):
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(tmp_path / "none.mp4"), "--out",
                        str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "vasa-train: error:" in r.stderr and "Traceback" not in r.stderr


def test_recorded_speech_is_aligned_and_gets_motion_targets(tmp_path):
    """English through pocketsphinx, another language through espeak + DTW; lips close on bilabials."""
    import soxr

    from vasa_nodes.core.tts import synthesize

    rows = []
    for name, text, language, voice in [("en.wav", "Bob and Pam bought my map.", "en", "en-us+m3"),
                                        ("de.wav", "Mama bringt bald Brot mit.", "de", "de+f2")]:
        s = synthesize(text, voice=voice, rate_wpm=150)
        x = soxr.resample(s.samples, s.sample_rate, 16000)
        soundfile.write(tmp_path / name, np.concatenate([np.zeros(8000), x, np.zeros(8000)]), 16000)
        rows.append(f"{name}\t{text}\t{language}\n")
    (tmp_path / "transcripts.tsv").write_text("file\ttext\tlanguage\n" + "".join(rows))
    out = tmp_path / "data"
    r = subprocess.run([str(BIN / "vasa-train"), "recorded", str(tmp_path), "--out", str(out), "--copies", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = np.load(out / "corpus.npz")
    meta = json.loads((out / "corpus.json").read_text())
    assert [(x["language"], x["alphabet"]) for x in meta["recordings"]] == [("en", "arpabet"), ("de", "espeak")]
    assert len(data["lengths"]) == 4 and data["controls"].shape == (int(data["lengths"].sum()), 10)
    start = 0
    for length, item in zip(data["lengths"], meta["items"]):
        motion = data["motion"][start:start + length]
        jaw = motion[:, INDEX["jawOpen"]]
        bilabials = [(s, e) for p, s, e in item["phones"] if viseme_of(p, item["alphabet"]) == "bilabial"]
        assert len(bilabials) >= 3 and jaw.max() > 0.3
        # The lips meet on each /p b m/ (with the jaw a little open under a surprised face:
        # mouthClose seals them over it).
        gap = jaw - motion[:, INDEX["mouthClose"]]
        closed = [gap[int(s * 25):int(np.ceil(e * 25)) + 1].min() < 0.03 for s, e in bilabials]
        assert np.mean(closed) >= 0.75, item["source"]
        start += length


def test_tts_alignment_finds_the_phones_past_leading_silence_and_noise():
    """Other languages are timed by DTW against espeak-ng's own reading; a recording's silence
    before and after the speech (and its noise floor) must not drag phones into it."""
    import soxr

    from vasa_nodes.core.audio import Audio
    from vasa_nodes.core.tts import synthesize
    from vasa_nodes.train.recorded import align_with_tts

    text = "Mama bringt bald Brot mit."
    spoken = synthesize(text, voice="de+f2", rate_wpm=150)  # another voice and rate than the reading
    x = soxr.resample(spoken.samples, spoken.sample_rate, 16000).astype(np.float32)
    lead = np.zeros(8000, np.float32)
    x = np.concatenate([lead, 0.5 * x, lead, lead])
    x += np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * 3e-3  # a noise floor
    truth = [p.start_s + 0.5 for p in spoken.phonemes if not p.phoneme.startswith("_")]
    found = [start for p, start, _ in align_with_tts(Audio(x, 16000), text, "de") if not p.startswith("_")]
    assert len(found) == len(truth)
    error = np.abs(np.array(found) - truth)
    assert np.median(error) < 0.03 and error.max() < 0.1, np.round(error, 3)


def test_recorded_without_transcripts_is_one_line(tmp_path):
    r = subprocess.run([str(BIN / "vasa-train"), "recorded", str(tmp_path), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("vasa-train: error: no usable recordings")


def test_exported_model_matches_torch_under_onnx_runtime(tmp_path):
    import torch

    from vasa_nodes.core.motion_model import AUDIO_DIM, CONTROL_DIM, load_session
    from vasa_nodes.train.model import INPUT_NAMES, ModelConfig, MotionDiT, export_onnx

    torch.manual_seed(0)
    model = MotionDiT(ModelConfig(width=64, layers=2))
    for p in model.parameters():  # the modulation starts at zero; give it weight so that it is tested too
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "m.onnx"
    export_onnx(model, str(path), {"vasa_motion": "{}"})
    cfg = model.cfg
    n = cfg.context + cfg.window + cfg.lookahead
    b = 2
    inputs = [torch.randn(b, cfg.window, cfg.motion_dim), torch.rand(b), torch.randn(b, cfg.context, cfg.motion_dim),
              torch.tensor([[1.0], [0.0]]), torch.randn(b, n, AUDIO_DIM), (torch.rand(b, n) > 0.3).float(),
              torch.randn(b, CONTROL_DIM)]
    with torch.no_grad():
        expected = model(*inputs).numpy()
    session = load_session(path)
    got = session.run(None, {k: v.numpy() for k, v in zip(INPUT_NAMES, inputs)})[0]
    assert np.abs(got - expected).max() < 1e-4
    assert session.get_modelmeta().custom_metadata_map["vasa_motion"] == "{}"


def test_training_continues_from_an_exported_model(tmp_path):
    import torch

    from vasa_nodes.core.motion_model import AUDIO_DIM, CONTROL_DIM, DEFAULT_MODEL, load_session
    from vasa_nodes.train.fit import load_checkpoint
    from vasa_nodes.train.model import INPUT_NAMES, ModelConfig, MotionDiT

    ckpt = load_checkpoint(str(DEFAULT_MODEL))  # the shipped model: no .pt beside it
    model = MotionDiT(ModelConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    cfg = model.cfg
    n = cfg.context + cfg.window + cfg.lookahead
    g = torch.Generator().manual_seed(3)
    inputs = [torch.randn(4, cfg.window, cfg.motion_dim, generator=g), torch.rand(4, generator=g),
              torch.randn(4, cfg.context, cfg.motion_dim, generator=g), torch.tensor([[1.0], [0.0], [1.0], [1.0]]),
              torch.randn(4, n, AUDIO_DIM, generator=g), (torch.rand(4, n, generator=g) > 0.5).float(),
              torch.randn(4, CONTROL_DIM, generator=g)]
    with torch.no_grad():
        got = model(*inputs).numpy()
    expected = load_session(DEFAULT_MODEL).run(None, {k: v.numpy() for k, v in zip(INPUT_NAMES, inputs)})[0]
    assert np.abs(got - expected).max() < 1e-4
    assert len(ckpt["mean"]) == len(ckpt["std"]) == cfg.motion_dim

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model at all")
    with pytest.raises(ValueError, match="not an ONNX model"):
        load_checkpoint(str(junk))


def test_renormalize_keeps_the_predictions_in_motion_units():
    import torch

    from vasa_nodes.core.motion_model import AUDIO_DIM, CONTROL_DIM
    from vasa_nodes.train.fit import renormalize
    from vasa_nodes.train.model import ModelConfig, MotionDiT

    torch.manual_seed(0)
    model = MotionDiT(ModelConfig(width=64, layers=2))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    cfg = model.cfg
    rng = np.random.default_rng(0)
    old = (rng.normal(size=cfg.motion_dim), rng.uniform(0.02, 0.3, cfg.motion_dim))
    new = (old[0] + rng.normal(0, 0.05, cfg.motion_dim), old[1] * rng.uniform(0.5, 3.0, cfg.motion_dim))
    n = cfg.context + cfg.window + cfg.lookahead
    raw_x, raw_ctx = torch.randn(2, cfg.window, cfg.motion_dim), torch.randn(2, cfg.context, cfg.motion_dim)
    rest = [torch.tensor([[1.0], [1.0]]), torch.randn(2, n, AUDIO_DIM), torch.ones(2, n), torch.randn(2, CONTROL_DIM)]

    def predict(mean, std):  # the model's clean-motion prediction, in motion units
        m, s = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        with torch.no_grad():
            out = model((raw_x - m) / s, torch.tensor([0.3, 0.7]), (raw_ctx - m) / s, rest[0], *rest[1:])
        return (out * s + m).numpy()

    before = predict(*old)
    renormalize(model, old, new)
    assert np.abs(predict(*new) - before).max() < 1e-4
    assert np.abs(predict(*old) - before).max() > 0.1  # the layers did change


def test_fit_learns_and_exports_a_model_the_runtime_runs(tmp_path):
    from vasa_nodes.core.features import compute_features
    from vasa_nodes.core.motion_model import DiffusionMotionGenerator, MotionModel
    from vasa_nodes.train.fit import FitSettings, fit

    small_corpus(tmp_path)
    out = tmp_path / "model.onnx"
    report = fit([str(tmp_path)], str(out), FitSettings(minutes=5, max_steps=120, batch=16, width=64, layers=2,
                                                         validate_every=30), log=lambda m: None)
    losses = [h["validation_loss"] for h in report["history"]]
    assert report["steps"] == 120 and len(losses) == 4
    assert losses[-1] < 0.8 * losses[0]
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 120
    model = MotionModel(out, steps=2)
    assert model.info.window == 25 and model.info.extra["width"] == 64
    frames = DiffusionMotionGenerator(model).generate(compute_features(np.zeros(16000, np.float32)))
    assert len(frames) == 25 and np.isfinite(np.stack([f.to_vector() for f in frames])).all()

    # --init continues from the checkpoint written beside the ONNX: with the learning rate at
    # zero the continued model validates exactly where the first one's best did.
    again = fit([str(tmp_path)], str(tmp_path / "continued.onnx"),
                FitSettings(minutes=5, max_steps=30, batch=16, validate_every=30, lr=0.0,
                            init=str(out.with_suffix(".pt"))), log=lambda m: None)
    # (the history holds losses rounded to 5 decimals: allow one unit either way)
    assert again["history"][0]["validation_loss"] == pytest.approx(min(losses), abs=1.5e-5)
    assert MotionModel(tmp_path / "continued.onnx").info.extra["width"] == 64


def test_lip_closures_are_the_bilabial_frames():
    from vasa_nodes.core.blendshapes import INDEX
    from vasa_nodes.train.corpus import make_utterance
    from vasa_nodes.train.fit import lip_closures

    rng = np.random.default_rng(0)
    lips = make_utterance(["Bob bought my map."], "en-us", rng)
    closed = lip_closures(lips.motion)
    assert 3 <= closed.sum() <= 0.5 * len(closed)  # b, b, m, m, p: a few frames each
    gap = lips.motion[:, INDEX["jawOpen"]] - lips.motion[:, INDEX["mouthClose"]]
    assert gap[closed].max() < 0.03 and gap.max() > 0.2
    assert not lip_closures(make_utterance(["How are you?"], "en-us", rng).motion).any()


def test_lipseal_learns_and_exports_a_detector_the_runtime_runs(tmp_path):
    from vasa_nodes.core.features import FeatureFrames
    from vasa_nodes.core.lip_seal import LipSeal
    from vasa_nodes.core.motion_model import normalize_audio
    from vasa_nodes.train.fit import lip_closures
    from vasa_nodes.train.lip_seal import LipSealSettings, fit_lip_seal

    utterances = small_corpus(tmp_path)
    out = tmp_path / "lip_seal.onnx"
    report = fit_lip_seal([str(tmp_path)], str(out), LipSealSettings(steps=400, batch=128, hidden=64),
                          log=lambda m: None)
    assert report["steps"] == 400 and report["sealed_frames"] > 20
    assert json.loads(out.with_suffix(".json").read_text())["validation"] == report["validation"]
    detector = LipSeal(out)
    assert (detector.past, detector.future) == (6, 1)
    # It learnt where the lips shut: higher probabilities on those frames than elsewhere.
    u = utterances[1]
    audio = normalize_audio(FeatureFrames(0, u.features, u.loudness_db, u.voice_activity))
    p = detector.probabilities(audio, 0, len(audio))
    shut = lip_closures(u.motion)
    assert p[shut].mean() > p[~shut].mean() + 0.2


def test_lipseal_without_closures_in_the_data_is_one_line(tmp_path):
    from vasa_nodes.train.corpus import make_utterance, save_utterances

    save_utterances(tmp_path / "corpus.npz", [make_utterance(["How are you?"], "en-us", np.random.default_rng(0))])
    r = subprocess.run([str(BIN / "vasa-train"), "lipseal", str(tmp_path), "--out", str(tmp_path / "x.onnx")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["vasa-train: error: the data has no lip closures to learn from "
                                             "(corpora with /p b m/ are needed)"]
    assert not (tmp_path / "x.onnx").exists()


def test_the_cli_step_defaults_are_the_trainers():
    """`vasa-train` states its --steps defaults without importing torch; they must stay the trainers' own."""
    from vasa_nodes.cli.train import build_parser
    from vasa_nodes.train.lip_seal import LipSealSettings
    from vasa_nodes.train.opening import OpeningSettings

    parser = build_parser()
    assert parser.parse_args(["lipseal", "d", "--out", "o.onnx"]).steps == LipSealSettings.steps
    assert parser.parse_args(["opening", "d", "--out", "o.onnx"]).steps == OpeningSettings.steps
