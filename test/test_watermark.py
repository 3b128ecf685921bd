"""The invisible watermark on real rendered frames: invisible, found after real re-encoding
(PyAV H.264, JPEG, rescaling), carrying its payload and key, and not found on unmarked
frames or real photos."""

import io

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.portrait import load_portrait
from vasa_nodes.core.renderer import FaceRenderer
from vasa_nodes.core.watermark import (
    TAG, Payload, Watermarker, WatermarkError, detect, detect_clip, key_digest, psnr)

FRAMES = 25


@pytest.fixture(scope="module")
def unmarked(portrait_path):
    """One second of a talking face, rendered without the mark."""
    renderer = FaceRenderer(load_portrait(portrait_path, 512), watermark=None)
    try:
        frames = []
        for i in range(FRAMES):
            open_ = 0.5 * (1 + np.sin(i / 3.0))
            motion = MotionFrame.neutral(i).with_blendshapes(jawOpen=0.6 * open_, eyeBlinkLeft=float(i == 12),
                                                             eyeBlinkRight=float(i == 12))
            frames.append(renderer.render(motion))
    finally:
        renderer.close()
    return frames


@pytest.fixture(scope="module")
def marked(unmarked):
    mark = Watermarker()
    return [mark.apply(f.copy()) for f in unmarked]


def h264(frames, crf: int) -> list[np.ndarray]:
    """Encode with libx264 (yuv420p) at `crf` in memory and decode again."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_the_mark_is_invisible(unmarked, marked):
    for a, b in zip(unmarked, marked):
        assert psnr(a, b) >= 40.0
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 6


def test_every_marked_frame_carries_the_tag_and_version(marked):
    for frame in marked:
        d = detect(frame)
        assert d.found and d.crc_ok and d.tag_errors == 0
        assert d.payload == Payload() and d.payload.tag == TAG and d.payload.key == 0


def test_unmarked_frames_and_a_real_photo_are_not_found(unmarked, portrait_path):
    assert not any(detect(f).found for f in unmarked)
    assert not detect_clip(unmarked).detection.found
    photo = np.asarray(Image.open(portrait_path).convert("RGB"))
    d = detect(photo)
    assert not d.found and d.p_value > 1e-3


@pytest.mark.parametrize("crf", [28, 35])
def test_the_mark_survives_h264(marked, unmarked, crf):
    clip = detect_clip(h264(marked, crf))
    assert clip.frames == FRAMES and clip.detection.found and clip.detection.crc_ok
    assert clip.fraction >= 0.9
    assert not detect_clip(h264(unmarked, crf)).detection.found


def test_the_mark_survives_scaling_to_256_and_back(marked):
    rescaled = [cv2.resize(cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA), (512, 512),
                           interpolation=cv2.INTER_LINEAR) for f in marked]
    clip = detect_clip(rescaled)
    assert clip.detection.found and clip.fraction >= 0.9
    # and read at 256² directly
    assert detect(cv2.resize(marked[0], (256, 256), interpolation=cv2.INTER_AREA)).found


def test_the_mark_survives_jpeg_90(marked):
    for frame in marked[:5]:
        ok, data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
        assert detect(decoded).found


def crop(frame, fraction, at_x=0.5, at_y=0.5):
    h, w = frame.shape[:2]
    ch, cw = int(h * (1 - fraction)) // 2 * 2, int(w * (1 - fraction)) // 2 * 2
    y0, x0 = int((h - ch) * at_y), int((w - cw) * at_x)
    return np.ascontiguousarray(frame[y0:y0 + ch, x0:x0 + cw])


def test_a_cropped_clip_is_found_by_searching_its_place(marked, unmarked):
    cropped = h264([crop(f, 0.10, 0.3, 0.7) for f in marked], 28)
    assert not detect_clip(cropped).detection.found  # the grid no longer lines up as it stands
    clip = detect_clip(cropped, search=True)
    assert clip.detection.found and clip.alignment is not None
    assert clip.alignment.scale == pytest.approx(0.9, abs=0.01)
    assert clip.alignment.x == pytest.approx(0.1 * 0.3 * 512, abs=3)
    assert clip.alignment.y == pytest.approx(0.1 * 0.7 * 512, abs=3)
    # an off-centre 20 % crop of a single frame, as a JPEG
    ok, data = cv2.imencode(".jpg", crop(marked[7], 0.2, 1.0, 0.0)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert detect_clip([cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]], search=True).detection.found
    # the search does not invent a mark where there is none
    assert not detect_clip([crop(f, 0.10) for f in unmarked], search=True).detection.found
    assert not detect_clip(unmarked, search=True).detection.found


def test_a_key_is_carried_and_checked(unmarked):
    frame = Watermarker("robot-lab-7").apply(unmarked[3].copy())
    d = detect(frame)
    assert d.found and d.crc_ok and d.payload.key == key_digest("robot-lab-7") != 0
    assert d.payload.key != key_digest("someone-else")


def test_a_damaged_payload_fails_its_checksum():
    bits = Payload(key=key_digest("k")).bits()
    bits[45] ^= 1  # a bit of the key field
    payload, crc_ok = Payload.from_bits(bits)
    assert payload.tag == TAG and not crc_ok


def test_bad_frames_are_refused_with_a_clear_error():
    with pytest.raises(WatermarkError, match="uint8"):
        Watermarker().apply(np.zeros((64, 64, 3), np.float32))
