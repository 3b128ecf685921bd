"""What a file says about its origin: the invisible watermark in its pictures and the
provenance it carries (MP4 tags, C2PA manifest, PNG text, bag custom data).

`inspect_file(path)` reads a video (anything PyAV/FFmpeg decodes), an image (anything Pillow
opens) or a rosbag2 bag (a directory, an .mcap or a .db3; its sensor_msgs/Image and
CompressedImage messages) and returns a `FileReport`. A file it cannot read raises
`UnreadableFile` with one line saying why; a file that breaks off part way is reported on
what could be read, with the reason in `FileReport.warning`.

ROS-free: the bag is read with rosbags, without rclpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .provenance import read_manifest, statement_from_tags
from .watermark import SEARCH_FRAMES, ClipDetector, Payload, find_alignment, key_digest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
BAG_SUFFIXES = {".mcap", ".db3"}
IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}


class UnreadableFile(Exception):
    """A file that is not a video, an image or a bag we can read (message: one line)."""


@dataclass
class FileReport:
    path: str
    kind: str
    """'video', 'image' or 'bag'."""
    found: bool
    frames: int
    frames_found: int
    payload: Payload | None
    """The mark's payload, when found."""
    crc_ok: bool
    tag_errors: int
    score: float
    p_value: float
    provenance: dict = field(default_factory=dict)
    """Statement read from the file's metadata (MP4 tags, PNG text, bag custom data)."""
    c2pa: dict | None = None
    """The C2PA manifest, summarised (core.provenance.read_manifest)."""
    topics: list[str] = field(default_factory=list)
    """Bags: the image topics read."""
    key_match: bool | None = None
    """With a key to check: whether the mark carries that key's digest."""
    warning: str | None = None
    """What stopped the reading early (a truncated file), if anything."""
    alignment: dict | None = None
    """Where a cropped picture was found to sit in its frame (kept_fraction of the width, x
    and y of its corner as fractions of the frame), when the mark was read re-aligned."""

    @property
    def fraction(self) -> float:
        return self.frames_found / self.frames if self.frames else 0.0

    @property
    def confidence(self) -> float:
        """1 − the chance that unmarked material reads the tag this well."""
        return 1.0 - self.p_value

    def as_dict(self) -> dict:
        mark = None
        if self.found and self.payload is not None:
            mark = {"version": self.payload.version,
                    "key_digest": f"{self.payload.key:04x}" if self.crc_ok else None,
                    "keyed": bool(self.payload.key) if self.crc_ok else None,
                    "crc_ok": self.crc_ok}
        return {
            "path": self.path, "kind": self.kind, "found": self.found, "mark": mark,
            "key_match": self.key_match,
            "frames": self.frames, "frames_found": self.frames_found, "fraction": round(self.fraction, 4),
            "confidence": self.confidence, "p_value": self.p_value,
            "score": round(self.score, 2) if math.isfinite(self.score) else None,
            "tag_errors": self.tag_errors,
            "provenance": self.provenance or None, "c2pa": self.c2pa,
            "topics": self.topics or None, "warning": self.warning, "alignment": self.alignment,
        }


class _KeepingDetector(ClipDetector):
    """A ClipDetector that also keeps the first `keep` images, for the crop search."""

    def __init__(self, keep: int):
        super().__init__()
        self.keep, self.kept = keep, []

    def add(self, image: np.ndarray):
        if len(self.kept) < self.keep:
            self.kept.append(np.array(image, copy=True))
        return super().add(image)


def inspect_file(path: str | Path, key: str | None = None, max_frames: int | None = None,
                 search: bool = True) -> FileReport:
    """Read the mark and the provenance of one file. `key`: a watermark key to check;
    `max_frames`: read at most this many frames (videos and bags); `search`: where the mark
    is not found as the pictures stand, look for where a cropped picture sits in its frame
    and read it again there (a second pass over the file)."""
    path = Path(path)
    if not path.exists():
        raise UnreadableFile("no such file")
    if path.is_dir() or path.suffix.lower() in BAG_SUFFIXES:
        kind = "bag"

        def read(detector):
            provenance, topics, warning = _read_bag(path, detector, max_frames)
            return provenance, None, topics, warning
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        kind = "image"

        def read(detector):
            return _read_image(path, detector), read_manifest(path), [], None
    else:
        kind = "video"

        def read(detector):
            provenance, warning = _read_video(path, detector, max_frames)
            return provenance, read_manifest(path), [], warning

    detector = _KeepingDetector(SEARCH_FRAMES)
    provenance, c2pa, topics, warning = read(detector)
    if detector.frames == 0:
        if warning:
            raise UnreadableFile(warning)
        raise UnreadableFile("no images in it" if kind == "bag" else "no frames in it")
    clip = detector.result()
    if search and not clip.detection.found:
        alignment = find_alignment(detector.kept)
        if alignment is not None:
            aligned = ClipDetector(alignment)
            read(aligned)
            if aligned.frames and aligned.result().detection.found:
                clip = aligned.result()
    d = clip.detection
    report = FileReport(path=str(path), kind=kind, found=d.found, frames=clip.frames,
                        frames_found=clip.frames_found, payload=d.payload if d.found else None,
                        crc_ok=d.crc_ok, tag_errors=d.tag_errors, score=d.score, p_value=d.p_value,
                        provenance=provenance, c2pa=c2pa, topics=topics, warning=warning,
                        alignment=clip.alignment.as_dict() if clip.alignment else None)
    if key is not None:
        report.key_match = bool(d.found and d.crc_ok and d.payload.key == key_digest(key))
    return report


def _one_line(exc: BaseException) -> str:
    if getattr(exc, "strerror", None):  # OSError and PyAV's FFmpegError: without errno and file name
        return exc.strerror.rstrip(".")
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")


def _read_image(path: Path, detector: ClipDetector) -> dict:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path) as img:
            info = {k: v for k, v in img.info.items() if isinstance(v, str)}
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableFile(f"not an image Pillow can read ({_one_line(exc)})") from None
    detector.add(rgb)
    return statement_from_tags(info)


def _read_video(path: Path, detector: ClipDetector, max_frames: int | None) -> tuple[dict, str | None]:
    import av  # noqa: PLC0415

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"not a video or image that can be decoded ({_one_line(exc)})") from None
    warning = None
    with container:
        if not container.streams.video:
            raise UnreadableFile("no video stream in it")
        provenance = statement_from_tags(dict(container.metadata))
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                detector.add(frame.to_ndarray(format="rgb24"))
                if max_frames and detector.frames >= max_frames:
                    break
        except (av.error.FFmpegError, OSError) as exc:
            warning = f"stopped after {detector.frames} frames: {_one_line(exc)}"
        declared = stream.frames
        if warning is None and declared and detector.frames < declared and not max_frames:
            warning = f"the file ends after {detector.frames} of its {declared} frames (truncated?)"
    return provenance, warning


def _read_bag(path: Path, detector: ClipDetector, max_frames: int | None) -> tuple[dict, list[str], str | None]:
    from rosbags.rosbag2 import Reader  # noqa: PLC0415
    from rosbags.typesys import Stores, get_typestore  # noqa: PLC0415

    store = get_typestore(Stores.ROS2_KILTED)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, ValueError, KeyError, … on bad bags
        raise UnreadableFile(f"not a rosbag2 bag that can be read ({_one_line(exc)})") from None
    warning = None
    topics: list[str] = []
    try:
        custom = getattr(getattr(reader.storage, "metadata", None), "custom", None) or {}
        provenance = statement_from_tags(dict(custom))
        connections = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        topics = sorted({c.topic for c in connections})
        if connections:
            try:
                for conn, _, raw in reader.messages(connections=connections):
                    image = _bag_image(store.deserialize_cdr(raw, conn.msgtype), conn.msgtype)
                    if image is not None:
                        detector.add(image)
                    if max_frames and detector.frames >= max_frames:
                        break
            except Exception as exc:  # a truncated or corrupt chunk: report what was read
                warning = f"stopped after {detector.frames} images: {_one_line(exc)}"
    finally:
        reader.close()
    return provenance, topics, warning


def _bag_image(msg, msgtype: str) -> np.ndarray | None:
    """RGB pixels of a sensor_msgs Image (rgb8, bgr8, mono8) or CompressedImage (JPEG, PNG)."""
    import cv2  # noqa: PLC0415

    if msgtype.endswith("CompressedImage"):
        bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}.get(msg.encoding)
    if channels is None:
        return None
    rows = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if msg.encoding == "bgr8":
        return pixels[..., ::-1]
    return pixels if channels == 3 else pixels[..., 0]
