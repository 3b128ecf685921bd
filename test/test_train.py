"""Training data: the synthetic corpus and motion fitted to talking videos (real espeak-ng, tracker, video)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from vasa_nodes.core.blendshapes import INDEX
from vasa_nodes.core.motion import MOTION_DIM
from vasa_nodes.train.visemes import viseme_of

BIN = Path(sys.prefix) / "bin"


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
        start += length


def test_unknown_language_is_one_line(tmp_path):
    r = subprocess.run([str(BIN / "vasa-train"), "corpus", "--out", str(tmp_path), "--minutes", "0.1",
                        "--languages", "klingon"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().startswith("vasa-train: error: no texts for klingon")


def test_motion_fitted_to_a_video_recovers_the_motion_that_made_it(tmp_path, portrait_path):
    n = 100
    t = np.arange(n)
    jaw = 0.5 + 0.5 * np.sin(t / 4)
    yaw = 0.2 * np.sin(t / 13)
    csv = tmp_path / "motion.csv"
    csv.write_text("JawOpen,HeadYaw\n" + "".join(f"{j:.4f},{y:.4f}\n" for j, y in zip(jaw, yaw)))
    wav = tmp_path / "sound.wav"
    soundfile.write(wav, 0.1 * np.sin(np.arange(n * 640) / 7).astype(np.float32), 16000)
    video = tmp_path / "talk.mp4"
    r = subprocess.run([str(BIN / "vasa-generate"), "--portrait", str(portrait_path), "--motion", str(csv),
                        "--audio", str(wav), "--out", str(video), "--quiet"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(video), "--out", str(tmp_path / "data.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    motion = np.load(tmp_path / "data.npz")["motion"]
    assert abs(len(motion) - n) <= 1
    k = min(len(motion), n)
    assert np.corrcoef(motion[:k, INDEX["jawOpen"]], jaw[:k])[0, 1] > 0.9
    assert np.corrcoef(motion[:k, 52], yaw[:k])[0, 1] > 0.9  # head yaw, same sign


def test_extract_reports_a_missing_video(tmp_path):
    r = subprocess.run([str(BIN / "vasa-train"), "extract", str(tmp_path / "none.mp4"), "--out",
                        str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "vasa-train: error:" in r.stderr and "Traceback" not in r.stderr
