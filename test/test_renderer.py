"""The face rig and OpenGL renderer (real EGL context, Mesa llvmpipe or a GPU)."""

import dataclasses

import numpy as np
import pytest

from vasa_nodes.core.face_rig import EYES, FACE_OVAL, LIPS_OUTER_LOWER, LIPS_OUTER_UPPER, NOSE_TIP
from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.portrait import load_portrait
from vasa_nodes.core.renderer import FaceRenderer


@pytest.fixture(scope="module")
def renderer(portrait_path):
    r = FaceRenderer(load_portrait(portrait_path, 512))
    yield r
    r.close()


def box(points, pad):
    x0, y0 = np.floor(points[:, :2].min(0) - pad).astype(int)
    x1, y1 = np.ceil(points[:, :2].max(0) + pad).astype(int)
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def regions(renderer):
    lm = renderer.portrait.landmarks
    mouth = box(lm[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER], 4)
    eyes = [box(lm[upper + lower], 3) for upper, lower, _, _ in EYES.values()]
    face = box(lm[:468], 0)
    return mouth, eyes, face


def diff(a, b, region):
    return np.abs(a[region].astype(float) - b[region].astype(float)).mean()


def psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_the_portraits_own_expression_reproduces_the_portrait(renderer):
    out = renderer.render(renderer.rig.own_expression())
    _, _, face = regions(renderer)
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    assert psnr(out[face], renderer.portrait.image[face]) >= 35.0


def test_neutral_motion_closes_a_portraits_open_mouth(renderer):
    # The sample photo smiles with parted lips and visible teeth.
    assert renderer.rig.own_jaw_open > 0.1
    mesh = renderer.rig.pose(MotionFrame.neutral())
    upper = mesh.mouth_loop[mesh.mouth_upper]
    lower = mesh.mouth_loop[~mesh.mouth_upper][1:-1]
    gap = (lower[:, 1].mean() - upper[:, 1].mean()) / renderer.rig.face_h
    assert gap < 0.01


def test_jaw_open_moves_the_mouth_and_not_the_eyes(renderer):
    neutral = renderer.render(MotionFrame.neutral())
    open_ = renderer.render(MotionFrame.neutral().with_blendshapes(jawOpen=1.0))
    mouth, eyes, _ = regions(renderer)
    assert diff(open_, neutral, mouth) > 15.0
    for eye in eyes:
        assert diff(open_, neutral, eye) < 0.5


def test_jaw_opening_grows_monotonically(renderer):
    rig = renderer.rig
    gaps = []
    for w in np.linspace(0, 1, 6):
        mesh = rig.pose(MotionFrame.neutral().with_blendshapes(jawOpen=float(w)))
        upper = mesh.mouth_loop[mesh.mouth_upper][:, 1].mean()
        lower = mesh.mouth_loop[~mesh.mouth_upper][1:-1, 1].mean()
        gaps.append(lower - upper)
    assert np.all(np.diff(gaps) > 0)


def test_blink_closes_the_eyes_and_leaves_the_mouth(renderer):
    neutral = renderer.render(MotionFrame.neutral())
    blink = renderer.render(MotionFrame.neutral().with_blendshapes(eyeBlinkLeft=1.0, eyeBlinkRight=1.0))
    mouth, eyes, _ = regions(renderer)
    for eye in eyes:
        assert diff(blink, neutral, eye) > 8.0
    assert diff(blink, neutral, mouth) < 0.5
    # Geometrically: upper lid meets lower lid.
    mesh = renderer.rig.pose(MotionFrame.neutral().with_blendshapes(eyeBlinkLeft=1.0))
    vid = renderer.rig._vertex_of
    upper, lower, _, _ = EYES["left"]
    gap = mesh.positions[[vid[i] for i in lower], 1].mean() - mesh.positions[[vid[i] for i in upper], 1].mean()
    rest = renderer.rig.rest
    rest_gap = rest[[vid[i] for i in lower], 1].mean() - rest[[vid[i] for i in upper], 1].mean()
    assert gap < 0.2 * rest_gap


def test_head_pose_directions(renderer):
    nose = renderer.rig._vertex_of[NOSE_TIP]
    rest = renderer.rig.pose(MotionFrame.neutral()).positions[nose]

    def nose_at(**kw):
        m = dataclasses.replace(MotionFrame.neutral(), **kw)
        return renderer.rig.pose(m).positions[nose]

    assert nose_at(head_rotation=np.array([0.3, 0, 0], np.float32))[0] > rest[0] + 10  # yaw+: face's own left
    assert nose_at(head_rotation=np.array([0, 0.3, 0], np.float32))[1] < rest[1] - 10  # pitch+: up
    assert nose_at(head_scale=1.3)[1] != pytest.approx(rest[1], abs=1.0)
    # The frame border stays put: no holes or smears at the image edge.
    out = renderer.render(dataclasses.replace(MotionFrame.neutral(), head_rotation=np.array([0.3, 0.2, 0.15],
                                                                                             np.float32)))
    neutral = renderer.render(MotionFrame.neutral())
    for edge in (np.s_[:3], np.s_[-3:], np.s_[:, :3], np.s_[:, -3:]):
        assert np.abs(out[edge].astype(int) - neutral[edge]).mean() < 2.0


def test_a_turned_head_keeps_its_outline_smooth(renderer):
    """Landmarks at the side of the face nearly coincide in the photo: turning that side
    towards the camera must not stretch the thin triangles there (hair and background at
    the outline drawn as spikes across the cheek)."""
    rig = renderer.rig
    tri = rig.triangles
    at_outline = (rig.follow[tri] == 1.0).all(axis=1) & np.isin(tri, [rig._vertex_of[i] for i in FACE_OVAL]).any(axis=1)

    def areas(p):
        a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
        return np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]) / 2

    rest = areas(rig.rest.astype(float))
    for yaw in (-20, -10, 10, 20):
        m = dataclasses.replace(MotionFrame.neutral(), head_rotation=np.radians([yaw, 0, 0]).astype(np.float32))
        stretch = areas(rig.pose(m).positions.astype(float))[at_outline] / np.maximum(rest[at_outline], 1e-3)
        assert stretch.max() < 3.0, (yaw, np.sort(stretch)[-3:])


def iris_centre(image, renderer, side):
    """Darkness-weighted centroid of the eye opening: where the iris is."""
    poly = renderer.rig.eye_polygon(side)
    rows, cols = box(poly, 0)
    luma = image[rows, cols].astype(float).mean(2)
    w = np.clip(200.0 - luma, 0, None) ** 3
    yy, xx = np.mgrid[rows, cols]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


def test_gaze_moves_the_irises_inside_the_eyes(renderer):
    neutral = renderer.render(MotionFrame.neutral())
    mouth, _, _ = regions(renderer)
    for gaze, axis, sign in (((0.4, 0.0), 0, 1), ((-0.4, 0.0), 0, -1), ((0.0, 0.35), 1, -1), ((0.0, -0.35), 1, 1)):
        out = renderer.render(dataclasses.replace(MotionFrame.neutral(), gaze=np.array(gaze, np.float32)))
        for side in ("left", "right"):
            shift = iris_centre(out, renderer, side) - iris_centre(neutral, renderer, side)
            assert sign * shift[axis] > 0.7, (gaze, side, shift)
        # Only the eyes change.
        assert diff(out, neutral, mouth) < 0.1
