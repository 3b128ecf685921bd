"""vasa-bench end to end on a tiny configuration: a report with every figure, no timing thresholds."""

import json
import subprocess
import sys
from pathlib import Path

VASA_BENCH = Path(sys.prefix) / "bin" / "vasa-bench"


def test_a_quick_bench_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([str(VASA_BENCH), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(out.read_text())
    m = report["machine"]
    assert m["cores"] >= 1 and m["cpu"] and m["python"] and m["versions"]["vasa_nodes"]
    off = report["offline"]
    assert off["frames"] == 100 and off["end_to_end_fps"] > 0 and off["vasa_generate"]["fps"] > 0
    assert set(off["stages_ms_per_frame"]) == {"portrait", "features", "motion", "render_and_watermark",
                                               "encode_and_provenance"}
    live = report["live"]
    assert live["expected_frames"] == 100 and live["frame_count_ok"], live
    assert live["preceding_latency_ms"] > 0 and live["frame_latency_ms"]["p95"] >= live["frame_latency_ms"]["median"]
    nodes = {"audio_capture", "audio_encoder", "motion_generator", "avatar_control", "face_renderer"}
    assert nodes <= set(live["peak_rss_mb"]) and nodes <= set(live["cpu_percent"])
    capacity = live["capacity"]
    tries = capacity["tries"]
    assert tries[0]["audio_sent_at_fps"] == 75.0 and all(t["expected"] == 50 for t in tries)
    assert all(0 < t["frames"] <= 50 and t["fps"] > 0 for t in tries)
    assert [t["audio_sent_at_fps"] for t in tries] == [75.0, 50.0, 40.0, 30.0][:len(tries)]
    assert all(not t["kept_up"] for t in tries[:-1])
    assert (capacity["sustained_fps"] is not None) == tries[-1]["kept_up"]
    assert live["restarts_or_errors"] == []
    assert "frames/s end to end" in r.stdout and "preceding latency" in r.stdout


def test_bad_options_get_one_line():
    for args, message in [(["--speedup", "50"], "--speedup must be within 1..20, got 50.0"),
                          (["--audio", "/nonexistent.wav"], "file not found: /nonexistent.wav")]:
        r = subprocess.run([str(VASA_BENCH), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.strip() == f"vasa-bench: error: {message}", r.stderr
