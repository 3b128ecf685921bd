"""Sessions as rosbag2 bags: the messages, serialised by rclpy (CDR), go into an MCAP rosbag2 bag
with their .msg definitions and come back intact, read by independent rosbag2 tooling (rosbags).
A live run of the graph is recorded with vasa-avatar --record, listed by rosbags, replayed with
--play (from its audio, and from its motion), rendered with vasa-generate --bag; bags that broke
off are read as far as they go."""

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from vasa_nodes.core.features import compute_features
from vasa_nodes.core.motion import Controls, MotionFrame
from vasa_nodes.core.resting_face import RestingFace
from sensor_msgs.msg import Image

from vasa_nodes.msg import AudioChunk, AudioFeatures, AvatarControl, FaceMotion
from vasa_nodes.nodes.common import IMAGE_QOS, STREAM_QOS, controls_to_msg, features_to_msg, motion_to_msg, to_time

MSG_DIR = Path(sys.prefix) / "share" / "vasa_nodes" / "msg"


def typestore_with_our_messages():
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(MSG_DIR.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"vasa_nodes/msg/{path.stem}"))
    store.register(types)
    return store


def test_a_session_round_trips_through_an_mcap_bag(tmp_path):
    store = typestore_with_our_messages()
    chunk = AudioChunk(sample_rate=16000, sample_offset=640, samples=np.linspace(-0.5, 0.5, 320, dtype=np.float32))
    chunk.header.stamp = to_time(1_000_000_000)
    messages = [
        ("/vasa/audio", chunk),
        ("/vasa/audio_features", features_to_msg(compute_features(np.zeros(1600, np.float32)), 25.0, 10, True)),
        ("/vasa/face_motion", motion_to_msg(MotionFrame.neutral(7).with_blendshapes(jawOpen=0.6), 25.0, 2_000_000)),
        ("/vasa/control", controls_to_msg(Controls(emotion="sad", emotion_intensity=0.4), 3_000_000)),
    ]
    bag = tmp_path / "session"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for i, (topic, msg) in enumerate(messages):
            name = f"vasa_nodes/msg/{type(msg).__name__}"
            conn = writer.add_connection(topic, name, typestore=store)
            writer.write(conn, 1_000 + i, serialize_message(msg))

    with Reader(bag) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            t: f"vasa_nodes/msg/{type(m).__name__}" for t, m in messages}
        read = {conn.topic: raw for conn, _, raw in reader.messages()}
    originals = dict(messages)

    motion = store.deserialize_cdr(read["/vasa/face_motion"], "vasa_nodes/msg/FaceMotion")
    assert motion.frame_index == 7 and len(motion.blendshape_names) == 52
    assert motion.blendshapes[list(motion.blendshape_names).index("jawOpen")] == np.float32(0.6)
    control = store.deserialize_cdr(read["/vasa/control"], "vasa_nodes/msg/AvatarControl")
    assert control.emotion == "sad"
    for topic, cls in (("/vasa/audio", AudioChunk), ("/vasa/audio_features", AudioFeatures),
                       ("/vasa/face_motion", FaceMotion), ("/vasa/control", AvatarControl)):
        # rclpy decodes what the bag holds to the message that went in (at its float32 precision;
        # CDR padding bytes are not compared, they are unspecified).
        expected = deserialize_message(serialize_message(originals[topic]), cls)
        assert deserialize_message(read[topic], cls) == expected


# -- sessions recorded, replayed and rendered by the product ------------------------------

BIN = Path(sys.prefix) / "bin"
FPS = 25
SPEECH_S = 2.0


def _stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _run_avatar(args: list[str], subscriptions, done, timeout_s: float):
    """Run vasa-avatar with `args` while listening: `subscriptions` is a list of (type, topic, qos,
    callback); stop it (Ctrl-C) once done() or after timeout_s. Returns (returncode, stderr)."""
    rclpy.init()
    node = rclpy.create_node("bag_test_listener")
    for msg_type, topic, qos, callback in subscriptions:
        node.create_subscription(msg_type, topic, callback, qos)
    proc = subprocess.Popen([str(BIN / "vasa-avatar"), *args], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None and not done():
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        node.destroy_node()
        rclpy.shutdown()
    return proc.returncode, stderr


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "avatar.yaml").read_text())
    cfg["/**/audio_capture"]["ros__parameters"]["start_delay_s"] = 5.0  # the renderer loads first
    cfg["/**/bag_player"]["ros__parameters"]["start_delay_s"] = 5.0
    # no resting face mid-run when a busy machine delays a motion frame: its easing would change
    # frames that the replay tests compare (the resting face is tested in test_view/test_supervision)
    cfg["/**/face_renderer"]["ros__parameters"]["rest_timeout_s"] = 10.0
    path = tmp_path_factory.mktemp("config") / "avatar.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, portrait_path, config):
    """A short live run of the graph on 2 s of the sample speech, recorded with vasa-avatar --record."""
    import soundfile

    samples, rate = soundfile.read(Path(__file__).resolve().parents[1] / "samples" / "speech_en.wav",
                                   dtype="float32")
    tmp = tmp_path_factory.mktemp("session")
    wav = tmp / "speech.wav"
    soundfile.write(wav, samples[:int(SPEECH_S * rate)], rate)
    bag = tmp / "session"
    audio, images = [], []
    code, stderr = _run_avatar(
        ["--portrait", str(portrait_path), "--audio", str(wav), "--config", str(config), "--record", str(bag)],
        [(AudioChunk, "/vasa/audio", STREAM_QOS, lambda m: audio.append(_stamp_ns(m))),
         (Image, "/vasa/image", IMAGE_QOS, lambda m: images.append(_stamp_ns(m)))],
        lambda: audio and images and images[-1] > audio[0] + int((SPEECH_S + 0.5) * 1e9), timeout_s=60)
    return {"bag": bag, "returncode": code, "stderr": stderr}


def test_a_live_run_is_recorded_with_every_graph_topic(recorded):
    assert recorded["returncode"] == 0, recorded["stderr"][-3000:]
    assert "Traceback" not in recorded["stderr"] and "[ERROR]" not in recorded["stderr"]
    assert "[bag_recorder]: closed" in recorded["stderr"]
    with Reader(recorded["bag"]) as reader:  # independent rosbag2 tooling
        types = {c.topic: c.msgtype for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
        definitions = {c.topic: c.msgdef.data for c in reader.connections}
        custom = dict(reader.storage.metadata.custom or {})
    assert types == {"/vasa/audio": "vasa_nodes/msg/AudioChunk",
                     "/vasa/audio_out": "vasa_nodes/msg/AudioChunk",
                     "/vasa/audio_features": "vasa_nodes/msg/AudioFeatures",
                     "/vasa/control": "vasa_nodes/msg/AvatarControl",
                     "/vasa/face_motion": "vasa_nodes/msg/FaceMotion",
                     "/vasa/image": "sensor_msgs/msg/Image",
                     "/vasa/image/compressed": "sensor_msgs/msg/CompressedImage"}
    assert counts["/vasa/audio"] == SPEECH_S * 1000 / 20  # every 20 ms chunk of the file
    assert counts["/vasa/control"] == 1  # the latched control, received on joining
    assert counts["/vasa/face_motion"] >= SPEECH_S * FPS and counts["/vasa/image"] >= SPEECH_S * FPS
    # Definitions embedded (what `ros2 bag info/play` needs without our package), and the provenance.
    assert "float32[] samples" in definitions["/vasa/audio"]
    assert "MSG: std_msgs/Header" in definitions["/vasa/face_motion"]
    meta = yaml.safe_load((recorded["bag"] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["custom_data"] == custom
    assert custom["vasa_nodes.generator"].startswith("vasa_nodes ")
    assert custom["vasa_nodes.digital_source_type"] == \
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert custom["vasa_nodes.synthetic"] == "true" and custom["vasa_nodes.watermark"].startswith("vasa_nodes mark")
    # vasa-detect finds the mark in the recorded images and the statement in the metadata
    run = subprocess.run([str(BIN / "vasa-detect"), str(recorded["bag"]), "--json", "--max-frames", "10"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (report,) = json.loads(run.stdout)
    assert report["found"] and report["frames_found"] == 10 and report["provenance"]["synthetic"] == "true"


def test_live_images_equal_their_recorded_motion_rendered_again(recorded, portrait_path):
    from vasa_nodes.core.bag import MOTION_TYPE, BagReader, deserialize
    from vasa_nodes.core.motion import motion_from_message
    from vasa_nodes.core.portrait import load_portrait
    from vasa_nodes.core.renderer import FaceRenderer
    from vasa_nodes.core.watermark import Watermarker

    with BagReader(recorded["bag"]) as reader:
        motion = {}
        for m in reader.messages(["/vasa/face_motion"]):
            msg = deserialize(m.raw, MOTION_TYPE)
            motion[_stamp_ns(msg)] = motion_from_message(msg)
        renderer = FaceRenderer(load_portrait(portrait_path, 512), watermark=Watermarker())
        psnr = []
        try:
            for m in reader.messages(["/vasa/image"]):
                msg = deserialize(m.raw, "sensor_msgs/msg/Image")
                live = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
                again = renderer.render(motion[_stamp_ns(msg)])  # every image has its motion frame's stamp
                mse = np.mean((again.astype(np.float64) - live) ** 2)
                psnr.append(np.inf if mse == 0 else 10 * np.log10(255 ** 2 / mse))
        finally:
            renderer.close()
    assert len(psnr) >= SPEECH_S * FPS
    assert min(psnr) >= 50.0, f"{sum(p == np.inf for p in psnr)} of {len(psnr)} identical, worst {min(psnr):.1f} dB"


def test_vasa_generate_renders_a_recorded_session(recorded, portrait_path, tmp_path):
    import av

    from vasa_nodes.core.bag import BagReader, session_motion

    out = tmp_path / "replay.mp4"
    run = subprocess.run([str(BIN / "vasa-generate"), "--bag", str(recorded["bag"]), "--portrait",
                          str(portrait_path), "--out", str(out), "--size", "256", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with BagReader(recorded["bag"]) as reader:
        stamps = sorted(_stamp_ns(deserialize_message(m.raw, FaceMotion))
                        for m in reader.messages(["/vasa/face_motion"]))
        session = session_motion(reader)
    expected = round((stamps[-1] - stamps[0]) * FPS / 1e9) + 1  # one frame per 40 ms of recorded motion
    assert len(session.frames) == expected
    with av.open(str(out)) as c:
        assert c.streams.audio, "the recorded speech is the sound track"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == expected and frames[0].shape == (256, 256, 3)


def test_a_session_replayed_from_its_audio_is_made_anew(recorded, portrait_path, config):
    """--play (from the recorded speech): the speech re-enters on /vasa/audio_in and the graph
    derives motion and images from it again."""
    with Reader(recorded["bag"]) as reader:
        conns = [c for c in reader.connections if c.topic == "/vasa/audio"]
        recorded_samples = sum(len(deserialize_message(raw, AudioChunk).samples)
                               for _, _, raw in reader.messages(connections=conns))
    audio_in, motion, images = [], [], []
    code, stderr = _run_avatar(
        ["--portrait", str(portrait_path), "--config", str(config), "--play", str(recorded["bag"])],
        [(AudioChunk, "/vasa/audio_in", STREAM_QOS, audio_in.append),
         (FaceMotion, "/vasa/face_motion", STREAM_QOS, motion.append),
         (Image, "/vasa/image", IMAGE_QOS, lambda m: images.append(_stamp_ns(m)))],
        lambda: (audio_in and audio_in[-1].end_of_stream and images
                 and images[-1] > _stamp_ns(audio_in[0]) + int((SPEECH_S + 0.3) * 1e9)),
        timeout_s=60)
    assert code == 0, stderr[-3000:]
    assert "[ERROR]" not in stderr and "Traceback" not in stderr
    assert sum(len(m.samples) for m in audio_in) == recorded_samples
    # The replayed speech stands on the present clock, and the faces made from it follow it.
    assert abs(_stamp_ns(audio_in[0]) - time.time_ns()) < 60e9
    t0 = _stamp_ns(audio_in[0])
    speech = [m for m in motion if t0 <= _stamp_ns(m) < t0 + int(SPEECH_S * 1e9)]
    assert len(speech) >= 0.9 * SPEECH_S * FPS
    assert max(m.voice_activity for m in speech) > 0.5
    assert sum(t0 <= s < t0 + int(SPEECH_S * 1e9) for s in images) >= 0.9 * SPEECH_S * FPS


def _truncated_copy(bag: Path, dest: Path, fraction: float) -> Path:
    """A recording that broke off: the first `fraction` of its MCAP file, no metadata.yaml."""
    dest.mkdir()
    src = next(bag.glob("*.mcap"))
    with open(src, "rb") as f:
        (dest / src.name).write_bytes(f.read(int(src.stat().st_size * fraction)))
    return dest


def test_a_truncated_bag_is_replayed_from_motion_as_far_as_it_reads(recorded, portrait_path, config, tmp_path):
    """--play-from motion: only face_renderer re-renders the recorded motion, so the replayed images
    are the recorded ones, on a shifted clock. The bag broke off: one WARN line, the rest is played.
    The replay runs in another namespace than the recording, and is itself recorded, in sqlite3."""
    broken = _truncated_copy(recorded["bag"], tmp_path / "broken", 0.6)
    with Reader(recorded["bag"]) as reader:
        conns = [c for c in reader.connections if c.topic == "/vasa/image"]
        originals = {}  # recorded image stamp -> digest of its pixels
        for _, _, raw in reader.messages(connections=conns):
            image = deserialize_message(raw, Image)
            originals[_stamp_ns(image)] = hashlib.sha1(bytes(image.data)).hexdigest()
        conns = [c for c in reader.connections if c.topic == "/vasa/face_motion"]
        motion_stamps = {_stamp_ns(deserialize_message(raw, FaceMotion))
                         for _, _, raw in reader.messages(connections=conns)}
    # only the images of recorded motion (not the resting face the renderer showed before motion came)
    # only the images of recorded motion (not the resting face the renderer showed before motion
    # came, nor the frames eased out of it)
    first = sorted(stamp for stamp in originals if stamp in motion_stamps)[RestingFace().blend_frames:]
    originals = {stamp: originals[stamp] for stamp in first}
    from vasa_nodes.core.bag import BagReader

    with BagReader(broken) as reader:
        readable = next(t.count for t in reader.topics if t.topic == "/vasa/face_motion")
        readable_stamps = {_stamp_ns(deserialize_message(m.raw, FaceMotion)) for m in reader.messages(["/vasa/face_motion"])}
    assert 0 < readable
    replayed = []
    recorded_hashes = set(originals.values())
    last_match = []  # when a frame of the recorded motion last came

    def on_image(m):
        h = hashlib.sha1(bytes(m.data)).hexdigest()
        replayed.append((_stamp_ns(m), h))
        if h in recorded_hashes:
            last_match.append(time.monotonic())

    again = tmp_path / "replay_db"
    code, stderr = _run_avatar(
        ["--portrait", str(portrait_path), "--config", str(config), "--play", str(broken), "--play-from", "motion",
         "--record", str(again), "--storage", "sqlite3", "--namespace", "robot1"],
        [(Image, "/robot1/vasa/image", IMAGE_QOS, on_image)],
        # the resting face fills the player's start delay; done once the recorded motion has played out
        lambda: bool(last_match) and time.monotonic() - last_match[-1] > 2.0, timeout_s=90)
    assert code == 0, stderr[-3000:]
    warnings = [line for line in stderr.splitlines() if "[WARN]" in line and "bag_player" in line]
    assert len(warnings) == 1 and "damaged or incomplete" in warnings[0] and str(broken) in warnings[0], warnings
    assert "[ERROR]" not in stderr and "Traceback" not in stderr
    assert "audio_encoder" not in stderr and "motion_generator" not in stderr  # face_renderer alone
    # The same motion gives the same images, on one clock shift for the whole replay. (The first
    # recorded motion frames came before face_renderer was up: they have no recorded image; and
    # the first replayed ones ease out of the resting face, RestingFace.blend_frames of them.)
    stamp_of = {h: stamp for stamp, h in originals.items()}
    shifts = Counter(stamp - stamp_of[h] for stamp, h in replayed if h in stamp_of)
    shift, matched = shifts.most_common(1)[0]
    comparable = [(stamp, h) for stamp, h in replayed if stamp - shift in originals][RestingFace().blend_frames:]
    # every readable frame of motion that has a recorded image comes back (all but the eased ones)
    expected = len(readable_stamps & originals.keys()) - RestingFace().blend_frames
    assert expected >= SPEECH_S * FPS / 2 and len(comparable) >= expected - 2 and matched >= len(comparable)
    assert all(originals[stamp - shift] == h for stamp, h in comparable)
    # The replay's own recording, in sqlite3, readable by rosbags
    with Reader(again) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
        custom = dict(reader.storage.metadata.custom or {})
    assert next(again.glob("*.db3"))
    assert types == {"/robot1/vasa/face_motion": "vasa_nodes/msg/FaceMotion", "/robot1/vasa/audio":
                     "vasa_nodes/msg/AudioChunk", "/robot1/vasa/image": "sensor_msgs/msg/Image", "/robot1/vasa/image/compressed": "sensor_msgs/msg/CompressedImage"}
    assert counts["/robot1/vasa/image"] >= 0.8 * len(replayed)
    assert custom["vasa_nodes.synthetic"] == "true"


def test_vasa_generate_renders_the_readable_part_of_a_truncated_bag(recorded, portrait_path, tmp_path):
    import av

    broken = _truncated_copy(recorded["bag"], tmp_path / "broken", 0.5)
    out = tmp_path / "part.mp4"
    run = subprocess.run([str(BIN / "vasa-generate"), "--bag", str(broken), "--portrait", str(portrait_path),
                          "--out", str(out), "--size", "128", "-q"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert "damaged or incomplete" in lines[0] and str(broken) in lines[0], lines
    # and, where the readable half holds no speech, one more line saying so
    assert len(lines) == 1 or (len(lines) == 2 and "no speech recorded on vasa/audio" in lines[1]), lines
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) > 10


def test_an_existing_bag_path_is_refused(tmp_path, portrait_path):
    (tmp_path / "taken").mkdir()
    run = subprocess.run([str(BIN / "vasa-avatar"), "--portrait", str(portrait_path), "--record",
                          str(tmp_path / "taken")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == f"vasa-avatar: error: bag path already exists, not overwriting: {tmp_path / 'taken'}"


@pytest.mark.parametrize("content", [b"", b"not a bag at all" * 100])
def test_a_file_that_is_no_bag_is_one_line(tmp_path, portrait_path, content):
    bad = tmp_path / "session.mcap"
    bad.write_bytes(content)
    for cmd in (["vasa-avatar", "--portrait", str(portrait_path), "--play", str(bad)],
                ["vasa-generate", "--portrait", str(portrait_path), "--bag", str(bad), "--out", str(tmp_path / "x.mp4")]):
        run = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{cmd[0]}: error: cannot read bag {bad}"), lines
        assert not (tmp_path / "x.mp4").exists()


def test_core_bag_writes_both_storages_and_reads_a_cut_sqlite_or_mcap_file(tmp_path):
    """BagWriter in each storage, read back by rosbags; the same bag's storage file alone (no
    metadata.yaml, as a recorder that never closed leaves it) is still read by BagReader."""
    from vasa_nodes.core.bag import BagReader, BagWriter, TopicQos

    frames = [motion_to_msg(MotionFrame.neutral(k).with_blendshapes(jawOpen=k / 3000), 25.0, k * 40_000_000)
              for k in range(3000)]  # about 4 MB: several MCAP chunks
    for storage in ("mcap", "sqlite3"):
        with BagWriter(tmp_path / storage, storage) as writer:
            writer.add_topic("/vasa/control", "vasa_nodes/msg/AvatarControl", TopicQos(transient_local=True, depth=1))
            writer.write("/vasa/control", "vasa_nodes/msg/AvatarControl", 0,
                         serialize_message(controls_to_msg(Controls(emotion="happy"), 0)))
            for k, msg in enumerate(frames):
                writer.write("/vasa/face_motion", "vasa_nodes/msg/FaceMotion", 1 + k, serialize_message(msg))
        with Reader(tmp_path / storage) as reader:
            assert {c.topic: c.msgcount for c in reader.connections} == {"/vasa/control": 1, "/vasa/face_motion": 3000}
            latched = next(c for c in reader.connections if c.topic == "/vasa/control")
            assert latched.ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"
        bare = BagReader(next((tmp_path / storage).glob("*.mcap" if storage == "mcap" else "*.db3")))
        assert bare.warning is None
        assert {t.topic: t.count for t in bare.topics} == {"/vasa/control": 1, "/vasa/face_motion": 3000}
        assert next(t for t in bare.topics if t.topic == "/vasa/control").qos.transient_local
    cut = _truncated_copy(tmp_path / "mcap", tmp_path / "cut", 0.7)
    reader = BagReader(cut)
    got = [deserialize_message(m.raw, FaceMotion) for m in reader.messages(["/vasa/face_motion"])]
    assert 0.5 * 3000 < len(got) < 0.75 * 3000
    assert [m.frame_index for m in got] == list(range(len(got)))  # the readable part, intact and in order
    assert reader.warning == (f"{cut}: damaged or incomplete (the file breaks off inside a record): "
                              f"read {len(got) + 1} messages, the rest is lost")
