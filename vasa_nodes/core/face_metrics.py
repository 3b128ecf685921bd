"""Measurements of a face from its tracked landmarks: mouth, eyes, and head rotation.

Used to check rendered frames against the motion that made them, and to compare
generated and real talking faces with the same tracker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face_rig import CHIN, EYES, FOREHEAD

# Landmarks on the skull's rigid parts (forehead, nose bridge and tip, eye corners, temples,
# cheekbones): jaw, lips, lids, brows, cheeks and nose wings move with expression.
RIGID_LANDMARKS = [1, 4, 5, 6, 8, 9, 10, 151, 168, 195, 197, 33, 133, 263, 362, 234, 454, 127, 356, 93, 323,
                   116, 345]


@dataclass(frozen=True)
class FaceMeasurement:
    mouth_aperture: float       # inner-lip gap at the centre / face height
    mouth_width: float          # corner-to-corner distance / face height
    eye_opening: tuple[float, float]  # (right, left) lid gap across the eye / eye width
    face_height: float          # forehead-to-chin distance, pixels


def measure(landmarks: np.ndarray) -> FaceMeasurement:
    """Shape measurements from (478, 3) landmarks in pixels, independent of head size and pose.

    Distances are taken in 3D (the tracker's x, y, z), so turning or nodding the head does
    not read as a change of expression. The lid gap is measured across the eye, along the
    face's own vertical axis (as the eye aspect ratio is): the tracker puts a lid a little
    in front of or beside the other one, and that depth or sideways offset is no opening.
    """
    lm = np.asarray(landmarks, np.float64)
    face_h = float(np.linalg.norm(lm[CHIN] - lm[FOREHEAD]))
    across = lm[263] - lm[33]  # the eye line (outer corners)
    down = lm[CHIN] - lm[FOREHEAD]
    down -= across * (down @ across) / (across @ across)
    down /= np.linalg.norm(down)
    openings = []
    for side in ("right", "left"):
        upper, lower, (outer, inner), _ = EYES[side]
        width = np.linalg.norm(lm[outer] - lm[inner])
        gap = np.abs((lm[lower[2:5]] - lm[upper[2:5]]) @ down).mean()
        openings.append(float(gap / width))
    return FaceMeasurement(
        mouth_aperture=float(np.linalg.norm(lm[14] - lm[13]) / face_h),
        mouth_width=float(np.linalg.norm(lm[291] - lm[61]) / face_h),
        eye_opening=(openings[0], openings[1]),
        face_height=face_h,
    )


def relative_rotation(reference: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in radians that turn `reference` landmarks into `landmarks`.

    Kabsch fit over the rigid landmarks, in the FaceMotion convention: + yaw turns the face
    to its own left, + pitch looks up, + roll tilts the head's top to its own left.
    """
    a = np.asarray(reference, np.float64)[RIGID_LANDMARKS]
    b = np.asarray(landmarks, np.float64)[RIGID_LANDMARKS]
    a, b = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    r = (u @ np.diag([1.0, 1.0, d]) @ vt).T  # b ≈ r @ a
    yaw = np.arctan2(-r[0, 2], r[2, 2])
    pitch = np.arctan2(r[1, 2], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.array([yaw, pitch, roll])


def portrait_yaw_roll(landmarks: np.ndarray) -> tuple[float, float]:
    """Approximate yaw and roll (radians, FaceMotion convention) of a face from one image.

    Yaw from the tracker's depth difference between the two sides of the face, roll from the
    eye line. (Pitch needs a frontal reference the tracker does not give, so it is not estimated.)
    """
    lm = np.asarray(landmarks, np.float64)
    right, left = lm[234], lm[454]
    yaw = float(np.arctan2(left[2] - right[2], left[0] - right[0]))
    eye_r, eye_l = lm[[33, 133]].mean(0), lm[[263, 362]].mean(0)
    roll = float(np.arctan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0]))
    return yaw, roll
