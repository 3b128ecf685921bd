"""Viewing the face: the JPEG stream beside the raw image, the resting face while motion is
missing, and the live view in Foxglove, over real DDS with a real WebSocket client."""

from __future__ import annotations

import base64
import json
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import CompressedImage, Image

from vasa_nodes.core.jpeg import decode_jpeg
from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.watermark import detect
from vasa_nodes.msg import FaceMotion
from vasa_nodes.nodes.common import IMAGE_QOS, STREAM_QOS, motion_to_msg

FPS = 25


class NodeProcess:
    """A node in its own process, its log collected line by line."""

    def __init__(self, node: str, *params: str):
        args = [sys.executable, "-P", "-m", f"vasa_nodes.nodes.{node}", "--ros-args"]
        for p in params:
            args += ["-p", p]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                        daemon=True)
        self._reader.start()

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return "".join(self.lines)


def talking(k: int) -> MotionFrame:
    """Frame k of a face that opens and closes its jaw and turns a little."""
    f = MotionFrame.neutral(k).with_blendshapes(jawOpen=0.3 + 0.3 * np.sin(k / 3.0))
    f.head_rotation[:] = [0.08 * np.sin(k / 7.0), 0.0, 0.0]
    return f


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10.0 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def renderer(portrait_path):
    node = NodeProcess("face_renderer", f"portrait:={portrait_path}", "size:=512")
    node.wait_for_line(r"rendering .* at 512x512")
    yield node
    out = node.stop()
    assert node.proc.returncode == 0 and "Traceback" not in out, out


@pytest.fixture()
def ros():
    rclpy.init()
    node = rclpy.create_node("view_test")
    yield node
    node.destroy_node()
    rclpy.shutdown()


def spin_until(node, pred, timeout=20.0, every=None):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
        if every:
            every()
    return pred()


class MotionSender:
    """Publishes `talking` frames at 25 fps on the stream clock, as motion_generator does."""

    def __init__(self, node):
        self.pub = node.create_publisher(FaceMotion, "/vasa/face_motion", STREAM_QOS)
        self.k = 0
        self.t0 = time.monotonic()
        self.t0_ns = node.get_clock().now().nanoseconds
        self.sent: dict[int, MotionFrame] = {}

    def __call__(self):
        due = int((time.monotonic() - self.t0) * FPS)
        while self.k <= due:
            stamp = self.t0_ns + self.k * 1_000_000_000 // FPS
            self.sent[stamp] = talking(self.k)
            self.pub.publish(motion_to_msg(self.sent[stamp], FPS, stamp))
            self.k += 1


def test_resting_face_eases_out_of_the_stream_and_back():
    from vasa_nodes.core.blendshapes import INDEX
    from vasa_nodes.core.resting_face import RestingFace

    rest = RestingFace(fps=FPS, blend_s=0.4)
    streamed = [rest.received(talking(k)) for k in range(5)]
    assert all(np.array_equal(a.to_vector(), talking(k).to_vector()) for k, a in enumerate(streamed))
    jaw = INDEX["jawOpen"]
    last = talking(4).blendshapes[jaw]
    resting = [rest.resting() for _ in range(30)]
    assert rest.resting_now
    jaws = np.array([f.blendshapes[jaw] for f in resting])
    # The jaw closes over the 10 blend frames, in steps far smaller than the whole change, then rests shut.
    assert jaws[0] < last and np.all(np.diff(jaws[:10]) <= 1e-6) and jaws[10:].max() < 0.02
    assert np.abs(np.diff(np.concatenate([[last], jaws]))).max() < 0.35 * last
    assert [f.frame_index for f in resting] == list(range(5, 35))
    # The resting face lives: it blinks and the head sways.
    blink = np.array([f.blendshapes[INDEX["eyeBlinkLeft"]] for f in resting + [rest.resting() for _ in range(100)]])
    assert blink.max() > 0.8
    assert np.ptp([f.head_rotation[0] for f in resting]) > 1e-3
    # Back: eased in from the resting face, then the stream as it is.
    back = [rest.received(talking(k)) for k in range(135, 150)]
    assert not rest.resting_now
    jaws = np.array([f.blendshapes[jaw] for f in back])
    wanted = np.array([talking(k).blendshapes[jaw] for k in range(135, 150)])
    assert np.all(np.abs(jaws[:10] - wanted[:10]) <= np.abs(wanted[:10]) + 1e-6)
    assert np.abs(jaws[0] - wanted[0]) > 0.5 * abs(wanted[0])  # eased, not a jump
    assert all(np.array_equal(b.to_vector(), talking(k).to_vector()) for k, b in zip(range(145, 150), back[10:]))


def test_compressed_image_is_the_raw_image_as_jpeg_with_its_quality(renderer, ros):
    raw, jpeg = {}, {}
    ros.create_subscription(Image, "/vasa/image", lambda m: raw.setdefault(stamp_ns(m), m), IMAGE_QOS)
    ros.create_subscription(CompressedImage, "/vasa/image/compressed", lambda m: jpeg.setdefault(stamp_ns(m), m),
                            IMAGE_QOS)
    sender = MotionSender(ros)

    def pairs():
        return [s for s in sender.sent if s in raw and s in jpeg]

    assert spin_until(ros, lambda: len(pairs()) >= 20, every=sender), (len(raw), len(jpeg))
    sizes_90, psnr_90 = [], []
    for s in pairs()[:20]:
        r, c = raw[s], jpeg[s]
        assert c.format == "rgb8; jpeg compressed bgr8"
        assert c.header.frame_id == r.header.frame_id == "avatar_camera"
        picture = np.frombuffer(bytes(r.data), np.uint8).reshape(r.height, r.width, 3)
        decoded = decode_jpeg(bytes(c.data))
        assert decoded.shape == picture.shape == (512, 512, 3)
        psnr_90.append(psnr(decoded, picture))
        sizes_90.append(len(c.data))
        assert detect(decoded).found  # the mark of the raw frame survives in its JPEG
    assert min(psnr_90) > 38.0, psnr_90

    # The quality parameter changes at run time and is honoured; outside 1..100 it is refused.
    client = AsyncParameterClient(ros, "face_renderer")
    assert client.wait_for_services(timeout_sec=20)
    future = client.set_parameters([Parameter("jpeg_quality", value=150)])
    assert spin_until(ros, future.done, every=sender)
    assert not future.result().results[0].successful
    future = client.set_parameters([Parameter("jpeg_quality", value=20)])
    assert spin_until(ros, future.done, every=sender)
    assert future.result().results[0].successful
    changed_at = sender.k
    later = lambda: [s for s in pairs() if (s - sender.t0_ns) * FPS // 1_000_000_000 > changed_at + 5]  # noqa: E731
    assert spin_until(ros, lambda: len(later()) >= 10, every=sender)
    sizes_20, psnr_20 = [], []
    for s in later()[:10]:
        r = raw[s]
        picture = np.frombuffer(bytes(r.data), np.uint8).reshape(r.height, r.width, 3)
        decoded = decode_jpeg(bytes(jpeg[s].data))
        sizes_20.append(len(jpeg[s].data))
        psnr_20.append(psnr(decoded, picture))
    assert np.median(sizes_20) < 0.5 * np.median(sizes_90), (sizes_20, sizes_90)
    assert np.median(psnr_20) < np.median(psnr_90) - 3.0 and min(psnr_20) > 28.0, (psnr_20, psnr_90)
    future = client.set_parameters([Parameter("jpeg_quality", value=90)])
    assert spin_until(ros, future.done)


def test_a_resting_face_replaces_missing_motion_and_hands_back_smoothly(renderer, ros):
    images = []
    ros.create_subscription(
        Image, "/vasa/image",
        lambda m: images.append((time.monotonic(), stamp_ns(m),
                                 np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width, 3))), IMAGE_QOS)
    sender = MotionSender(ros)
    assert spin_until(ros, lambda: sum(s in sender.sent for _, s, _ in images) >= 25, every=sender)
    stopped_at = time.monotonic()
    last_sent = max(sender.sent)
    spin_until(ros, lambda: False, timeout=3.0)  # motion stops for 3 s
    resumed_at = time.monotonic()
    sender.t0 = time.monotonic() - sender.k / FPS  # the stream goes on where it left off
    spin_until(ros, lambda: False, timeout=2.0, every=sender)

    gap = [(t, s, im) for t, s, im in images if stopped_at + 0.7 < t < resumed_at]
    # Images keep coming at the frame rate, not a frozen picture: stamped after the stream's
    # last frame, in order, 40 ms apart, and the face keeps moving (head sway, blinks, gaze).
    assert len(gap) >= 0.8 * 2.3 * FPS, len(gap)
    stamps = np.array([s for _, s, _ in gap])
    assert stamps[0] > last_sent and np.all(np.diff(stamps) > 0)
    assert np.median(np.diff(stamps)) == pytest.approx(1e9 / FPS, rel=0.05)
    assert np.abs(gap[0][2].astype(int) - gap[-1][2].astype(int)).max() > 40
    assert all(detect(im).found for _, _, im in gap[::10])

    # The hand-over and the hand-back ease: no frame jumps more than the easing's whole change.
    around = [im.astype(np.int16) for t, _, im in images if stopped_at - 0.5 < t < resumed_at + 1.5]
    steps = [np.abs(b - a).mean() for a, b in zip(around, around[1:])]
    assert max(steps) < 2.5, steps
    # After the hand-back the stream's own frames are shown again, with their stamps.
    back = [s for t, s, _ in images if t > resumed_at + 1.0]
    assert back and all(s in sender.sent for s in back)


def read_protobuf_class(channel: dict):
    """The message class of a protobuf channel, built from the FileDescriptorSet it advertises."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"]))
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(channel["schemaName"]))


def test_foxglove_client_receives_the_live_face(renderer, ros):
    from websockets.sync.client import connect

    bridge = NodeProcess("foxglove_bridge", "port:=0", "address:=127.0.0.1")
    try:
        port = int(bridge.wait_for_line(r"Foxglove WebSocket server on ws://127\.0\.0\.1:(\d+)").group(1))
        sender = MotionSender(ros)
        stop = threading.Event()

        def publish():
            while not stop.is_set():
                sender()
                rclpy.spin_once(ros, timeout_sec=0.01)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        try:
            # The protocol's current name, and its name before foxglove-sdk (as the Foxglove app offers them).
            with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"],
                         open_timeout=20, max_size=None, proxy=None) as ws:
                assert ws.subprotocol == "foxglove.sdk.v1"
                channels = {}
                end = time.monotonic() + 20
                while len(channels) < 3 and time.monotonic() < end:
                    msg = json.loads(ws.recv(timeout=20))
                    if msg["op"] == "advertise":
                        channels.update({c["topic"]: c for c in msg["channels"]})
                image, motion = channels["/vasa/image/compressed"], channels["/vasa/face_motion"]
                assert image["schemaName"] == "foxglove.CompressedImage" and image["encoding"] == "protobuf"
                assert motion["encoding"] == "json" and "/vasa/control" in channels
                ws.send(json.dumps({"op": "subscribe", "subscriptions": [
                    {"id": 1, "channelId": image["id"]}, {"id": 2, "channelId": motion["id"]}]}))
                pictures, motions = [], []
                image_class = read_protobuf_class(image)
                end = time.monotonic() + 40
                while (len(pictures) < 10 or not motions) and time.monotonic() < end:
                    data = ws.recv(timeout=20)
                    if isinstance(data, str):
                        continue
                    op, sub, log_time = struct.unpack_from("<BIQ", data)
                    assert op == 1  # message data
                    if sub == 1:
                        picture = image_class.FromString(data[13:])
                        assert picture.format == "jpeg" and picture.frame_id == "avatar_camera"
                        assert log_time == picture.timestamp.seconds * 1_000_000_000 + picture.timestamp.nanos
                        pictures.append(decode_jpeg(picture.data))
                    elif sub == 2:
                        motions.append(json.loads(data[13:]))
        finally:
            stop.set()
            publisher.join(timeout=5)
        assert len(pictures) >= 10 and pictures[0].shape == (512, 512, 3)
        assert detect(pictures[-1]).found
        assert np.abs(pictures[0].astype(int) - pictures[-1].astype(int)).max() > 40  # a live face
        assert set(motions[0]["blendshapes"]) >= {"jawOpen", "eyeBlinkLeft"} and "yaw" in motions[0]["head"]
    finally:
        out = bridge.stop()
    assert bridge.proc.returncode == 0 and "Traceback" not in out, out


def test_preview_without_a_display_warns_once_and_leaves_the_graph_alone():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-P", "-m", "vasa_nodes.nodes.preview", "--ros-args"], env=env,
                       capture_output=True, text=True, timeout=60)
    lines = (r.stdout + r.stderr).strip().splitlines()
    # Exit code 0: vasa-avatar --preview does not restart it, and the other nodes run on.
    assert r.returncode == 0 and len(lines) == 1, lines
    assert "[WARN]" in lines[0] and "[preview]" in lines[0]
    assert "no display (DISPLAY and WAYLAND_DISPLAY are unset): no preview window" in lines[0]


def test_vasa_avatar_adds_the_viewers_on_request(tmp_path):
    from vasa_nodes.cli.avatar import build_parser, node_commands

    config = tmp_path / "avatar.yaml"
    plain = node_commands(build_parser().parse_args(["--portrait", "face.png"]), config)
    assert "foxglove_bridge" not in plain and "preview" not in plain
    default = node_commands(build_parser().parse_args(["--portrait", "face.png", "--foxglove", "--preview"]), config)
    assert default["foxglove_bridge"][-2:] == ["-p", "port:=8765"] and "preview" in default
    chosen = node_commands(build_parser().parse_args(["--portrait", "face.png", "--foxglove", "9001"]), config)
    assert chosen["foxglove_bridge"][-2:] == ["-p", "port:=9001"]
    r = subprocess.run([str(Path(sys.prefix) / "bin" / "vasa-avatar"), "--portrait", "face.png", "--foxglove",
                        "70000"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "argument --foxglove: not a port number (0-65535): '70000'" in r.stderr
