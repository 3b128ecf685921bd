"""Sessions as rosbag2 bags: the messages, serialised by rclpy (CDR), go into an MCAP rosbag2 bag
with their .msg definitions and come back intact, read by independent rosbag2 tooling (rosbags)."""

import sys
from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from vasa_nodes.core.features import compute_features
from vasa_nodes.core.motion import Controls, MotionFrame
from vasa_nodes.msg import AudioChunk, AudioFeatures, AvatarControl, FaceMotion
from vasa_nodes.nodes.common import controls_to_msg, features_to_msg, motion_to_msg, to_time

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
