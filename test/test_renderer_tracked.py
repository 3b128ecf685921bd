"""The renderer obeys the motion, as a face tracker sees it, and its parts are disentangled."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from vasa_nodes.core.face_metrics import measure, relative_rotation
from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.portrait import load_portrait
from vasa_nodes.core.renderer import FaceRenderer

NEUTRAL = MotionFrame.neutral()


def posed(yaw=0.0, pitch=0.0, roll=0.0, base=NEUTRAL):
    return dataclasses.replace(base, head_rotation=np.radians([yaw, pitch, roll]).astype(np.float32))


@pytest.fixture(scope="module")
def renderer(portrait_path, fitter):
    r = FaceRenderer(load_portrait(portrait_path, 512, fitter))
    yield r
    r.close()


@pytest.fixture(scope="module")
def track(renderer, fitter):
    def run(motion, r=renderer):
        lm = fitter.landmarks(r.render(motion))
        assert lm is not None, "the tracker lost the rendered face"
        return lm
    return run


def test_jaw_open_sweep_gives_a_rising_aperture(track):
    weights = np.linspace(0.0, 1.0, 11)
    aperture = np.array([measure(track(NEUTRAL.with_blendshapes(jawOpen=float(w)))).mouth_aperture
                         for w in weights])
    assert np.corrcoef(weights, aperture)[0, 1] >= 0.95
    assert np.all(np.diff(aperture) > -0.003)  # monotonic up to tracker noise
    assert aperture[-1] - aperture[0] > 0.08


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_commanded_head_rotation_is_recovered_within_3_degrees(track, axis):
    reference = track(NEUTRAL)
    for degrees in (-20, -10, 10, 20):
        angles = [0.0, 0.0, 0.0]
        angles[axis] = degrees
        measured = np.degrees(relative_rotation(reference, track(posed(*angles))))
        assert measured == pytest.approx(angles, abs=3.0), (angles, measured)


def test_blink_shrinks_the_tracked_eye_opening(track):
    open_ = measure(track(NEUTRAL)).eye_opening
    closed = measure(track(NEUTRAL.with_blendshapes(eyeBlinkLeft=1.0, eyeBlinkRight=1.0))).eye_opening
    # A closed lid reads as a lid (smooth skin over a lash line), not as a narrowed eye.
    assert closed[0] < 0.2 * open_[0] and closed[1] < 0.2 * open_[1]
    half = measure(track(NEUTRAL.with_blendshapes(eyeBlinkLeft=0.5, eyeBlinkRight=0.5))).eye_opening
    assert closed[0] < half[0] < open_[0] and closed[1] < half[1] < open_[1]


def test_mouth_close_seals_the_lips_over_an_open_jaw(track):
    from vasa_nodes.core.evaluation import CLOSED_APERTURE

    for jaw in (0.15, 0.3, 0.5):
        sealed = measure(track(NEUTRAL.with_blendshapes(jawOpen=jaw, mouthClose=jaw))).mouth_aperture
        parted = measure(track(NEUTRAL.with_blendshapes(jawOpen=jaw))).mouth_aperture
        assert sealed < CLOSED_APERTURE < parted, (jaw, sealed, parted)


def test_pose_alone_leaves_mouth_and_eye_shapes(track):
    expression = NEUTRAL.with_blendshapes(jawOpen=0.5, mouthSmileLeft=0.5, mouthSmileRight=0.5)
    front = measure(track(expression))
    for angles in ((12, 0, 0), (0, 10, 0), (0, 0, 10)):
        turned = measure(track(posed(*angles, base=expression)))
        assert turned.mouth_aperture == pytest.approx(front.mouth_aperture, rel=0.25)
        assert turned.eye_opening == pytest.approx(front.eye_opening, abs=0.06)


def test_expression_alone_leaves_head_pose(track):
    reference = track(NEUTRAL)
    # The tracker itself reads an open jaw as a slight nod (its forehead and nose landmarks
    # shift by 2-8 px although the rendered ones do not move): up to 3.5° for jawOpen 0.5.
    for shape in ({"jawOpen": 0.5}, {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
                  {"browInnerUp": 1.0, "eyeWideLeft": 1.0, "eyeWideRight": 1.0}, {"mouthPucker": 1.0}):
        measured = np.degrees(relative_rotation(reference, track(NEUTRAL.with_blendshapes(**shape))))
        assert np.abs(measured).max() < 3.5, (shape, measured)


def test_same_motion_gives_the_same_expression_on_another_framing(tmp_path, portrait_path, fitter, track):
    # A second portrait: the photo mirrored, smaller in a wider frame, and colour-shifted.
    photo = Image.open(portrait_path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas = Image.new("RGB", (900, 700), (60, 90, 70))
    canvas.paste(photo.resize((420, 420)), (400, 200))
    other_path = tmp_path / "other.png"
    Image.fromarray((np.asarray(canvas) * [1.0, 0.9, 0.8]).astype(np.uint8)).save(other_path)
    other = FaceRenderer(load_portrait(other_path, 384, fitter))
    try:
        open_jaw = NEUTRAL.with_blendshapes(jawOpen=0.6)
        smile = NEUTRAL.with_blendshapes(mouthSmileLeft=1.0, mouthSmileRight=1.0)
        changes = []
        for run in (track, lambda m: fitter.landmarks(other.render(m))):
            rest = measure(run(NEUTRAL))
            changes.append((measure(run(open_jaw)).mouth_aperture - rest.mouth_aperture,
                            measure(run(smile)).mouth_width - rest.mouth_width))
    finally:
        other.close()
    (a_open, a_wide), (b_open, b_wide) = changes
    assert a_open > 0.05 and a_wide > 0.02
    assert b_open == pytest.approx(a_open, rel=0.2)
    assert b_wide == pytest.approx(a_wide, rel=0.3)
