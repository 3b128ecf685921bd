"""A look sheet: the portrait under a fixed set of expressions, poses and gazes, in one labelled grid."""

from __future__ import annotations

import dataclasses

import numpy as np

from .motion import MotionFrame
from .renderer import FaceRenderer


def sheet_cases() -> list[tuple[str, MotionFrame]]:
    """(label, motion) for each cell of the sheet, in reading order."""
    n = MotionFrame.neutral()

    def pose(yaw=0.0, pitch=0.0, roll=0.0):
        return dataclasses.replace(n, head_rotation=np.radians([yaw, pitch, roll]).astype(np.float32))

    def gaze(yaw=0.0, pitch=0.0):
        return dataclasses.replace(n, gaze=np.array([yaw, pitch], np.float32))

    return [
        ("neutral", n),
        ("jawOpen 0.5", n.with_blendshapes(jawOpen=0.5)),
        ("jawOpen 1", n.with_blendshapes(jawOpen=1.0)),
        ("smile", n.with_blendshapes(mouthSmileLeft=1.0, mouthSmileRight=1.0, cheekSquintLeft=0.5,
                                     cheekSquintRight=0.5)),
        ("pucker", n.with_blendshapes(mouthPucker=1.0)),
        ("funnel", n.with_blendshapes(mouthFunnel=1.0, jawOpen=0.2)),
        ("blink", n.with_blendshapes(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)),
        ("brows up", n.with_blendshapes(browInnerUp=1.0, browOuterUpLeft=1.0, browOuterUpRight=1.0)),
        ("brows down", n.with_blendshapes(browDownLeft=1.0, browDownRight=1.0)),
        ("surprised", n.with_blendshapes(browInnerUp=0.8, browOuterUpLeft=0.8, browOuterUpRight=0.8,
                                         eyeWideLeft=1.0, eyeWideRight=1.0, jawOpen=0.35)),
        ("yaw +20", pose(yaw=20)),
        ("yaw -20", pose(yaw=-20)),
        ("pitch +15", pose(pitch=15)),
        ("pitch -15", pose(pitch=-15)),
        ("roll +10", pose(roll=10)),
        ("roll -10", pose(roll=-10)),
        ("gaze left", gaze(yaw=0.35)),
        ("gaze right", gaze(yaw=-0.35)),
        ("gaze up", gaze(pitch=0.3)),
        ("gaze down", gaze(pitch=-0.3)),
    ]


def render_sheet(renderer: FaceRenderer, columns: int = 5, cell: int = 256) -> np.ndarray:
    """RGB grid of all sheet cases, each labelled, cells `cell` px wide."""
    import cv2  # noqa: PLC0415

    cases = sheet_cases()
    rows = -(-len(cases) // columns)
    grid = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    for i, (label, motion) in enumerate(cases):
        image = renderer.render(motion)
        tile = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA)
        cv2.rectangle(tile, (0, 0), (cell, 22), (0, 0, 0), thickness=-1)
        cv2.putText(tile, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(i, columns)
        grid[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = tile
    return grid
