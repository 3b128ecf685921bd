"""vasa-generate end to end: a real mp4 out, one-line errors for bad input."""

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from helpers import speech_with_pauses

from vasa_nodes.core.lip_seal import DEFAULT_LIP_SEAL
from vasa_nodes.core.motion_model import DEFAULT_MODEL

VASA_GENERATE = Path(sys.prefix) / "bin" / "vasa-generate"


def run(*args, timeout=300):
    return subprocess.run([str(VASA_GENERATE), *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory):
    samples, spans = speech_with_pauses(["Good morning, nice to meet you."], pause_s=0.5, lead_s=0.5)
    path = tmp_path_factory.mktemp("cli") / "speech.wav"
    soundfile.write(path, np.stack([samples, samples], 1), 16000)  # stereo on purpose
    return path, len(samples) / 16000


def test_generates_playable_mp4_with_audio_of_the_right_length(tmp_path, portrait_path, short_speech):
    wav, duration = short_speech
    out = tmp_path / "talk.mp4"
    result = run("--portrait", portrait_path, "--audio", wav, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert (video.width, video.height) == (512, 512)
        assert video.average_rate == 25
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert abs(len(frames) / 25 - duration) <= 1 / 25 + 1e-6
    # Not a still image: the face moves, most in the mouth.
    motion = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, frames[1:])])
    assert motion > 0.2


def test_missing_portrait(tmp_path, short_speech):
    r = run("--portrait", tmp_path / "nope.jpg", "--audio", short_speech[0], "--out", tmp_path / "o.mp4")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == f"vasa-generate: error: portrait file not found: {tmp_path / 'nope.jpg'}"


def test_not_an_image(tmp_path, short_speech):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    r = run("--portrait", bad, "--audio", short_speech[0], "--out", tmp_path / "o.mp4")
    assert r.returncode != 0 and "not an image" in r.stderr and "Traceback" not in r.stderr


def test_photo_without_a_face(tmp_path, short_speech):
    wall = tmp_path / "wall.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 300, 3), np.uint8)).save(wall)
    r = run("--portrait", wall, "--audio", short_speech[0], "--out", tmp_path / "o.mp4")
    assert r.returncode != 0 and "no face found" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("samples, message", [(0, "no samples"), (100, "too short")])
def test_empty_or_too_short_wav(tmp_path, portrait_path, samples, message):
    wav = tmp_path / "empty.wav"
    soundfile.write(wav, np.zeros(samples, np.float32), 16000)
    r = run("--portrait", portrait_path, "--audio", wav, "--out", tmp_path / "o.mp4")
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1


def test_nan_audio_is_sanitised_with_a_warning(tmp_path, portrait_path):
    x = np.zeros(8000, np.float32)
    x[100:200] = np.nan
    wav = tmp_path / "nan.wav"
    soundfile.write(wav, x, 16000, subtype="FLOAT")
    r = run("--portrait", portrait_path, "--audio", wav, "--out", tmp_path / "o.mp4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "100 NaN/Inf samples replaced by silence" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--motion-model", "/nonexistent/motion.onnx"], "motion model not found: /nonexistent/motion.onnx"),
    (["--steps", "0"], "--steps must be within 1..50, got 0"),
    (["--guidance", "9", "1"], "--guidance scales must be within 0..5"),
    (["--acoustic-opening", "1.5"], "--acoustic-opening must be within 0..1, got 1.5"),
    (["--lip-seal", "/nonexistent/seal.onnx"], "lip-seal detector not found: /nonexistent/seal.onnx"),
    (["--lip-seal", str(DEFAULT_MODEL)],
     f"not a vasa_nodes lip-seal detector (no vasa_lip_seal metadata): {DEFAULT_MODEL}"),
    (["--opening-model", "/nonexistent/opening.onnx"], "mouth-opening model not found: /nonexistent/opening.onnx"),
    (["--opening-model", str(DEFAULT_LIP_SEAL)],
     f"not a vasa_nodes mouth-opening model (no vasa_mouth_opening metadata): {DEFAULT_LIP_SEAL}"),
])
def test_bad_motion_model_options_are_one_line(tmp_path, portrait_path, speech_wav, args, message):
    r = run("--portrait", portrait_path, "--audio", speech_wav[0], "--out", tmp_path / "o.mp4", *args)
    assert r.returncode == 2 and r.stderr.strip().endswith(message), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o.mp4").exists()


def test_rule_based_motion_is_still_selectable(tmp_path, portrait_path, speech_wav):
    out = tmp_path / "rules.mp4"
    r = run("--portrait", portrait_path, "--audio", speech_wav[0], "--out", out, "--motion-model", "rules", "-q")
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 10_000
