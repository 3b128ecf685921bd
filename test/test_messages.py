"""The four message types travel over real DDS between processes, and convert losslessly."""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from vasa_nodes.core.blendshapes import ARKIT_BLENDSHAPES, INDEX
from vasa_nodes.core.motion import Controls, MotionFrame
from vasa_nodes.msg import AudioChunk, AudioFeatures, AvatarControl, FaceMotion

PUBLISHER = textwrap.dedent("""
    import time, numpy as np, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from vasa_nodes.core.features import compute_features
    from vasa_nodes.core.motion import Controls, MotionFrame
    from vasa_nodes.msg import AudioChunk, AudioFeatures, AvatarControl, FaceMotion
    from vasa_nodes.nodes.common import features_to_msg, motion_to_msg, controls_to_msg
    rclpy.init()
    node = rclpy.create_node("roundtrip_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    chunk = AudioChunk(sample_rate=16000, sample_offset=320, samples=np.linspace(-1, 1, 320, dtype=np.float32))
    chunk.header.stamp.sec = 7
    feats = features_to_msg(compute_features(np.sin(np.arange(3200) / 5).astype(np.float32) * 0.3), 25.0, 123, True)
    motion = motion_to_msg(MotionFrame.neutral(42).with_blendshapes(jawOpen=0.75, eyeBlinkRight=0.5), 25.0, 456)
    motion.head_yaw, motion.gaze_pitch, motion.head_translation = 0.1, -0.2, [0.01, 0.02, 0.03]
    control = controls_to_msg(Controls(emotion="happy", emotion_intensity=0.7, gaze_enabled=True, gaze_yaw=0.25), 789)
    pubs = [(node.create_publisher(type(m), "roundtrip/" + type(m).__name__, qos), m)
            for m in (chunk, feats, motion, control)]
    for pub, msg in pubs:
        pub.publish(msg)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
""")


def test_each_message_round_trips_over_dds():
    received = {}
    rclpy.init()
    try:
        node = rclpy.create_node("roundtrip_subscriber")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for cls in (AudioChunk, AudioFeatures, FaceMotion, AvatarControl):
            node.create_subscription(cls, "roundtrip/" + cls.__name__,
                                     lambda m, name=cls.__name__: received.setdefault(name, m), qos)
        publisher = subprocess.Popen([sys.executable, "-P", "-c", PUBLISHER])
        try:
            deadline = time.monotonic() + 20
            while len(received) < 4 and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
        finally:
            publisher.terminate()
            publisher.wait(10)
        node.destroy_node()
    finally:
        rclpy.shutdown()

    assert set(received) == {"AudioChunk", "AudioFeatures", "FaceMotion", "AvatarControl"}
    chunk = received["AudioChunk"]
    assert chunk.header.stamp.sec == 7 and chunk.sample_rate == 16000 and chunk.sample_offset == 320
    assert np.allclose(chunk.samples, np.linspace(-1, 1, 320))

    feats = received["AudioFeatures"]
    assert feats.num_frames == 5 and feats.feature_dim == 80 and feats.feature_type == "logmel80"
    assert len(feats.features) == 5 * 80 and feats.end_of_stream and feats.header.stamp.nanosec == 123

    motion = received["FaceMotion"]
    names = list(motion.blendshape_names)
    assert names == list(ARKIT_BLENDSHAPES)
    assert motion.blendshapes[names.index("jawOpen")] == pytest.approx(0.75)
    assert motion.blendshapes[names.index("eyeBlinkRight")] == pytest.approx(0.5)
    assert motion.frame_index == 42 and motion.head_yaw == pytest.approx(0.1)
    assert np.allclose(motion.head_translation, [0.01, 0.02, 0.03])

    control = received["AvatarControl"]
    assert control.emotion == AvatarControl.EMOTION_HAPPY and control.emotion_intensity == pytest.approx(0.7)
    assert control.gaze_enabled and control.gaze_yaw == pytest.approx(0.25)


def test_conversions_are_lossless_and_map_names():
    from vasa_nodes.nodes.common import controls_from_msg, controls_to_msg, motion_from_msg, motion_to_msg

    frame = MotionFrame.neutral(3).with_blendshapes(mouthSmileLeft=0.4, browInnerUp=0.9)
    frame.head_rotation[:] = [0.1, -0.05, 0.02]
    back = motion_from_msg(motion_to_msg(frame, 25.0, 0))
    assert np.allclose(back.blendshapes, frame.blendshapes) and np.allclose(back.head_rotation, frame.head_rotation)

    # A foreign publisher may send a subset of names in its own order; unknown names are ignored.
    msg = FaceMotion(blendshape_names=["jawOpen", "notAShape", "eyeBlinkLeft"], blendshapes=[0.5, 1.0, 0.25],
                     head_scale=1.0)
    partial = motion_from_msg(msg)
    assert partial.blendshapes[INDEX["jawOpen"]] == pytest.approx(0.5)
    assert partial.blendshapes[INDEX["eyeBlinkLeft"]] == pytest.approx(0.25)
    assert partial.blendshapes.sum() == pytest.approx(0.75)

    with pytest.raises(ValueError, match="NaN"):
        motion_from_msg(FaceMotion(blendshape_names=["jawOpen"], blendshapes=[float("nan")]))
    c = Controls(emotion="sad", emotion_intensity=0.5, distance_enabled=True, head_scale=1.3)
    assert controls_from_msg(controls_to_msg(c, 0)) == c.validated()


def test_features_and_the_frame_ahead_convert_losslessly_and_bad_ones_are_refused():
    from vasa_nodes.core.features import FeatureFrames, StreamingFeatureExtractor
    from vasa_nodes.nodes.common import ahead_from_msg, features_from_msg, features_to_msg

    x = (0.3 * np.sin(np.arange(3200) / 5)).astype(np.float32)
    extractor = StreamingFeatureExtractor()
    frames = extractor.push(x[:1280 + 192])      # frames 0 and 1 complete
    extractor.push(x[1280 + 192:1920])           # frame 2's own samples in: ahead of time
    ahead = extractor.peek()
    assert ahead.frame_offset == 2
    msg = features_to_msg(frames, 25.0, 0, False, ahead)
    back, back_ahead = features_from_msg(msg), ahead_from_msg(msg)
    assert np.array_equal(back.features, frames.features) and back.frame_offset == 0
    assert back_ahead.frame_offset == 2 and np.array_equal(back_ahead.features, ahead.features)
    assert back_ahead.loudness_db[0] == pytest.approx(ahead.loudness_db[0])
    # Without one, the fields stay empty and a consumer gets None.
    assert ahead_from_msg(features_to_msg(frames, 25.0, 0, False)) is None
    # A frame ahead that is not the next one, or of the wrong size, is refused.
    with pytest.raises(ValueError, match="not the next one"):
        features_to_msg(frames, 25.0, 0, False, FeatureFrames(5, ahead.features, ahead.loudness_db,
                                                              ahead.voice_activity))
    msg.ahead_features = np.zeros(7, np.float32)
    with pytest.raises(ValueError, match="frame ahead"):
        ahead_from_msg(msg)


def test_the_stamp_is_read_from_serialized_bytes_in_either_byte_order():
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from vasa_nodes.nodes.common import serialized_stamp_ns

    msg = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(18))
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_765_000_000, 123_456_789
    data = serialize_message(msg)
    assert serialized_stamp_ns(data) == 1_765_000_000_123_456_789
    big_endian = b"\x00\x00\x00\x00" + (1_765_000_000).to_bytes(4, "big") + (123_456_789).to_bytes(4, "big")
    assert serialized_stamp_ns(big_endian) == 1_765_000_000_123_456_789
    with pytest.raises(ValueError, match="at least 12 bytes"):
        serialized_stamp_ns(data[:8])


def test_image_publishers_load_the_large_sample_profile_unless_the_transport_is_configured(tmp_path):
    import xml.etree.ElementTree as ET

    from vasa_nodes.nodes.common import LARGE_SAMPLE_PROFILES, use_large_sample_profile

    ns = {"f": "http://www.eprosima.com"}
    shm = ET.parse(LARGE_SAMPLE_PROFILES).getroot().find(".//f:transport_descriptor[f:type='SHM']", ns)
    assert int(shm.find("f:segment_size", ns).text) >= 16 * 786432  # 16 frames of 512²
    env = {}
    assert use_large_sample_profile(env, cwd=tmp_path) == LARGE_SAMPLE_PROFILES
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(LARGE_SAMPLE_PROFILES)}
    for name, value in [("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4"), ("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my.xml"),
                        ("FASTRTPS_DEFAULT_PROFILES_FILE", "/etc/my.xml"), ("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")]:
        env = {name: value}
        assert use_large_sample_profile(env, cwd=tmp_path) is None and env == {name: value}
    env = {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    assert use_large_sample_profile(env, cwd=tmp_path) == LARGE_SAMPLE_PROFILES
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    env = {}
    assert use_large_sample_profile(env, cwd=tmp_path) is None and env == {}
