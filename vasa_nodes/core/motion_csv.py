"""Motion files in the Live Link Face CSV convention: one row per frame, one column per value.

Columns (case-insensitive, order free): the 52 ARKit blendshapes (`JawOpen`, `EyeBlinkLeft`,
…; 0–1), `HeadYaw`/`HeadPitch`/`HeadRoll` (radians; + yaw turns the face to its own left,
+ pitch looks up, + roll tilts the top of the head to its own left) and
`LeftEyeYaw`/`LeftEyePitch`/`RightEyeYaw`/`RightEyePitch` (radians, relative to the head;
the two eyes are averaged). `Timecode` and `BlendShapeCount` are recognised and skipped;
other columns are ignored with a warning. Missing columns mean 0.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np

from .blendshapes import ARKIT_BLENDSHAPES, NUM_BLENDSHAPES
from .motion import MotionFrame

log = logging.getLogger(__name__)

POSE_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "RightEyeYaw", "RightEyePitch")
SKIPPED_COLUMNS = {"timecode", "blendshapecount", "lefteyeroll", "righteyeroll"}


class MotionFileError(ValueError):
    """A motion file that cannot be used; the message names the row and column."""


def _column_key(name: str) -> str:
    return name.strip().lower()


_BLENDSHAPE_BY_KEY = {_column_key(n): i for i, n in enumerate(ARKIT_BLENDSHAPES)}
_OTHER_BY_KEY = {_column_key(n): n for n in POSE_COLUMNS + EYE_COLUMNS}


def read_motion_csv(path: str | Path) -> list[MotionFrame]:
    """Read a motion CSV into MotionFrames (frame_index = row number from 0)."""
    p = Path(path)
    if not p.is_file():
        raise MotionFileError(f"motion file not found: {p}")
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MotionFileError(f"cannot read motion file {p}: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise MotionFileError(f"motion file is empty: {p}")
    header = [c.strip() for c in rows[0]]
    usable: dict[int, str] = {}
    ignored = []
    for col, name in enumerate(header):
        key = _column_key(name)
        if key in _BLENDSHAPE_BY_KEY or key in _OTHER_BY_KEY:
            usable[col] = key
        elif key not in SKIPPED_COLUMNS:
            ignored.append(name or f"#{col + 1}")
    if not usable:
        raise MotionFileError(f"{p.name}: no known column (expected ARKit blendshape names such as JawOpen, "
                              "or HeadYaw/HeadPitch/HeadRoll)")
    if ignored:
        log.warning("%s: ignoring unknown columns: %s", p.name, ", ".join(ignored))
    if len(rows) < 2:
        raise MotionFileError(f"{p.name}: header only, no frames")

    frames = []
    for r, row in enumerate(rows[1:], start=2):
        b = np.zeros(NUM_BLENDSHAPES, np.float32)
        values: dict[str, float] = {}
        for col, key in usable.items():
            cell = row[col].strip() if col < len(row) else ""
            try:
                v = float(cell)
            except ValueError:
                raise MotionFileError(f"{p.name}: row {r}, column {header[col]}: not a number: {cell!r}") from None
            if not math.isfinite(v):
                raise MotionFileError(f"{p.name}: row {r}, column {header[col]}: {cell} is not a finite number")
            if key in _BLENDSHAPE_BY_KEY:
                b[_BLENDSHAPE_BY_KEY[key]] = v
            else:
                values[_OTHER_BY_KEY[key]] = v
        if np.any((b < -0.01) | (b > 1.01)):
            col = header[next(c for c, k in usable.items() if k in _BLENDSHAPE_BY_KEY
                              and not -0.01 <= b[_BLENDSHAPE_BY_KEY[k]] <= 1.01)]
            raise MotionFileError(f"{p.name}: row {r}, column {col}: blendshape outside 0..1")
        gaze_yaw = (values.get("LeftEyeYaw", 0.0) + values.get("RightEyeYaw", 0.0)) / 2
        gaze_pitch = (values.get("LeftEyePitch", 0.0) + values.get("RightEyePitch", 0.0)) / 2
        frames.append(MotionFrame(
            frame_index=r - 2,
            blendshapes=np.clip(b, 0.0, 1.0),
            head_rotation=np.array([values.get(n, 0.0) for n in POSE_COLUMNS], np.float32),
            gaze=np.array([gaze_yaw, gaze_pitch], np.float32),
        ))
    return frames


def write_motion_csv(path: str | Path, frames: list[MotionFrame]) -> None:
    """Write MotionFrames in the same convention (ARKit columns capitalised, as Live Link Face does)."""
    names = [n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES]
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Timecode", *names, *POSE_COLUMNS, *EYE_COLUMNS])
        for m in frames:
            yaw, pitch = (float(v) for v in m.gaze)
            w.writerow([m.frame_index, *(f"{v:.5f}" for v in m.blendshapes),
                        *(f"{v:.5f}" for v in m.head_rotation), f"{yaw:.5f}", f"{pitch:.5f}", f"{yaw:.5f}",
                        f"{pitch:.5f}"])
