"""vasa-avatar supervises its nodes: kill -9 of motion_generator mid-speech is survived (the
renderer shows a resting face, the node alone is restarted, lip sync comes back), a start-up
error stops the graph, and the nodes go when vasa-avatar itself is killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from sensor_msgs.msg import Image

from vasa_nodes.msg import FaceMotion
from vasa_nodes.nodes.common import IMAGE_QOS, STREAM_QOS

VASA_AVATAR = Path(sys.prefix) / "bin" / "vasa-avatar"


def children(pid: int) -> dict[str, int]:
    """Node name -> pid of the node processes whose parent is `pid`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        module = next((a.decode() for a in cmdline if a.startswith(b"vasa_nodes.nodes.")), None)
        if ppid == pid and module:
            found[module.rsplit(".", 1)[1]] = int(entry)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_motion_generator_is_restarted_alone_while_the_face_rests(tmp_path, portrait_path, speech_wav):
    wav, _ = speech_wav
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "avatar.yaml").read_text())
    config["/**/audio_capture"]["ros__parameters"]["start_delay_s"] = 5.0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    rclpy.init()
    node = rclpy.create_node("supervision_test")
    images, motion = [], []
    node.create_subscription(Image, "/vasa/image", lambda m: images.append(time.monotonic()), IMAGE_QOS)
    node.create_subscription(FaceMotion, "/vasa/face_motion",
                             lambda m: motion.append((time.monotonic(), m.voice_activity)), STREAM_QOS)
    proc = subprocess.Popen([str(VASA_AVATAR), "--portrait", str(portrait_path), "--audio", str(wav), "--loop",
                             "--config", str(tmp_path / "config.yaml")], stderr=subprocess.PIPE, text=True)
    log: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: log.extend((time.monotonic(), line)
                                                        for line in iter(proc.stderr.readline, "")), daemon=True)
    reader.start()

    def spin_until(pred, timeout):
        end = time.monotonic() + timeout
        while not pred() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
            assert proc.poll() is None, "".join(line for _, line in log)[-3000:]
        return pred()

    try:
        # Wait for speech to move the lips, then kill motion_generator in the middle of it.
        assert spin_until(lambda: images and any(v > 0.5 for _, v in motion), 90), "no speech frames"
        before = children(proc.pid)
        assert set(before) == {"audio_capture", "audio_encoder", "motion_generator", "avatar_control",
                               "face_renderer", "audio_player"}
        os.kill(before["motion_generator"], signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()

        def restarted():
            return [t for t, line in log if "motion_generator was killed by SIGKILL; restarting it" in line]

        def back():
            return [t for t, _ in motion if t > killed_at + 0.3 and restarted() and t > restarted()[0]]

        def voiced_back():
            return [t for t, v in motion if v > 0.5 and back() and t >= back()[0]]

        assert spin_until(lambda: voiced_back(), 60), "".join(line for _, line in log)[-3000:]
        line = next(line for _, line in log if "restarting it in" in line)
        delay = float(line.split("restarting it in ")[1].split()[0])
        restart_at, first_motion, first_voiced = restarted()[0] + delay, back()[0], voiced_back()[0]
        after = children(proc.pid)
        # When face_renderer had motion again, from its log line's stamp (wall clock).
        # (none if the new process was quicker than the resting face's 0.5 s timeout)
        renderer_back = next((float(m.group(1)) for t, line in log if t > killed_at
                              if (m := re.search(r"\[(\d+\.\d+)\] \[face_renderer\]: FaceMotion is back", line))),
                             None)
        back_s = "n/a" if renderer_back is None else f"{renderer_back - killed_wall - (restart_at - killed_at):.2f}"
        print(f"\nrestart (new process, {restart_at - killed_at:.2f} s after the kill) -> face_renderer has "
              f"FaceMotion again {back_s} s; this listener: "
              f"first FaceMotion {first_motion - restart_at:.2f} s, first voiced frame {first_voiced - restart_at:.2f} s")

        # The restart is logged once, and no other node restarted.
        assert len(restarted()) == 1 and sum("restarting" in line for _, line in log) == 1
        assert after["motion_generator"] != before["motion_generator"]
        assert {n: p for n, p in after.items() if n != "motion_generator"} == \
               {n: p for n, p in before.items() if n != "motion_generator"}
        # While it was down, the renderer kept showing a (resting) face at the frame rate.
        down = [t for t in images if killed_at + 0.7 < t < first_motion]
        assert len(down) >= 0.7 * 25 * (first_motion - killed_at - 0.7), (len(down), first_motion - killed_at)
        # (the longest wait: the 0.5 s before the resting face takes over, plus a busy machine's delays)
        assert np.max(np.diff([t for t in images if killed_at < t < first_motion + 1.0])) < 1.0

        # vasa-avatar itself killed: its nodes stop too (SIGTERM from the kernel), none is left behind.
        nodes = list(after.values())
        proc.kill()
        proc.wait(timeout=10)
        end = time.monotonic() + 30
        while any(alive(p) for p in nodes) and time.monotonic() < end:
            time.sleep(0.1)
        assert not any(alive(p) for p in nodes)
    finally:
        for p in children(proc.pid).values():
            os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=5)
        node.destroy_node()
        rclpy.shutdown()
    assert "Traceback" not in "".join(line for _, line in log)


def test_a_start_up_error_stops_the_graph_without_restarts(tmp_path):
    import cv2

    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((256, 256, 3), 128, np.uint8))
    r = subprocess.run([str(VASA_AVATAR), "--portrait", str(wall)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "ERROR" in line or "error:" in line]
    assert any("[face_renderer]" in line and "no face found" in line for line in errors), r.stderr
    assert errors[-1] == "vasa-avatar: error: face_renderer could not start (exit code 78); stopping the graph"
    assert "restarting" not in r.stderr and "Traceback" not in r.stderr
