"""Portrait ingest with the real MediaPipe models: formats, cropping, errors."""

import logging

import numpy as np
import pytest
from PIL import Image

from vasa_nodes.core.portrait import PortraitError, load_portrait


@pytest.fixture(scope="module")
def photo(portrait_path):
    return Image.open(portrait_path).convert("RGB")


def test_photo_gives_square_crop_and_478_landmarks(portrait_path, fitter):
    p = load_portrait(portrait_path, 512, fitter)
    assert p.image.shape == (512, 512, 3) and p.image.dtype == np.uint8
    assert p.landmarks.shape == (478, 3)
    assert np.all((p.landmarks[:, :2] > 0) & (p.landmarks[:, :2] < 512))
    # The face is centred and fills a good part of the frame.
    x0, y0 = p.landmarks[:, :2].min(0)
    x1, y1 = p.landmarks[:, :2].max(0)
    assert 0.3 < (x1 - x0) / 512 < 0.7
    assert abs((x0 + x1) / 2 - 256) < 60


@pytest.mark.parametrize("size", [256, 1024])
def test_output_size_is_configurable(portrait_path, fitter, size):
    assert load_portrait(portrait_path, size, fitter).image.shape == (size, size, 3)


@pytest.mark.parametrize("width, height, photo_px", [(1920, 1080, 300), (4000, 3000, 400)])
def test_a_small_face_in_a_large_picture_is_found(tmp_path, photo, fitter, width, height, photo_px):
    # The face is 5-10 % of the picture's height: the detector, which sees 192 px, misses it
    # in the whole picture (and fires on the suit's badge instead).
    canvas = Image.new("RGB", (width, height), (40, 60, 90))
    canvas.paste(photo.resize((photo_px, photo_px)), (width // 2, height // 3))
    boxes = fitter.detect(np.asarray(canvas))
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    # Where the photo's face is (its box in the 512 px photo is about x 174-278, y 68-172).
    k = photo_px / 512
    assert width // 2 + 150 * k < (x0 + x1) / 2 < width // 2 + 300 * k
    assert height // 3 + 50 * k < (y0 + y1) / 2 < height // 3 + 190 * k
    path = tmp_path / "crowd.jpg"
    canvas.save(path)
    assert load_portrait(path, 256, fitter).landmarks.shape == (478, 3)


@pytest.mark.parametrize("variant", ["rgba", "grey", "grey16", "small", "tiny_rgba", "huge", "wide"])
def test_image_variants_load(tmp_path, photo, fitter, variant):
    path = tmp_path / f"{variant}.png"
    if variant == "rgba":
        im = photo.convert("RGBA")
        im.putalpha(Image.fromarray(np.full((512, 512), 200, np.uint8)))
    elif variant == "grey":
        im = photo.convert("L")
    elif variant == "grey16":
        im = Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257)
    elif variant == "small":
        im = photo.resize((220, 220))
    elif variant == "tiny_rgba":
        im = photo.resize((220, 220)).convert("RGBA")
        path = tmp_path / "tiny.png"
    elif variant == "huge":
        im = photo.resize((3500, 3500), Image.Resampling.BICUBIC)
        path = tmp_path / "huge.jpg"
    else:
        im = Image.new("RGB", (1400, 600), (90, 120, 150))
        im.paste(photo.resize((600, 600)), (700, 0))
    im.save(path)
    p = load_portrait(path, 512, fitter)
    assert p.image.shape == (512, 512, 3)
    assert p.landmarks.shape == (478, 3)


def test_several_faces_warn_and_use_the_largest(tmp_path, photo, fitter, caplog):
    canvas = Image.new("RGB", (1200, 700), (128, 128, 128))
    canvas.paste(photo.resize((450, 450)), (20, 200))
    canvas.paste(photo.resize((650, 650)), (520, 20))
    path = tmp_path / "two.png"
    canvas.save(path)
    with caplog.at_level(logging.WARNING):
        p = load_portrait(path, 512, fitter)
    assert any("2 faces" in r.getMessage() and "largest" in r.getMessage() for r in caplog.records)
    # The crop of the large face is sharper than an upscaled small one would be.
    assert np.abs(np.diff(p.image.astype(float), axis=1)).mean() > 3.0


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "not found"),
    (lambda p: p.write_text("definitely not a picture"), "not an image"),
    (lambda p: Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), np.uint8)).save(p, "PNG"),
     "no face"),
    (lambda p: Image.new("RGB", (300, 300), (200, 180, 160)).save(p, "PNG"), "no face"),
])
def test_bad_portraits_give_one_line_reasons(tmp_path, fitter, make, message):
    path = tmp_path / "portrait.png"
    make(path)
    with pytest.raises(PortraitError) as err:
        load_portrait(path, 512, fitter)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_portraits_own_head_turn_is_estimated(tmp_path, portrait_path, fitter):
    import dataclasses

    from vasa_nodes.core.motion import MotionFrame
    from vasa_nodes.core.renderer import FaceRenderer

    frontal = load_portrait(portrait_path, 512, fitter)
    assert abs(np.degrees(frontal.yaw_roll[0])) < 5
    renderer = FaceRenderer(frontal)
    try:
        turned = renderer.render(dataclasses.replace(MotionFrame.neutral(),
                                                     head_rotation=np.radians([15, 0, 8]).astype(np.float32)))
    finally:
        renderer.close()
    Image.fromarray(turned).save(tmp_path / "turned.png")
    yaw, roll = np.degrees(load_portrait(tmp_path / "turned.png", 512, fitter).yaw_roll)
    assert yaw == pytest.approx(15, abs=4)
    assert roll - np.degrees(frontal.yaw_roll[1]) == pytest.approx(8, abs=3)
