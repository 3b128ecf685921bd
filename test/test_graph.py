"""The whole five-node graph over real DDS, started by vasa-avatar from a YAML config.

Speech synthesised here (espeak-ng) is played by audio_capture; the test listens on
/vasa/audio, /vasa/face_motion and /vasa/image and checks rate, A/V stamps and that the
mouth moves with speech and rests in silence (measured with the face tracker on the frames).
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from sensor_msgs.msg import Image

from vasa_nodes.msg import AudioChunk, AudioFeatures, FaceMotion
from vasa_nodes.nodes.common import IMAGE_QOS

VASA_AVATAR = Path(sys.prefix) / "bin" / "vasa-avatar"
FPS = 25


@pytest.fixture(scope="module")
def session(tmp_path_factory, portrait_path, speech_wav):
    """Run the graph on the speech file and record what it publishes."""
    wav, spans = speech_wav
    duration = len(__import__("soundfile").read(wav)[0]) / 16000
    tmp = tmp_path_factory.mktemp("graph")
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "avatar.yaml").read_text())
    config["/**/audio_capture"]["ros__parameters"]["start_delay_s"] = 6.0  # renderer loads first
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))

    rclpy.init()
    node = rclpy.create_node("graph_test_listener")
    audio, motion, images, features = [], [], [], []

    def stamp(msg):
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    node.create_subscription(AudioChunk, "/vasa/audio", lambda m: audio.append((stamp(m), m.sample_offset)), 200)
    node.create_subscription(FaceMotion, "/vasa/face_motion", lambda m: motion.append(stamp(m)), 200)
    node.create_subscription(AudioFeatures, "/vasa/audio_features", features.append, 200)
    node.create_subscription(
        Image, "/vasa/image",
        lambda m: images.append((stamp(m), np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width, 3))),
        IMAGE_QOS)
    proc = subprocess.Popen([str(VASA_AVATAR), "--portrait", str(portrait_path), "--audio", str(wav),
                             "--config", str(tmp / "config.yaml")], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 6.0 + duration + 30.0
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if audio and images and images[-1][0] > audio[0][0] + duration + 1.0:
                break
            if proc.poll() is not None:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        node.destroy_node()
        rclpy.shutdown()
    return {"audio": audio, "motion": motion, "images": images, "features": features, "spans": spans,
            "duration": duration,
            "stderr": stderr, "returncode": proc.returncode}


def test_graph_shuts_down_cleanly(session):
    assert session["returncode"] == 0, session["stderr"][-3000:]
    assert "Traceback" not in session["stderr"]
    assert "[ERROR]" not in session["stderr"]


def test_every_live_image_carries_the_watermark(session):
    from vasa_nodes.core.watermark import detect

    found = [detect(image).found for _, image in session["images"]]
    assert len(found) > 50 and all(found)


def test_frames_arrive_at_the_configured_rate_on_audio_time(session):
    assert session["audio"], "no audio on /vasa/audio"
    t0 = session["audio"][0][0] - session["audio"][0][1] / 16000  # stream's sample 0
    duration = session["duration"]
    speech = np.array(sorted(s for s, _ in session["images"] if t0 - 1e-4 <= s < t0 + duration))
    expected = int(np.ceil(duration * FPS))
    assert len(speech) >= 0.9 * expected, f"{len(speech)} of {expected} frames"
    # Each frame k of the stream is stamped t0 + k / fps: on the audio clock, 40 ms apart.
    k = (speech - t0) * FPS
    assert np.abs(k - np.round(k)).max() < 0.01
    assert np.median(np.diff(speech)) == pytest.approx(1 / FPS, abs=1e-3)
    assert speech[-1] == pytest.approx(t0 + (expected - 1) / FPS, abs=2 / FPS)
    # Between streams the face idles on: frames keep coming after the speech ended.
    assert any(s > t0 + duration + 0.3 for s, _ in session["images"])


def test_each_feature_frame_comes_ahead_of_time_then_complete(session):
    """audio_encoder sends every frame a chunk early (its window's tail mirrored in), then
    complete; the motion generator uses the early one as its look-ahead."""
    complete, ahead = {}, {}
    for m in session["features"]:
        n = int(m.num_frames)
        rows = np.asarray(m.features, np.float32).reshape(n, 80)
        for k in range(n):
            complete[int(m.frame_offset) + k] = rows[k]
        if len(m.ahead_features):
            k = int(m.frame_offset) + n
            assert k not in complete  # ahead of the complete frame, never after it
            ahead[k] = np.asarray(m.ahead_features, np.float32)
    assert len(complete) >= 25 * session["duration"] - 1
    assert len(ahead) >= len(complete) - 2
    # The same frame: far closer to its complete self than to its neighbour.
    both = [k for k in ahead if k in complete and k - 1 in complete]
    diff = np.median([np.abs(ahead[k] - complete[k]).mean() for k in both])
    step = np.median([np.abs(complete[k] - complete[k - 1]).mean() for k in both])
    assert diff < 0.3 * step, (diff, step)


def test_mouth_moves_with_speech_and_rests_in_silence(session, fitter):
    from vasa_nodes.core.evaluation import track_frames

    t0 = session["audio"][0][0] - session["audio"][0][1] / 16000
    track = track_frames((image for _, image in session["images"]), FPS, fitter)
    tracked = np.isfinite(track.aperture)
    times = np.array([s - t0 for s, _ in session["images"]])[tracked]
    gaps = track.aperture[tracked]
    in_speech = np.zeros(len(times), bool)
    silent = (times > -10) & (times < session["duration"] + 10)
    for start, end in session["spans"]:
        in_speech |= (times > start) & (times < end)
        silent &= ~((times > start - 0.3) & (times < end + 0.4))
    assert in_speech.sum() > 50 and silent.sum() > 20
    rest = np.median(gaps[silent])
    # Speech opens the lips well beyond their rest; silence keeps them at rest.
    # (about 0.065 above rest here: the sentences are full of /p b m/, where the lips shut)
    assert np.percentile(gaps[in_speech], 90) > rest + 0.045
    assert np.percentile(np.abs(gaps[silent] - rest), 95) < 0.015
