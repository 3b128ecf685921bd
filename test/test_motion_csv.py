"""Motion files (Live Link Face CSV convention): reading, errors, and rendering through vasa-generate."""

import logging
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from vasa_nodes.core.blendshapes import INDEX
from vasa_nodes.core.motion import MotionFrame
from vasa_nodes.core.motion_csv import MotionFileError, read_motion_csv, write_motion_csv

VASA_GENERATE = Path(sys.prefix) / "bin" / "vasa-generate"


def write(path, text):
    path.write_text(text)
    return path


def test_reads_blendshapes_pose_and_eyes_case_insensitively(tmp_path, caplog):
    path = write(tmp_path / "m.csv",
                 "Timecode,BlendShapeCount,JawOpen,eyeBlinkLeft,HeadYaw,HeadPitch,HeadRoll,"
                 "LeftEyeYaw,RightEyeYaw,LeftEyePitch,RightEyePitch,Mood\n"
                 "00:00:00:00.000,61,0.5,1,0.1,-0.2,0.05,0.2,0.4,0,0.1,7\n"
                 "00:00:00:01.000,61,0.25,0,0,0,0,0,0,0,0,7\n")
    with caplog.at_level(logging.WARNING):
        frames = read_motion_csv(path)
    assert len(frames) == 2
    f = frames[0]
    assert f.blendshapes[INDEX["jawOpen"]] == pytest.approx(0.5)
    assert f.blendshapes[INDEX["eyeBlinkLeft"]] == pytest.approx(1.0)
    assert np.allclose(f.head_rotation, [0.1, -0.2, 0.05])
    assert np.allclose(f.gaze, [0.3, 0.05])
    assert any("Mood" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("body, message", [
    ("JawOpen,HeadYaw\n0.5,abc\n", "row 2, column HeadYaw: not a number: 'abc'"),
    ("JawOpen,HeadYaw\n0.5,0\nnan,0\n", "row 3, column JawOpen: nan is not a finite number"),
    ("JawOpen\n1.7\n", "row 2, column JawOpen: blendshape outside 0..1"),
    ("Foo,Bar\n1,2\n", "no known column"),
    ("JawOpen\n", "header only"),
    ("", "empty"),
])
def test_bad_files_name_row_and_column(tmp_path, body, message):
    with pytest.raises(MotionFileError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_motion_csv(write(tmp_path / "bad.csv", body))


def test_write_then_read_round_trips(tmp_path):
    frames = [MotionFrame.neutral(i).with_blendshapes(jawOpen=i / 10, mouthSmileLeft=0.3) for i in range(5)]
    frames[2].head_rotation[:] = [0.1, 0.2, -0.1]
    write_motion_csv(tmp_path / "out.csv", frames)
    back = read_motion_csv(tmp_path / "out.csv")
    assert all(np.allclose(a.blendshapes, b.blendshapes, atol=1e-4) for a, b in zip(frames, back))
    assert np.allclose(back[2].head_rotation, [0.1, 0.2, -0.1], atol=1e-4)


def test_vasa_generate_renders_a_motion_file_with_its_frame_count(tmp_path, portrait_path):
    rows = ["JawOpen,HeadYaw"] + [f"{0.5 + 0.5 * np.sin(i / 3):.3f},{0.2 * np.sin(i / 7):.3f}" for i in range(30)]
    csv_path = write(tmp_path / "m.csv", "\n".join(rows) + "\n")
    out = tmp_path / "m.mp4"
    r = subprocess.run([str(VASA_GENERATE), "--portrait", str(portrait_path), "--motion", str(csv_path),
                        "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 0
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 30
    assert np.abs(frames[0].astype(int) - frames[10].astype(int)).mean() > 1.0


def test_vasa_generate_reports_a_bad_motion_file(tmp_path, portrait_path):
    csv_path = write(tmp_path / "m.csv", "JawOpen\n0.1\nzero\n")
    r = subprocess.run([str(VASA_GENERATE), "--portrait", str(portrait_path), "--motion", str(csv_path),
                        "--out", str(tmp_path / "m.mp4")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "vasa-generate: error: m.csv: row 3, column JawOpen: not a number: 'zero'"


def test_sheet_is_a_labelled_grid_of_20_views(tmp_path, portrait_path):
    from PIL import Image

    out = tmp_path / "sheet.png"
    r = subprocess.run([str(VASA_GENERATE), "--portrait", str(portrait_path), "--sheet", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    grid = np.asarray(Image.open(out))
    assert grid.shape == (4 * 256, 5 * 256, 3)
    cells = [grid[r * 256 + 30:(r + 1) * 256, c * 256:(c + 1) * 256] for r in range(4) for c in range(5)]
    # Every view differs visibly from the neutral one (gazes change only a few pixels, strongly).
    for cell in cells[1:]:
        d = np.abs(cell.astype(int) - cells[0])
        assert np.percentile(d.max(axis=2), 99.9) > 30
