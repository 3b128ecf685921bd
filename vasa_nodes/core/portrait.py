"""Portrait ingest: read any common image, find the face, crop, and fit 478 landmarks.

The result is the appearance half of the face representation: a square RGB image of
the output size with the face centred, and the dense 3D landmarks (MediaPipe face mesh,
468 points + 10 iris points) of that image, in pixels.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MIN_FACE_PX = 32
"""Smallest face (bounding-box side, pixels in the source image) that is accepted."""


class PortraitError(ValueError):
    """A portrait that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Portrait:
    """A face image ready to animate."""

    image: np.ndarray      # (S, S, 3) uint8 RGB, S = output size
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels of `image`; z in pixels, smaller = nearer
    source: str            # file name or description, for messages
    yaw_roll: tuple[float, float] = (0.0, 0.0)  # the face's own turn and tilt in the photo, radians

    @property
    def size(self) -> int:
        return self.image.shape[0]


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as 8-bit RGB, whatever its mode (RGBA, grey, 16-bit, palette, EXIF-rotated)."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: PLC0415

    p = Path(path)
    if not p.exists():
        raise PortraitError(f"portrait file not found: {p}")
    if not p.is_file():
        raise PortraitError(f"portrait path is not a file: {p}")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
    except UnidentifiedImageError:
        raise PortraitError(f"not an image file (or an unsupported format): {p}") from None
    except (OSError, ValueError) as exc:
        raise PortraitError(f"cannot read image {p}: {str(exc).splitlines()[0]}") from None
    return to_rgb8(im)


def to_rgb8(im) -> np.ndarray:
    """PIL image of any mode -> (H, W, 3) uint8; transparency composited on neutral grey."""
    from PIL import Image  # noqa: PLC0415

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        a = np.asarray(im, np.float64)
        im = Image.fromarray(np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (128, 128, 128, 255))
        im = Image.alpha_composite(background, im)
    return np.asarray(im.convert("RGB"), np.uint8).copy()


@contextlib.contextmanager
def _native_stderr_silenced():
    """Silence what MediaPipe's C++ side prints straight to file descriptor 2.

    TensorFlow Lite and absl write start-up and per-call notices there that no Python
    logging setting reaches; they would drown a node's log. Python-level stderr is untouched.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller of two boxes (x0, y0, x1, y1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-9)


class FaceFitter:
    """MediaPipe face detection + 478-point face mesh, loaded once and reused."""

    def __init__(self):
        with _native_stderr_silenced():
            from mediapipe.python.solutions import face_detection, face_mesh  # noqa: PLC0415

            self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
            # The short-range model, for tiles of a large picture (faces that fill much of a tile).
            self._tile_detector = face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
            self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                            min_detection_confidence=0.4)

    def close(self) -> None:
        self._detector.close()
        self._tile_detector.close()
        self._mesh.close()

    def detect(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (x0, y0, x1, y1) in pixels, largest first.

        The detector sees its input at 192 px, so a face that is small in a large picture
        is lost: when the whole picture shows none, overlapping square tiles, each 2/3 the
        size of the last (while they are at least 8 x MIN_FACE_PX), are searched, and boxes
        found twice where tiles overlap are merged.
        """
        h, w = rgb.shape[:2]
        found = self._detect_in(rgb, 0, 0)
        boxes = self._confirmed(rgb, found)
        tile = min(h, w)
        while not boxes and tile >= 8 * MIN_FACE_PX:
            tile = tile * 2 // 3
            step = tile // 2
            for y in range(0, max(h - tile, 0) + step, step):
                for x in range(0, max(w - tile, 0) + step, step):
                    y0, x0 = min(y, max(h - tile, 0)), min(x, max(w - tile, 0))
                    found += self._detect_in(rgb[y0:y0 + tile, x0:x0 + tile], x0, y0, self._tile_detector)
            boxes = self._confirmed(rgb, found)
        return boxes

    def _confirmed(self, rgb: np.ndarray, found: list[tuple[float, tuple]]) -> list[tuple]:
        """Detections merged where they repeat, kept where the face mesh confirms them, largest first.

        The detector also fires on face-like patterns (a badge, folds of cloth); the mesh
        model, run on a crop around the box, does not.
        """
        boxes = []
        for score, box in sorted(found, reverse=True):  # most confident first; drop its repeats
            if all(_overlap(box, kept) < 0.3 for kept in boxes):
                boxes.append(box)
        boxes = [b for b in boxes if self._mesh_confirms(rgb, b)]
        boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        return boxes

    def _detect_in(self, rgb: np.ndarray, x_off: int, y_off: int, detector=None) -> list[tuple[float, tuple]]:
        """(score, box) of the faces in one image or tile, boxes in the full picture's pixels."""
        h, w = rgb.shape[:2]
        work = rgb
        if max(h, w) > 1920:
            # The detector runs at 192 px anyway; shrinking first saves time on 4K inputs.
            import cv2  # noqa: PLC0415

            scale = 1920.0 / max(h, w)
            work = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        with _native_stderr_silenced():
            result = (detector or self._detector).process(np.ascontiguousarray(work))
        out = []
        for det in result.detections or []:
            bb = det.location_data.relative_bounding_box
            x0, y0 = x_off + bb.xmin * w, y_off + bb.ymin * h
            out.append((float(det.score[0]), (x0, y0, x0 + bb.width * w, y0 + bb.height * h)))
        return out

    def _mesh_confirms(self, rgb: np.ndarray, box: tuple) -> bool:
        """Whether the face mesh finds this box's face in a crop around it."""
        import cv2  # noqa: PLC0415

        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = 1.2 * max(box[2] - box[0], box[3] - box[1])
        h, w = rgb.shape[:2]
        x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
        x1, y1 = int(min(cx + half, w)), int(min(cy + half, h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        crop = cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1]), (256, 256), interpolation=cv2.INTER_AREA)
        lm = self.landmarks(crop)
        if lm is None:
            return False
        # The mesh's face must be the detected one, not another face in the crop.
        mx, my = lm[:, 0].mean() * (x1 - x0) / 256 + x0, lm[:, 1].mean() * (y1 - y0) / 256 + y0
        return box[0] <= mx <= box[2] and box[1] <= my <= box[3]

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks in pixels of `rgb`, or None when no face mesh fits."""
        with _native_stderr_silenced():
            result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in result.multi_face_landmarks[0].landmark], np.float32)
        return pts


def load_portrait(path: str | Path, size: int = 512, fitter: FaceFitter | None = None) -> Portrait:
    """Read, crop around the (largest) face and fit landmarks. Raises PortraitError."""
    if not 64 <= size <= 2048:
        raise PortraitError(f"output size must be within 64..2048 px, got {size}")
    rgb = read_image(path)
    own = fitter is None
    fitter = fitter or FaceFitter()
    try:
        return prepare_portrait(rgb, size, fitter, source=Path(path).name)
    finally:
        if own:
            fitter.close()


def prepare_portrait(rgb: np.ndarray, size: int, fitter: FaceFitter, source: str = "portrait") -> Portrait:
    """Crop a square around the largest face (face box ~ 40 % of the side) and fit landmarks."""
    import cv2  # noqa: PLC0415

    h, w = rgb.shape[:2]
    if min(h, w) < 32:
        raise PortraitError(f"image is too small ({w}x{h} px): {source}")
    boxes = fitter.detect(rgb)
    if not boxes:
        raise PortraitError(f"no face found in {source}")
    if len(boxes) > 1:
        log.warning("%s: %d faces found; using the largest", source, len(boxes))
    x0, y0, x1, y1 = boxes[0]
    face = max(x1 - x0, y1 - y0)
    if face < MIN_FACE_PX:
        raise PortraitError(f"face is too small in {source}: {face:.0f} px, need at least {MIN_FACE_PX} px")

    # The detector's box covers brows to chin; centre a bit above its middle so hair fits.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.08 * face
    side = face / 0.4
    src = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2], [cx - side / 2, cy + side / 2]])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    affine = cv2.getAffineTransform(src, dst)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    crop = cv2.warpAffine(rgb, affine, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if side > min(h, w) * 1.02 or cx - side / 2 < 0 or cy - side / 2 < 0 or cx + side / 2 > w or cy + side / 2 > h:
        log.info("%s: face is near the image border; the frame edge is padded by repetition", source)
    if side < size / 2:
        log.warning("%s: face is only %.0f px, upscaled %.1fx to fill %d px; the output will be soft",
                    source, face, size / side, size)

    pts = fitter.landmarks(crop)
    if pts is None:
        raise PortraitError(f"no face found in {source} (face mesh could not be fitted)")
    from .face_metrics import portrait_yaw_roll  # noqa: PLC0415 - face_metrics imports the rig

    yaw, roll = portrait_yaw_roll(pts)
    log.info("%s: face turned %+.0f°, tilted %+.0f° in the photo; motion is applied relative to that",
             source, np.degrees(yaw), np.degrees(roll))
    if abs(np.degrees(yaw)) > 25:
        log.warning("%s: the face is turned %.0f° from the camera; head turns of more than about 10° "
                    "will stretch what lies behind the far cheek", source, abs(np.degrees(yaw)))
    return Portrait(crop, pts, source, (yaw, roll))
