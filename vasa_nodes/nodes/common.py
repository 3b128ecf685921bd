"""What every node adapter shares: topic names, QoS, stamps, message <-> core conversions, main()."""

from __future__ import annotations

import os
import re
import signal
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from vasa_nodes.core.blendshapes import ARKIT_BLENDSHAPES, NUM_BLENDSHAPES
from vasa_nodes.core.features import FEATURE_TYPE, N_MELS, FeatureFrames
from vasa_nodes.core.motion import Controls, MotionFrame, motion_from_message
from vasa_nodes.msg import AudioFeatures, AvatarControl, FaceMotion

# Relative names: the node's namespace prefixes them (default namespace "/" -> /vasa/...).
TOPIC_AUDIO_IN = "vasa/audio_in"
TOPIC_AUDIO = "vasa/audio"
TOPIC_FEATURES = "vasa/audio_features"
TOPIC_CONTROL = "vasa/control"
TOPIC_MOTION = "vasa/face_motion"
TOPIC_IMAGE = "vasa/image"
TOPIC_IMAGE_COMPRESSED = "vasa/image/compressed"  # image_transport's name for the JPEG beside the raw image
TOPIC_AUDIO_OUT = "vasa/audio_out"      # the speech as played, in step with vasa/image
TOPIC_EMOTION = "vasa/emotion"          # std_msgs/String "happy", "sad:0.6", …
TOPIC_GAZE_TARGET = "vasa/gaze_target"  # geometry_msgs/PointStamped in the avatar camera frame

# Audio, features and motion are a continuous stream: a lost chunk is a glitch in the
# lips, so these are reliable with a deep queue. Video frames are published reliable but
# keep-last 10: a frame of 0.8 MB travels as ~13 fragments, and under best effort one lost
# fragment loses the frame (see LARGE_SAMPLE_PROFILES for why none should be lost); a
# subscriber that falls behind for a moment (a recorder on a busy machine) still gets every
# frame of the last 0.4 s, and one that stays behind gets recent frames, not a growing backlog.
# Best-effort (sensor-data) subscribers, e.g. image viewers, are compatible with it.
STREAM_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
# Controls are state: a late joiner must get the current one.
CONTROL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def serialized_stamp_ns(data: bytes) -> int:
    """header.stamp (ns) of a serialized message whose first field is a std_msgs/Header, read
    from its CDR bytes without deserializing the rest (a 0.8 MB image for its stamp alone).
    The 4-byte encapsulation header names the byte order (odd second byte: little-endian)."""
    if len(data) < 12:
        raise ValueError(f"a serialized message with a header is at least 12 bytes, got {len(data)}")
    sec, nanosec = struct.unpack_from("<iI" if data[1] & 1 else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


def to_time(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def to_ns(t: Time) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def describe(description: str, *, read_only: bool = False, float_range: tuple[float, float] | None = None,
             int_range: tuple[int, int] | None = None) -> ParameterDescriptor:
    """A ParameterDescriptor with a description and an optional range."""
    d = ParameterDescriptor(description=description, read_only=read_only)
    if float_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]), to_value=float(float_range[1]))]
    if int_range is not None:
        d.integer_range = [IntegerRange(from_value=int(int_range[0]), to_value=int(int_range[1]), step=1)]
    return d


# -- message conversions -------------------------------------------------------------

def features_to_msg(frames: FeatureFrames, fps: float, stamp_ns: int, end_of_stream: bool,
                    ahead: FeatureFrames | None = None) -> AudioFeatures:
    """`ahead`: the frame after `frames` ahead of time (StreamingFeatureExtractor.peek()), or None."""
    msg = AudioFeatures()
    msg.header.stamp = to_time(stamp_ns)
    msg.header.frame_id = "audio"
    msg.frame_rate = float(fps)
    msg.frame_offset = int(frames.frame_offset)
    msg.num_frames = len(frames)
    msg.feature_dim = N_MELS
    msg.feature_type = FEATURE_TYPE
    msg.features = frames.features.astype(np.float32).ravel()
    msg.loudness_db = frames.loudness_db.astype(np.float32)
    msg.voice_activity = frames.voice_activity.astype(np.float32)
    msg.end_of_stream = bool(end_of_stream)
    if ahead is not None and len(ahead) == 1:
        if ahead.frame_offset != frames.frame_offset + len(frames):
            raise ValueError(f"the frame ahead is frame {ahead.frame_offset}, not the next one "
                             f"({frames.frame_offset + len(frames)})")
        msg.ahead_features = ahead.features[0].astype(np.float32)
        msg.ahead_loudness_db = float(ahead.loudness_db[0])
        msg.ahead_voice_activity = float(ahead.voice_activity[0])
    return msg


def features_from_msg(msg: AudioFeatures) -> FeatureFrames:
    """Raises ValueError for a message whose layout is not ours or inconsistent."""
    if msg.feature_type != FEATURE_TYPE or msg.feature_dim != N_MELS:
        raise ValueError(f"unsupported features {msg.feature_type!r} x {msg.feature_dim}; expected "
                         f"{FEATURE_TYPE!r} x {N_MELS}")
    n = int(msg.num_frames)
    feats = np.asarray(msg.features, np.float32)
    if feats.size != n * N_MELS or len(msg.loudness_db) != n or len(msg.voice_activity) != n:
        raise ValueError(f"inconsistent AudioFeatures: num_frames={n}, {feats.size} feature values")
    return FeatureFrames(int(msg.frame_offset), feats.reshape(n, N_MELS),
                         np.asarray(msg.loudness_db, np.float32), np.asarray(msg.voice_activity, np.float32))


def ahead_from_msg(msg: AudioFeatures) -> FeatureFrames | None:
    """The message's frame ahead (see AudioFeatures.msg), or None; ValueError if malformed."""
    feats = np.asarray(msg.ahead_features, np.float32)
    if feats.size == 0:
        return None
    if feats.size != N_MELS:
        raise ValueError(f"inconsistent AudioFeatures: {feats.size} values in the frame ahead, expected {N_MELS}")
    return FeatureFrames(int(msg.frame_offset) + int(msg.num_frames), feats[None],
                         np.array([msg.ahead_loudness_db], np.float32),
                         np.array([msg.ahead_voice_activity], np.float32))


def motion_to_msg(frame: MotionFrame, fps: float, stamp_ns: int) -> FaceMotion:
    msg = FaceMotion()
    msg.header.stamp = to_time(stamp_ns)
    msg.header.frame_id = "head"
    msg.frame_index = int(frame.frame_index)
    msg.frame_rate = float(fps)
    msg.blendshape_names = list(ARKIT_BLENDSHAPES)
    msg.blendshapes = frame.blendshapes.astype(np.float32)
    msg.head_yaw, msg.head_pitch, msg.head_roll = (float(v) for v in frame.head_rotation)
    msg.head_translation = frame.head_translation.astype(np.float32)
    msg.head_scale = float(frame.head_scale)
    msg.gaze_yaw, msg.gaze_pitch = (float(v) for v in frame.gaze)
    msg.voice_activity = float(frame.voice_activity)
    return msg


def motion_from_msg(msg: FaceMotion) -> MotionFrame:
    """Maps coefficients by name, so a publisher may send any subset in any order."""
    return motion_from_message(msg)


def controls_to_msg(c: Controls, stamp_ns: int) -> AvatarControl:
    msg = AvatarControl()
    msg.header.stamp = to_time(stamp_ns)
    msg.gaze_enabled = c.gaze_enabled
    msg.gaze_yaw, msg.gaze_pitch = float(c.gaze_yaw), float(c.gaze_pitch)
    msg.distance_enabled = c.distance_enabled
    msg.head_scale = float(c.head_scale)
    msg.emotion = c.emotion
    msg.emotion_intensity = float(c.emotion_intensity)
    msg.motion_intensity = float(c.motion_intensity)
    return msg


def controls_from_msg(msg: AvatarControl) -> Controls:
    """Raises ValueError for an unknown emotion; clamps numbers to their ranges."""
    return Controls(
        gaze_enabled=msg.gaze_enabled, gaze_yaw=msg.gaze_yaw, gaze_pitch=msg.gaze_pitch,
        distance_enabled=msg.distance_enabled, head_scale=msg.head_scale if msg.head_scale > 0 else 1.0,
        emotion=msg.emotion, emotion_intensity=msg.emotion_intensity, motion_intensity=msg.motion_intensity,
    ).validated()


# -- process entry -------------------------------------------------------------------

SPIN_PERIOD_S = 0.1  # longest a stop request waits for the spin loop

# Exit codes of a node process, read by vasa-avatar's supervisor: 0 is a requested stop;
# EXIT_STARTUP_ERROR (sysexits' EX_CONFIG) a start-up error that no restart can fix
# (unreadable portrait, no face, bad parameter): the graph stops; anything else (an
# uncaught exception: 1; killed by a signal) is a crash, and the node is restarted.
EXIT_STARTUP_ERROR = 78


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, unreadable portrait, …); logged as one ERROR line."""

    def __init__(self, node_name: str, message: str):
        super().__init__(message)
        self.node_name = node_name


def _parameter_error(exc: ParameterException) -> str:
    """rclpy's 'Invalid parameter value (9.0) for parameter. Reason: Parameter x out of range …: x'
    as the reason alone."""
    text = str(exc).splitlines()[0]
    reason = re.search(r"Reason: (.*): [^:]+$", text)
    return reason.group(1) if reason else text


# Between processes of one host Fast DDS passes a sample through the writer's shared-memory
# segment, 512 kB by default, in fragments of 64 kB. A 512² frame (0.8 MB) does not fit: its
# buffers are reused before the readers have taken them, so a best-effort reader loses
# nearly every frame and a reliable one waits for repairs, and falls behind on a loaded
# machine (benchmarks/bench_transport.py: 0 of 200 frames best effort, 13 ms a frame
# reliable; with a 16 MB segment 200/200 and 2-3 ms). A node that publishes images loads
# this profile: Fast DDS's default transports (shared memory, UDPv4 for other hosts) with a
# 16 MB segment (room for 20 frames of 512², 5 of 1024²). A profile, not
# FASTDDS_BUILTIN_TRANSPORTS, because it also holds with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST,
# where the RMW sets up the transports itself. Only the writer's segment matters, so readers
# with the default settings (rviz2, rqt, recorders) get every frame too.
LARGE_SAMPLE_PROFILES = Path(__file__).with_name("fastdds_large_samples.xml")
_TRANSPORT_SETTINGS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
                       "FASTDDS_BUILTIN_TRANSPORTS")


def use_large_sample_profile(environ=os.environ, cwd: Path | None = None) -> Path | None:
    """Point FASTDDS_DEFAULT_PROFILES_FILE at LARGE_SAMPLE_PROFILES for this process (before
    rclpy.init), unless the RMW is not Fast DDS or the user has configured its transports (a
    profiles file, named or DEFAULT_FASTDDS_PROFILES.xml in the working directory, or
    FASTDDS_BUILTIN_TRANSPORTS). Returns the profile set, or None."""
    if not environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        return None
    if any(environ.get(name) for name in _TRANSPORT_SETTINGS):
        return None
    if (Path(cwd or Path.cwd()) / "DEFAULT_FASTDDS_PROFILES.xml").exists():
        return None
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LARGE_SAMPLE_PROFILES)
    return LARGE_SAMPLE_PROFILES


def run_node(factory: Callable[[], Node], args: list[str] | None = None, large_samples: bool = False) -> int:
    """init, build the node, spin until Ctrl-C, SIGTERM or shutdown, clean up. Returns the exit code:
    0, or EXIT_STARTUP_ERROR when the node could not be built. `large_samples`: the node
    publishes images (see use_large_sample_profile).

    Ctrl-C and SIGTERM only ask the spin loop to stop (within SPIN_PERIOD_S): an exception
    raised by the signal inside rclpy, half way through taking a message, would surface
    as a RuntimeError instead of a clean stop.
    """
    stop = threading.Event()
    profile = use_large_sample_profile() if large_samples else None
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = executor = None
    code = 0
    try:
        node = factory()
        if profile:
            node.get_logger().info(f"Fast DDS profile for images: {profile} (a 16 MB shared-memory segment; "
                                   "FASTDDS_DEFAULT_PROFILES_FILE overrides it)")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except StartupError as exc:
        rclpy.logging.get_logger(exc.node_name).error(str(exc))
        code = EXIT_STARTUP_ERROR
    except ParameterException as exc:  # a value outside its declared range, or of the wrong type
        # The node was not built, so its name comes from its module's NAME (also when run as __main__).
        name = getattr(sys.modules.get(factory.__module__), "NAME", factory.__name__)
        rclpy.logging.get_logger(name).error(_parameter_error(exc))
        code = EXIT_STARTUP_ERROR
    except ExternalShutdownException:
        pass
    finally:
        # A second Ctrl-C must not interrupt the clean-up half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
