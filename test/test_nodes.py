"""Each node's start-up and bad input: one ERROR line naming the problem, never a traceback or a hang."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from vasa_nodes.msg import AvatarControl
from vasa_nodes.nodes.common import CONTROL_QOS


def start(node: str, *params: str):
    args = [sys.executable, "-P", "-m", f"vasa_nodes.nodes.{node}", "--ros-args"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc) -> str:
    """Ctrl-C to a node started by start(); its output."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=20)[0]


def wait_for_subscriber(node, pub, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)


def run_to_exit(node: str, *params: str, timeout: float = 60):
    proc = start(node, *params)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.mark.parametrize("params, message", [
    (["portrait:=/nonexistent/face.jpg"], "portrait file not found: /nonexistent/face.jpg"),
    ([], "parameter 'portrait' is empty"),
])
def test_face_renderer_reports_a_bad_portrait(params, message):
    code, out = run_to_exit("face_renderer", *params)
    assert code == 78  # EXIT_STARTUP_ERROR
    errors = [line for line in out.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "[face_renderer]" in errors[0] and message in errors[0]
    assert "Traceback" not in out


@pytest.mark.parametrize("params, message", [
    (["source:=radio"], "parameter source must be one of topic, file, mic"),
    (["source:=file"], "parameter 'file' is empty"),
    (["source:=file", "file:=/nonexistent.wav"], "audio file not found: /nonexistent.wav"),
])
def test_audio_capture_reports_bad_sources(params, message):
    code, out = run_to_exit("audio_capture", *params)
    assert code == 78 and message in out and "Traceback" not in out


@pytest.mark.parametrize("params, message", [
    (["model:=/nonexistent/motion.onnx"], "motion model not found: /nonexistent/motion.onnx"),
    (["fps:=50"], "the motion model runs at 25 fps, not 50"),
    (["lip_seal_model:=/nonexistent/seal.onnx"], "lip-seal detector not found: /nonexistent/seal.onnx"),
    (["opening_model:=/nonexistent/opening.onnx"], "mouth-opening model not found: /nonexistent/opening.onnx"),
    (["acoustic_opening:=1.5"], "Parameter acoustic_opening out of range Min: 0.0, Max: 1.0, value: 1.5"),
    (["guidance_audio:=9.0"], "Parameter guidance_audio out of range Min: 0.0, Max: 5.0, value: 9.0"),
    (["acoustic_opening:=1"], "Trying to set parameter 'acoustic_opening' to '1' of type 'INTEGER', expecting type"),
])
def test_motion_generator_reports_a_bad_model(params, message):
    code, out = run_to_exit("motion_generator", *params)
    errors = [line for line in out.splitlines() if "[ERROR]" in line]
    assert code == 78 and len(errors) == 1 and message in errors[0] and "[motion_generator]" in errors[0], out
    assert "Traceback" not in out


def test_audio_capture_without_a_microphone_falls_back_to_the_topic():
    proc = start("audio_capture", "source:=mic", "device:=no-such-device-anywhere")
    time.sleep(4)
    out = stop(proc)
    assert proc.returncode == 0, out
    assert "falling back to source 'topic'" in out and "relaying /vasa/audio_in -> /vasa/audio" in out
    assert "Traceback" not in out


def test_ctrl_c_while_messages_pour_in_stops_a_node_cleanly():
    """The stop signal lands at random points of the spin loop, also half way through taking a message."""
    from vasa_nodes.msg import AudioChunk
    from vasa_nodes.nodes.common import STREAM_QOS

    rclpy.init()
    try:
        node = rclpy.create_node("flood_test")
        pub = node.create_publisher(AudioChunk, "/vasa/audio_in", STREAM_QOS)
        chunk = np.zeros(320, np.float32)
        offset = 0

        def flood(seconds, reader_leaving=False):
            nonlocal offset
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                try:
                    pub.publish(AudioChunk(sample_rate=16000, sample_offset=offset, samples=chunk))
                except rclpy_implementation.RCLError:
                    # A reliable write times out when the reader falls behind (a busy 2-core
                    # host) or is going away mid-flood: back off, as a live publisher would.
                    if reader_leaving:
                        return
                    time.sleep(0.02)
                    continue
                offset += 320

        def wait_for_subscribers(count):
            end = time.monotonic() + 20
            while pub.get_subscription_count() != count and time.monotonic() < end:
                time.sleep(0.05)
            return pub.get_subscription_count() == count

        for trial in range(10):
            proc = start("audio_capture")
            try:
                assert wait_for_subscribers(1), "audio_capture never subscribed"
                sent = offset
                flood(0.5 + 0.137 * trial)
                assert offset - sent >= 320 * 100, "the flood hardly got through"
                proc.send_signal(signal.SIGINT if trial % 2 == 0 else signal.SIGTERM)
                flood(0.3, reader_leaving=True)  # messages keep arriving while it stops
                out, _ = proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:  # never leave a node behind for the next test
                    proc.kill()
                    proc.communicate()
            assert proc.returncode == 0 and "Traceback" not in out, f"trial {trial}:\n{out[-2000:]}"
            assert wait_for_subscribers(0), "the stopped node's subscription is still announced"
        node.destroy_node()
    finally:
        rclpy.shutdown()


def test_avatar_control_publishes_latched_changes_and_rejects_bad_values():
    proc = start("avatar_control")
    rclpy.init()
    try:
        node = rclpy.create_node("control_test")
        received = []
        node.create_subscription(AvatarControl, "/vasa/control", received.append, CONTROL_QOS)
        client = AsyncParameterClient(node, "avatar_control")
        assert client.wait_for_services(timeout_sec=20)

        def spin_until(pred, timeout=10):
            end = time.monotonic() + timeout
            while not pred() and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            return pred()

        # The latched state reaches a late joiner.
        assert spin_until(lambda: received and received[-1].emotion == "neutral")
        future = client.set_parameters([Parameter("emotion", value="happy"),
                                        Parameter("emotion_intensity", value=0.8)])
        assert spin_until(future.done)
        assert all(r.successful for r in future.result().results)
        # ramped in over transition_s (0.5 s): reached, not jumped to
        assert spin_until(lambda: received[-1].emotion == "happy" and abs(received[-1].emotion_intensity - 0.8) < 1e-6)
        assert [m.emotion_intensity for m in received if m.emotion == "happy"][0] < 0.8

        future = client.set_parameters([Parameter("emotion", value="bored")])
        assert spin_until(future.done)
        result = future.result().results[0]
        assert not result.successful and "unknown emotion" in result.reason
        future = client.set_parameters([Parameter("head_scale", value=5.0)])
        assert spin_until(future.done)
        assert not future.result().results[0].successful  # outside the declared range 0.5..2
        node.destroy_node()
    finally:
        rclpy.shutdown()
        stop(proc)
    assert proc.returncode == 0


def test_vasa_avatar_rejects_a_missing_portrait(tmp_path):
    from pathlib import Path

    exe = Path(sys.prefix) / "bin" / "vasa-avatar"
    r = subprocess.run([str(exe), "--portrait", str(tmp_path / "none.png")], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == f"vasa-avatar: error: portrait file not found: {tmp_path / 'none.png'}"


def test_a_stream_without_end_of_stream_is_closed_and_the_face_keeps_idling():
    from vasa_nodes.msg import AudioChunk, FaceMotion
    from vasa_nodes.nodes.common import STREAM_QOS

    procs = [start("audio_capture"), start("audio_encoder"), start("motion_generator")]
    rclpy.init()
    try:
        node = rclpy.create_node("stall_test")
        motion = []
        node.create_subscription(FaceMotion, "/vasa/face_motion",
                                 lambda m: motion.append((time.monotonic(), m.voice_activity)), STREAM_QOS)
        pub = node.create_publisher(AudioChunk, "/vasa/audio_in", STREAM_QOS)
        end = time.monotonic() + 20
        while (pub.get_subscription_count() == 0 or not motion) and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert motion, "motion_generator publishes idle frames before any audio"
        t = np.arange(16000) / 16000
        speech = (0.4 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)
        for i in range(0, 16000, 320):  # 1 s of loud audio, never marked end_of_stream
            pub.publish(AudioChunk(sample_rate=16000, sample_offset=i, samples=speech[i:i + 320]))
            rclpy.spin_once(node, timeout_sec=0.02)
        stopped = time.monotonic()
        while time.monotonic() < stopped + 4.0:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        outputs = []
        for p in procs:
            outputs.append(stop(p))
    assert any(v > 0.5 for _, v in motion), "the speech reached the motion generator"
    late = [m for m in motion if m[0] > stopped + 2.0]
    assert len(late) >= 25, f"only {len(late)} frames in the last 2 s: the face froze"
    assert all(v < 0.5 for _, v in late)
    assert "without end_of_stream; closing the stream" in outputs[1]


@pytest.mark.parametrize("params, marked", [([], True), (["watermark:=false"], False)])
def test_face_renderer_marks_its_images_unless_told_not_to(portrait_path, params, marked):
    from sensor_msgs.msg import Image

    from vasa_nodes.core.motion import MotionFrame
    from vasa_nodes.core.watermark import detect_clip
    from vasa_nodes.nodes.common import IMAGE_QOS, STREAM_QOS, motion_to_msg
    from vasa_nodes.msg import FaceMotion

    # No resting face: the images are those of the ten motion frames (the renderer rests while
    # discovery takes its time, and those frames would arrive too).
    proc = start("face_renderer", f"portrait:={portrait_path}", "size:=256", "resting_face:=false", *params)
    rclpy.init()
    try:
        node = rclpy.create_node("watermark_test")
        images = []
        node.create_subscription(
            Image, "/vasa/image",
            lambda m: images.append(np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width, 3)), IMAGE_QOS)
        pub = node.create_publisher(FaceMotion, "/vasa/face_motion", STREAM_QOS)
        wait_for_subscriber(node, pub)
        for i in range(10):
            pub.publish(motion_to_msg(MotionFrame.neutral(i).with_blendshapes(jawOpen=0.05 * i), 25.0, i * 40_000_000))
            rclpy.spin_once(node, timeout_sec=0.04)
        end = time.monotonic() + 10
        while len(images) < 10 and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        out = stop(proc)
    assert len(images) == 10, out
    clip = detect_clip(images)
    assert clip.detection.found is marked and clip.frames_found == (10 if marked else 0)
    warned = [line for line in out.splitlines() if "watermark off" in line]
    assert len(warned) == (0 if marked else 1) and all("WARN" in line for line in warned)


def test_a_best_effort_viewer_with_default_settings_gets_every_512_image(portrait_path):
    """A 512² frame (0.8 MB) is larger than Fast DDS's default shared-memory segment; with it,
    a best-effort (sensor-data) reader, as image viewers use, got 0-1 frames in 200.
    face_renderer asks for a larger segment; this reader keeps the default settings."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from vasa_nodes.core.motion import MotionFrame
    from vasa_nodes.msg import FaceMotion
    from vasa_nodes.nodes.common import STREAM_QOS, motion_to_msg, serialized_stamp_ns

    proc = start("face_renderer", f"portrait:={portrait_path}", "size:=512", "resting_face:=false")
    rclpy.init()
    try:
        node = rclpy.create_node("viewer_test")
        stamps = []
        node.create_subscription(Image, "/vasa/image", lambda data: stamps.append(serialized_stamp_ns(data)),
                                 qos_profile_sensor_data, raw=True)
        pub = node.create_publisher(FaceMotion, "/vasa/face_motion", STREAM_QOS)
        wait_for_subscriber(node, pub)
        time.sleep(1.0)  # the renderer's image writer matches the viewer too
        due = time.monotonic()
        for i in range(50):  # two seconds at 25 fps
            pub.publish(motion_to_msg(MotionFrame.neutral(i).with_blendshapes(jawOpen=0.01 * i), 25.0,
                                      (i + 1) * 40_000_000))
            due += 0.04
            while time.monotonic() < due:
                rclpy.spin_once(node, timeout_sec=max(0.0, due - time.monotonic()))
        end = time.monotonic() + 5
        while len(stamps) < 50 and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        out = stop(proc)
    assert len(stamps) >= 45, f"{len(stamps)} of 50 frames reached a best-effort viewer\n{out}"
    assert "Fast DDS profile for images" in out


def test_avatar_control_takes_emotion_and_gaze_topics_smoothly():
    from geometry_msgs.msg import PointStamped
    from std_msgs.msg import String

    from vasa_nodes.nodes.common import STREAM_QOS

    proc = start("avatar_control")
    rclpy.init()
    try:
        node = rclpy.create_node("control_topics_test")
        received = []
        node.create_subscription(AvatarControl, "/vasa/control", received.append, CONTROL_QOS)
        emotion = node.create_publisher(String, "/vasa/emotion", STREAM_QOS)
        gaze = node.create_publisher(PointStamped, "/vasa/gaze_target", STREAM_QOS)
        client = AsyncParameterClient(node, "avatar_control")
        assert client.wait_for_services(timeout_sec=20)

        def spin_until(pred, timeout=10):
            end = time.monotonic() + timeout
            while not pred() and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.02)
            return pred()

        assert spin_until(lambda: received and emotion.get_subscription_count() and gaze.get_subscription_count())
        n = len(received)
        emotion.publish(String(data="happy:0.8"))
        assert spin_until(lambda: received[-1].emotion == "happy" and received[-1].emotion_intensity == pytest.approx(0.8))
        ramp = [m.emotion_intensity for m in received[n:] if m.emotion == "happy"]
        assert len(ramp) >= 5 and ramp[0] < 0.5 and all(b >= a for a, b in zip(ramp, ramp[1:]))  # no jump
        target = PointStamped()
        target.header.frame_id = "avatar_camera"
        target.point.x, target.point.y, target.point.z = 1.0, 0.3, 0.1
        gaze.publish(target)
        assert spin_until(lambda: received[-1].gaze_enabled
                          and received[-1].gaze_yaw == pytest.approx(np.arctan2(0.3, 1.0), abs=1e-6))
        emotion.publish(String(data="sad:3"))       # clamped, with a warning
        assert spin_until(lambda: received[-1].emotion == "sad" and received[-1].emotion_intensity == 1.0)
        emotion.publish(String(data="bored"))       # refused, with the known ones listed
        target.point.x = -1.0                       # behind the screen: refused
        gaze.publish(target)
        spin_until(lambda: False, timeout=1.0)
        assert received[-1].emotion == "sad"
        # a parameter set again takes the field back from the topic
        future = client.set_parameters([Parameter("emotion", value="neutral")])
        assert spin_until(future.done)
        assert spin_until(lambda: received[-1].emotion == "neutral")
        node.destroy_node()
    finally:
        rclpy.shutdown()
        out = stop(proc)
    assert proc.returncode == 0
    warns = [line for line in out.splitlines() if "[WARN]" in line]
    assert any("emotion_intensity 3 is outside [0, 1]; clamped to 1" in w for w in warns), out
    assert any("unknown emotion 'bored'; known: neutral, happy" in w for w in warns), out
    assert any("point.x must be > 0" in w for w in warns), out
