"""Provenance and vasa-detect on real files: mp4s made by vasa-generate (H.264, MP4 tags,
signed C2PA manifest), a PNG frame, a JPEG re-encode, an MCAP bag of images, and files that
are not ours, broken or not media at all."""

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from helpers import speech_with_pauses

from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.motion_model import DEFAULT_MODEL
from vasa_nodes.core.portrait import load_portrait
from vasa_nodes.core.provenance import DIGITAL_SOURCE_TYPE, bag_metadata, read_manifest, statement
from vasa_nodes.core.renderer import FaceRenderer
from vasa_nodes.core.watermark import Watermarker

BIN = Path(sys.prefix) / "bin"
KEY = "lab-robot-42"


def run(cmd, *args, env=None, timeout=300):
    return subprocess.run([str(BIN / cmd), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def key_env(tmp_path_factory):
    import os

    env = dict(os.environ)
    env["VASA_NODES_KEY_DIR"] = str(tmp_path_factory.mktemp("c2pa-key"))
    return env


@pytest.fixture(scope="module")
def clips(tmp_path_factory, portrait_path, key_env):
    """Three mp4s from vasa-generate: marked, marked with a key, unmarked."""
    root = tmp_path_factory.mktemp("detect")
    samples, _ = speech_with_pauses(["Good morning."], pause_s=0.3, lead_s=0.3)
    wav = root / "speech.wav"
    soundfile.write(wav, samples, 16000)
    out = {}
    for name, extra in [("marked", []), ("keyed", ["--watermark-key", KEY]), ("unmarked", ["--no-watermark"])]:
        out[name] = root / f"{name}.mp4"
        r = run("vasa-generate", "--portrait", portrait_path, "--audio", wav, "--out", out[name], "--quiet",
                *extra, env=key_env)
        assert r.returncode == 0, r.stderr
        out[name + "_log"] = r.stderr
    return out


def detect_json(*args):
    r = run("vasa-detect", "--json", *args)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def test_every_mp4_states_that_it_is_synthetic(clips):
    for name in ("marked", "unmarked"):
        with av.open(str(clips[name])) as c:
            tags = dict(c.metadata)
        assert tags["vasa_nodes.digital_source_type"] == DIGITAL_SOURCE_TYPE
        assert tags["vasa_nodes.synthetic"] == "true" and tags["vasa_nodes.generator"].startswith("vasa_nodes ")
        assert "Synthetic media" in tags["comment"]
    with av.open(str(clips["marked"])) as c:
        assert f"{Path(DEFAULT_MODEL).name} sha256:" in c.metadata["vasa_nodes.models"]
        assert "vasa_nodes mark v1" in c.metadata["vasa_nodes.watermark"]
    with av.open(str(clips["unmarked"])) as c:
        assert c.metadata["vasa_nodes.watermark"] == "off"


def test_every_mp4_carries_a_signed_c2pa_manifest(clips):
    manifest = read_manifest(clips["marked"])
    assert manifest is not None
    assert manifest["claim_generator"].startswith("vasa_nodes")
    assert manifest["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert manifest["statement"]["synthetic"] == "true"
    # intact, signed by the local key, which no C2PA trust list knows
    assert all("mismatch" not in code and "invalid" not in code for code in manifest["validation"])
    assert "signingCredential.untrusted" in manifest["validation"]


def test_no_watermark_is_logged(clips):
    assert "watermark off" in clips["unmarked_log"]
    assert "watermark off" not in clips["marked_log"]


def test_vasa_detect_finds_the_mark_and_the_provenance(clips):
    code, reports, _ = detect_json(clips["marked"])
    assert code == 0
    (r,) = reports
    assert r["found"] and r["kind"] == "video" and r["mark"]["version"] == 1 and not r["mark"]["keyed"]
    assert r["frames"] >= 25 and r["fraction"] >= 0.99
    assert r["confidence"] > 0.999999 and r["p_value"] < 1e-6
    assert r["provenance"]["synthetic"] == "true"
    assert r["c2pa"]["digital_source_type"] == DIGITAL_SOURCE_TYPE


def test_vasa_detect_checks_a_key(clips):
    code, (good,), _ = detect_json("--key", KEY, clips["keyed"])
    assert code == 0 and good["key_match"] is True and good["mark"]["keyed"]
    code, (wrong,), _ = detect_json("--key", "not-the-key", clips["keyed"])
    assert code == 0 and wrong["found"] and wrong["key_match"] is False
    text = run("vasa-detect", "--key", "not-the-key", clips["keyed"]).stdout
    assert "MARKED" in text and "does NOT match --key" in text


def test_vasa_detect_reports_an_unmarked_video_as_not_found(clips):
    code, (r,), _ = detect_json(clips["unmarked"])
    assert code == 1
    assert not r["found"] and r["mark"] is None and r["frames_found"] == 0
    assert r["provenance"]["synthetic"] == "true"  # its metadata still says what it is


def test_vasa_detect_on_images(clips, tmp_path):
    with av.open(str(clips["marked"])) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    png, jpg = tmp_path / "frame.png", tmp_path / "frame.jpg"
    Image.fromarray(frame).save(png)
    Image.fromarray(frame).save(jpg, quality=90)
    code, reports, _ = detect_json(png, jpg)
    assert code == 0 and all(r["found"] and r["kind"] == "image" and r["frames"] == 1 for r in reports)


def test_vasa_detect_finds_the_mark_in_a_cropped_reencoded_video(clips, tmp_path):
    out = tmp_path / "cropped.mp4"
    with av.open(str(clips["marked"])) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=25, options={"crf": "28"})
        stream.width, stream.height, stream.pix_fmt = 440, 440, "yuv420p"
        for frame in src.decode(video=0):
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[60:500, 20:460])
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        dst.mux(stream.encode())
    code, (r,), _ = detect_json(out)
    assert code == 0 and r["found"] and r["provenance"] is None  # the re-encode dropped the metadata
    assert r["alignment"]["kept_fraction"] == pytest.approx(440 / 512, abs=0.01)
    code, (r,), _ = detect_json("--no-search", out)
    assert code == 1 and not r["found"]


def test_vasa_detect_on_a_real_photo_and_a_sheet(portrait_path, tmp_path):
    code, (r,), _ = detect_json(portrait_path)
    assert code == 1 and not r["found"] and r["provenance"] is None
    sheet = tmp_path / "sheet.png"
    made = run("vasa-generate", "--portrait", portrait_path, "--sheet", sheet, "--size", "256")
    assert made.returncode == 0, made.stderr
    code, (r,), _ = detect_json(sheet)
    # the sheet states what it is; its mark (20 small faces and labels) is not relied on
    assert code in (0, 1) and r["provenance"]["synthetic"] == "true"
    assert r["provenance"]["watermark"].startswith("vasa_nodes mark v1")


def _image_bag(path: Path, frames, stmt) -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    Img = store.types["sensor_msgs/msg/Image"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for k, v in bag_metadata(stmt).items():
            writer.set_custom_data(k, v)
        conn = writer.add_connection("/vasa/image", Img.__msgtype__, typestore=store)
        for i, rgb in enumerate(frames):
            msg = Img(header=Header(stamp=Time(sec=i // 25, nanosec=(i % 25) * 40_000_000), frame_id="avatar_camera"),
                      height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                      step=rgb.shape[1] * 3, data=rgb.reshape(-1))
            writer.write(conn, i * 40_000_000, store.serialize_cdr(msg, Img.__msgtype__))


@pytest.fixture(scope="module")
def rendered(portrait_path):
    renderer = FaceRenderer(load_portrait(portrait_path, 256), watermark=Watermarker())
    try:
        return [renderer.render(MotionFrame.neutral(i).with_blendshapes(jawOpen=0.05 * i)) for i in range(10)]
    finally:
        renderer.close()


def test_vasa_detect_on_a_bag(rendered, tmp_path):
    bag = tmp_path / "session"
    _image_bag(bag, rendered, statement(watermark=Watermarker()))
    code, (r,), _ = detect_json(bag)
    assert code == 0, r
    assert r["kind"] == "bag" and r["found"] and r["frames"] == 10 and r["topics"] == ["/vasa/image"]
    assert r["provenance"]["synthetic"] == "true"
    # the .mcap file alone reads too
    (mcap,) = bag.glob("*.mcap")
    code, (r,), _ = detect_json(mcap)
    assert code == 0 and r["frames"] == 10


def test_a_truncated_bag_is_read_as_far_as_it_goes(rendered, tmp_path):
    bag = tmp_path / "session"
    _image_bag(bag, rendered * 3, statement(watermark=Watermarker()))
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    r = run("vasa-detect", "--json", cut)
    assert r.returncode in (0, 2), r.stderr
    if r.returncode == 0:  # the readable part was read, and the break said
        (rep,) = json.loads(r.stdout)
        assert rep["found"] and 0 < rep["frames"] < 30 and rep["warning"]
    else:
        assert len(r.stderr.strip().splitlines()) == 1 and "cut.mcap: cannot read" in r.stderr


def test_bad_files_get_one_line_and_the_rest_is_still_read(clips, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips["marked"].read_bytes()[:2000])
    missing = tmp_path / "missing.mp4"
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    r = run("vasa-detect", text, broken, missing, bad_png, clips["marked"])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 4, r.stderr
    for path, line in zip((text, broken, missing, bad_png), lines):
        assert line.startswith(f"vasa-detect: {path}: cannot read: ")
    assert "Traceback" not in r.stderr
    assert f"{clips['marked']}: MARKED" in r.stdout


def test_a_truncated_video_reports_the_frames_it_has(clips, tmp_path):
    data = clips["marked"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 4 // 5])  # the index comes first (faststart): what is there decodes
    r = run("vasa-detect", "--json", cut)
    assert r.returncode == 0, r.stderr
    (rep,) = json.loads(r.stdout)
    with av.open(str(clips["marked"])) as c:
        total = c.streams.video[0].frames
    assert rep["found"] and 0 < rep["frames"] < total
    assert rep["warning"] == f"the file ends after {rep['frames']} of its {total} frames (truncated?)"
    # and the C2PA manifest no longer matches the content
    assert any("mismatch" in code for code in rep["c2pa"]["validation"])
