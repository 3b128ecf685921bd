"""Sessions as rosbag2 bags (ROS-free, over rosbags): write, read back, and the parts of a
recorded session that the product replays or renders.

- `BagWriter` writes a rosbag2 bag, MCAP (default) or sqlite3, with each type's message
  definition and RIHS01 hash embedded (so `ros2 bag info/play` on a ROS 2 install reads it), the
  offered QoS of each topic, and the provenance statement (`bag_custom_data()`) in
  metadata.yaml's `custom_data`.
- `BagReader` reads a bag back: a bag directory, or its `.mcap` / `.db3` file alone. A bag that
  broke off (a recorder killed before it closed the file: no metadata.yaml, no MCAP summary, a
  record cut in half) is read up to the damage; `warning` then says in one line what was lost.
- `typestore()` knows our messages (share/vasa_nodes/msg/*.msg) and the standard ones
  (sensor_msgs, std_msgs, geometry_msgs, ... of ROS 2 Kilted), plus any other type whose
  .msg file an installed package provides.
- `session_motion()` / `session_audio()`: the recorded FaceMotion and audio of a session on one
  time line, for `vasa-generate --bag`.

Messages are kept as serialised CDR bytes, the way rclpy hands them over (raw subscriptions) and
takes them back (publishing bytes): recording and replaying never converts them.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STORAGES = ("mcap", "sqlite3")
DEFAULT_STORAGE = "mcap"
TOPIC_PREFIX = "vasa"
"""Every topic of the graph lives under <namespace>/vasa/ (a recorder takes all of them)."""
MOTION_TOPIC = "vasa/face_motion"
AUDIO_TOPIC = "vasa/audio"
MOTION_TYPE = "vasa_nodes/msg/FaceMotion"
AUDIO_TYPE = "vasa_nodes/msg/AudioChunk"


class BagError(RuntimeError):
    """A bag that cannot be written or read (message: one line naming the bag)."""


def bag_custom_data(models: list[str | Path] | None = None, watermark=None) -> dict[str, str]:
    """The rosbag2 custom_data of every bag the product records: the provenance statement
    (generator and version, synthetic content, IPTC digital source type trainedAlgorithmicMedia,
    watermark) as core/provenance.py words it."""
    from .provenance import bag_metadata, statement  # noqa: PLC0415

    return bag_metadata(statement(models, watermark))


def relative_topic(topic: str) -> str | None:
    """'/robot1/vasa/image' -> 'vasa/image': the graph's name of a recorded topic without its
    namespace; None for a topic that is not the graph's."""
    parts = topic.strip("/").split("/")
    if TOPIC_PREFIX not in parts:
        return None
    return "/".join(parts[parts.index(TOPIC_PREFIX):])


# -- types ------------------------------------------------------------------------------

def _share_dirs() -> list[Path]:
    dirs = [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(sys.prefix) / "share")
    return dirs


def _our_msg_dir() -> Path:
    for share in _share_dirs():
        if (share / "vasa_nodes" / "msg").is_dir():
            return share / "vasa_nodes" / "msg"
    return Path(__file__).resolve().parents[2] / "msg"  # a source checkout


_STORE = None


def typestore():
    """The rosbags typestore of ROS 2 Kilted with our messages registered (built once)."""
    global _STORE
    if _STORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore  # noqa: PLC0415

        store = get_typestore(Stores.ROS2_KILTED)
        types = {}
        for path in sorted(_our_msg_dir().glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"vasa_nodes/msg/{path.stem}"))
        if not types:
            raise BagError(f"no message definitions of vasa_nodes found in {_our_msg_dir()}")
        store.register(types)
        _STORE = store
    return _STORE


def ensure_type(msgtype: str) -> None:
    """Make `msgtype` ('pkg/msg/Name') known to the typestore, from the .msg file its installed
    package ships; BagError when there is none."""
    store = typestore()
    if msgtype in store.fielddefs:
        return
    from rosbags.typesys import get_types_from_msg  # noqa: PLC0415

    pkg, _, name = msgtype.partition("/msg/")
    for share in _share_dirs():
        path = share / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            store.register(get_types_from_msg(path.read_text(), msgtype))
            return
    raise BagError(f"no message definition found for {msgtype} (looked for share/{pkg}/msg/{name}.msg)")


def deserialize(raw: bytes, msgtype: str):
    """A message from its CDR bytes (a rosbags dataclass with the message's field names)."""
    ensure_type(msgtype)
    return typestore().deserialize_cdr(raw, msgtype)


# -- writing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicQos:
    """The offered QoS of a recorded topic (what `ros2 bag play` offers again)."""

    reliable: bool = True
    transient_local: bool = False
    depth: int = 100

    def to_rosbags(self):
        from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,  # noqa: PLC0415
                                        QosReliability, QosTime)

        return Qos(QosHistory.KEEP_LAST, int(self.depth),
                   QosReliability.RELIABLE if self.reliable else QosReliability.BEST_EFFORT,
                   QosDurability.TRANSIENT_LOCAL if self.transient_local else QosDurability.VOLATILE,
                   QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


def check_new_bag_path(path: str | Path) -> Path:
    """The bag path to record to; BagError when something is already there (as ros2 bag record)."""
    path = Path(path)
    if path.exists():
        raise BagError(f"bag path already exists, not overwriting: {path}")
    if not path.parent.is_dir():
        raise BagError(f"folder of the bag does not exist: {path.parent}")
    return path


class BagWriter:
    """A rosbag2 bag being recorded. Topics are added as they come (`write` with a new topic);
    `close()` writes the file's index and metadata.yaml: only then is the bag complete."""

    def __init__(self, path: str | Path, storage: str = DEFAULT_STORAGE, custom_data: dict[str, str] | None = None):
        from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: PLC0415
        from rosbags.rosbag2.errors import WriterError  # noqa: PLC0415

        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}: use one of {', '.join(STORAGES)}")
        self.path = check_new_bag_path(path)
        typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
            for key, value in (bag_custom_data() if custom_data is None else custom_data).items():
                self._writer.set_custom_data(key, value)
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from None
        self._connections: dict[tuple[str, str], object] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str, qos: TopicQos | None = None) -> None:
        if (topic, msgtype) in self._connections:
            return
        ensure_type(msgtype)
        self._connections[(topic, msgtype)] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), offered_qos_profiles=[(qos or TopicQos()).to_rosbags()])
        self.counts.setdefault(topic, 0)

    def write(self, topic: str, msgtype: str, time_ns: int, raw: bytes) -> None:
        """One serialised message received at `time_ns` (ns since the epoch)."""
        if (topic, msgtype) not in self._connections:
            self.add_topic(topic, msgtype)
        self._writer.write(self._connections[(topic, msgtype)], int(time_ns), raw)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- reading ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int
    qos: TopicQos


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    time_ns: int  # when it was recorded
    raw: bytes    # CDR


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")


class BagReader:
    """A recorded bag, read back.

    `path`: a bag directory (metadata.yaml + its storage file), a bag directory without
    metadata.yaml (a recording that never closed), or the `.mcap` / `.db3` file itself.
    BagError when nothing in it can be read; `warning` (one line, or None) when only a part
    could: after `topics` or a full pass of `messages()`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.warning: str | None = None
        self.custom_data: dict[str, str] = {}
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        self._file: Path | None = None  # storage file read record by record (damaged or bare files)
        self._storage = ""
        self._topics: list[TopicInfo] | None = None
        self._damage: str | None = None  # why a record-by-record reading stopped early
        if self.path.is_dir() and (self.path / "metadata.yaml").is_file():
            if self._open_with_rosbags():
                return
        self._file = self._storage_file()
        self._storage = "mcap" if self._file.suffix == ".mcap" else "sqlite3"
        self._topics = self._scan_topics()

    # the intact bag: rosbags' reader with its metadata and index

    def _open_with_rosbags(self) -> bool:
        from rosbags.rosbag2 import Reader  # noqa: PLC0415

        try:
            reader = Reader(self.path)
            reader.open()
        except Exception:  # rosbags raises ReaderError, ValueError, KeyError, … on damaged bags
            return False  # read record by record instead
        self._reader = reader
        self._storage = "mcap" if any(self.path.glob("*.mcap")) else "sqlite3"
        self.custom_data = dict(getattr(getattr(reader.storage, "metadata", None), "custom", None) or {})
        self._topics = [TopicInfo(c.topic, c.msgtype, c.msgcount, _qos_of(c)) for c in reader.connections]
        return True

    # a damaged or bare file: read record by record, up to the damage

    def _storage_file(self) -> Path:
        if self.path.is_file():
            if self.path.suffix not in (".mcap", ".db3"):
                raise BagError(f"not a rosbag2 bag: {self.path} (expected a bag folder, an .mcap or a .db3)")
            return self.path
        files = sorted(self.path.glob("*.mcap")) + sorted(self.path.glob("*.db3"))
        if not files:
            raise BagError(f"not a rosbag2 bag: {self.path} has no metadata.yaml and no .mcap or .db3 file")
        if len(files) > 1:
            self._note(f"{len(files)} storage files, read only {files[0].name}")
        return files[0]

    def _note(self, text: str) -> None:
        self.warning = f"{self.warning}; {text}" if self.warning else f"{self.path}: {text}"

    def _scan_topics(self) -> list[TopicInfo]:
        counts: dict[tuple[str, str], int] = {}
        qos: dict[tuple[str, str], TopicQos] = {}
        n = 0
        for kind, item in self._records():
            if kind == "topic":
                counts.setdefault(item[:2], 0)
                qos[item[:2]] = item[2]
            else:
                counts[(item.topic, item.msgtype)] = counts.get((item.topic, item.msgtype), 0) + 1
                n += 1
        if not counts and self._damage:
            raise BagError(f"cannot read bag {self.path}: {self._damage}")
        return [TopicInfo(t, m, c, qos.get((t, m), TopicQos())) for (t, m), c in counts.items()]

    def _records(self) -> Iterator[tuple[str, object]]:
        """('topic', (topic, msgtype, qos)) and ('message', BagMessage) in file order, up to the
        damage (noted in `warning`)."""
        yield from (self._mcap_records() if self._storage == "mcap" else self._sqlite_records())

    def _mcap_records(self):
        from mcap.stream_reader import StreamReader  # noqa: PLC0415
        from mcap.records import Channel, Footer, Message, Schema  # noqa: PLC0415

        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, str]] = {}
        read = 0
        complete = False
        with open(self._file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(8) != b"\x89MCAP0\r\n":
                raise BagError(f"cannot read bag {self.path}: {self._file.name} is not an MCAP file")
            f.seek(0)
            try:
                for record in StreamReader(f, record_size_limit=size).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel):
                        channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
                        yield "topic", (*channels[record.id], _qos_from_mcap(record.metadata))
                    elif isinstance(record, Message) and record.channel_id in channels:
                        read += 1
                        yield "message", BagMessage(*channels[record.channel_id], record.log_time, bytes(record.data))
                    elif isinstance(record, Footer):
                        complete = True
            except Exception as exc:  # mcap raises EndOfFile, InvalidMagic, struct.error, CRC errors, …
                self._note_damage(read, exc)
                return
        if not complete:
            self._note_damage(read, None)

    def _sqlite_records(self):
        read = 0
        try:
            db = sqlite3.connect(f"file:{self._file}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise BagError(f"cannot read bag {self.path}: {_one_line(exc)}") from None
        try:
            topics = {}
            for tid, name, msgtype, qos_text in db.execute(
                    "SELECT id, name, type, offered_qos_profiles FROM topics ORDER BY id"):
                topics[tid] = (name, msgtype)
                yield "topic", (name, msgtype, _qos_from_text(qos_text))
            for tid, t, data in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp, id"):
                if tid in topics:
                    read += 1
                    yield "message", BagMessage(*topics[tid], int(t), bytes(data))
        except sqlite3.Error as exc:
            self._note_damage(read, exc)
        finally:
            db.close()

    def _note_damage(self, read: int, exc: BaseException | None) -> None:
        if self._topics is not None:  # the first pass has said it already
            return
        if exc is None:
            self._damage = "the file ends without its closing records"
        elif type(exc).__name__ in ("EndOfFile", "error"):  # mcap's EndOfFile, struct.error
            self._damage = "the file breaks off inside a record"
        elif type(exc).__name__ == "InvalidMagic":
            self._damage = "not an MCAP file"
        else:
            self._damage = _one_line(exc)
        self._note(f"damaged or incomplete ({self._damage}): read {read} messages, the rest is lost")

    # the public side

    @property
    def storage(self) -> str:
        """'mcap' or 'sqlite3'."""
        return self._storage

    @property
    def topics(self) -> list[TopicInfo]:
        return list(self._topics or [])

    def topic_info(self, relative: str) -> TopicInfo | None:
        """The recorded topic whose name without namespace is `relative` (e.g. 'vasa/face_motion')."""
        return next((t for t in self._topics or [] if relative_topic(t.topic) == relative), None)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """The messages (of `topics` only, when given) in recording order."""
        wanted = set(topics) if topics is not None else None
        if self._file is None:
            conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
            if not conns:
                return
            try:
                for conn, t, raw in self._reader.messages(connections=conns):
                    yield BagMessage(conn.topic, conn.msgtype, int(t), bytes(raw))
            except Exception as exc:  # a chunk damaged inside an indexed file
                self._note(f"damaged: {_one_line(exc)}; the readable part is used")
            return
        for kind, item in self._records():
            if kind == "message" and (wanted is None or item.topic in wanted):
                yield item

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
            self._reader = None

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _qos_of(conn) -> TopicQos:
    profiles = getattr(conn.ext, "offered_qos_profiles", None) or []
    if not profiles:
        return TopicQos()
    p = profiles[0]
    return TopicQos(reliable=p.reliability.name != "BEST_EFFORT", transient_local=p.durability.name == "TRANSIENT_LOCAL",
                    depth=int(p.depth) or 100)


def _qos_from_text(text: str | None) -> TopicQos:
    import yaml  # noqa: PLC0415

    try:
        profiles = yaml.safe_load(text or "") or []
        p = profiles[0]
        return TopicQos(reliable=str(p.get("reliability")) not in ("best_effort", "2"),
                        transient_local=str(p.get("durability")) in ("transient_local", "1"),
                        depth=int(p.get("depth") or 100))
    except Exception:  # absent or in a form we do not know: the graph's default
        return TopicQos()


def _qos_from_mcap(metadata: dict) -> TopicQos:
    return _qos_from_text(metadata.get("offered_qos_profiles"))


# -- a recorded session, for rendering ---------------------------------------------------

def _stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@dataclass
class SessionMotion:
    """The recorded motion on a regular video clock: frame k shows the face at
    `start_ns + k / fps` (the newest recorded FaceMotion stamped at most half a frame later)."""

    fps: float
    start_ns: int
    frames: list  # MotionFrame, one per video frame
    recorded: int  # FaceMotion messages read


def session_motion(reader: BagReader) -> SessionMotion:
    """The FaceMotion of a recorded session. BagError when the bag has none."""
    from .motion import motion_from_message  # noqa: PLC0415

    info = reader.topic_info(MOTION_TOPIC)
    if info is None or info.msgtype != MOTION_TYPE:
        raise BagError(f"bag {reader.path} has no {MOTION_TYPE} on {MOTION_TOPIC} "
                       f"(topics: {', '.join(t.topic for t in reader.topics) or 'none'})")
    stamped = []
    fps = None
    for m in reader.messages([info.topic]):
        msg = deserialize(m.raw, MOTION_TYPE)
        try:
            frame = motion_from_message(msg)
        except ValueError:
            continue
        fps = fps or (float(msg.frame_rate) if msg.frame_rate > 0 else None)
        stamped.append((_stamp_ns(msg), frame))
    if not stamped:
        raise BagError(f"bag {reader.path}: no readable FaceMotion on {info.topic}")
    fps = fps or 25.0
    stamped.sort(key=lambda s: s[0])
    stamps = np.array([s for s, _ in stamped], np.int64)
    period = 1e9 / fps
    start = int(stamps[0])
    n = int(round((stamps[-1] - start) / period)) + 1
    grid = start + np.round(np.arange(n) * period).astype(np.int64)
    pick = np.searchsorted(stamps, grid + int(period / 2), side="right") - 1
    frames = [stamped[i][1] for i in pick]
    return SessionMotion(fps, start, frames, len(stamped))


def session_audio(reader: BagReader, start_ns: int, duration_s: float, sample_rate: int = 16000) -> np.ndarray | None:
    """The recorded 16 kHz speech (/vasa/audio) on the video's time line: sample n plays at
    `start_ns + n / sample_rate`, silence where nothing was said. None when the bag has none."""
    info = reader.topic_info(AUDIO_TOPIC)
    if info is None or info.msgtype != AUDIO_TYPE:
        return None
    out = np.zeros(int(round(duration_s * sample_rate)), np.float32)
    found = False
    for m in reader.messages([info.topic]):
        msg = deserialize(m.raw, AUDIO_TYPE)
        if int(msg.sample_rate) != sample_rate or len(msg.samples) == 0:
            continue
        # sample 0 of a stream plays at its first chunk's stamp; each chunk is stamped accordingly
        first = int(round((_stamp_ns(msg) - start_ns) * sample_rate / 1e9))
        x = np.nan_to_num(np.asarray(msg.samples, np.float32))
        lo, hi = max(first, 0), min(first + len(x), len(out))
        if hi > lo:
            out[lo:hi] = x[lo - first:hi - first]
            found = True
    return out if found else None


# -- what a replay feeds back into the graph ---------------------------------------------

PLAY_FROM = ("audio", "motion")
DEFAULT_PLAY_FROM = "audio"
PLAYED = {
    # the recorded 16 kHz speech goes back in where speech enters the graph, with what steered it
    "audio": {"vasa/audio": "vasa/audio_in", "vasa/control": "vasa/control", "vasa/emotion": "vasa/emotion",
              "vasa/gaze_target": "vasa/gaze_target"},
    # the recorded motion goes straight to face_renderer; the speech is played along for listeners
    "motion": {"vasa/face_motion": "vasa/face_motion", "vasa/audio": "vasa/audio"},
}
NEEDED = {"audio": AUDIO_TOPIC, "motion": MOTION_TOPIC}


@dataclass(frozen=True)
class PlayedTopic:
    recorded: str  # the topic in the bag
    output: str    # where it is published, relative to the player's namespace
    msgtype: str
    qos: TopicQos


def played_topics(reader: BagReader, play_from: str = DEFAULT_PLAY_FROM) -> list[PlayedTopic]:
    """The recorded topics a replay starting from `play_from` publishes. BagError when the bag
    lacks the one it starts from."""
    if play_from not in PLAY_FROM:
        raise BagError(f"unknown replay start {play_from!r}: use one of {', '.join(PLAY_FROM)}")
    if reader.topic_info(NEEDED[play_from]) is None:
        raise BagError(f"bag {reader.path} has no {NEEDED[play_from]} to play from "
                       f"(topics: {', '.join(t.topic for t in reader.topics) or 'none'})")
    out = []
    for relative, output in PLAYED[play_from].items():
        info = reader.topic_info(relative)
        if info is not None:
            out.append(PlayedTopic(info.topic, output, info.msgtype, info.qos))
    return out
