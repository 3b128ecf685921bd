"""vasa-bench: how fast vasa_nodes runs on this machine, in one command.

Measures, on the shipped sample portrait and speech (or --portrait / --audio):
- offline: portrait + speech -> mp4 at 512² end to end (features, motion, rendering with the
  watermark, H.264 + AAC encoding, provenance), its stages one by one, and the wall clock
  of a `vasa-generate` run on the same speech;
- live: the graph started by `vasa-avatar`, the speech streamed in real time in 20 ms chunks
  on /vasa/audio_in: preceding latency (first chunk in -> first frame of the speech out),
  per-frame latency (each frame's arrival after the end of its audio: median, p95), frame
  count against duration x 25, the sound-vs-picture offset on /vasa/audio_out, CPU % and
  peak RSS per node and RSS growth from minute 1 to the end (runs of a minute or more);
- capacity: a second stream sent faster than real time (--speedup, then slower steps until
  one is kept up): the frames/s the graph sustains.

Prints a short table and writes everything as JSON (--out). Figures depend on the machine
and its load: the report states the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import __version__

PROG = "vasa-bench"
FPS = 25
CHUNK = 320  # 20 ms at 16 kHz
SAMPLES = Path(sys.prefix) / "share" / "vasa_nodes" / "samples"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Measure offline and live speed of vasa_nodes on this machine.")
    p.add_argument("--portrait", default=str(SAMPLES / "astronaut.png"), metavar="IMG")
    p.add_argument("--audio", default=str(SAMPLES / "speech_en.wav"), metavar="SPEECH",
                   help="speech, repeated to the lengths needed (default: the shipped sample)")
    p.add_argument("--offline-seconds", type=float, default=60.0, metavar="S",
                   help="length of the offline clip (default 60)")
    p.add_argument("--live-seconds", type=float, default=20.0, metavar="S",
                   help="length of the live real-time stream (default 20; 600 for the ten-minute run)")
    p.add_argument("--speedup", type=float, default=3.0, metavar="X",
                   help="capacity run: audio sent X times faster than real time (default 3)")
    p.add_argument("--capacity-seconds", type=float, default=10.0, metavar="S",
                   help="audio length of the capacity run (default 10; 0 skips it)")
    p.add_argument("--skip", choices=("offline", "live"), action="append", default=[],
                   help="leave out a part (repeatable)")
    p.add_argument("--quick", action="store_true", help="a short run of everything (for checking the command)")
    p.add_argument("--out", metavar="REPORT.json", help="write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.offline_seconds, args.live_seconds, args.capacity_seconds = 4.0, 4.0, 2.0
    for name in ("offline_seconds", "live_seconds"):
        if getattr(args, name) < 1.0:
            return _fail(f"--{name.replace('_', '-')} must be at least 1")
    if not 1.0 <= args.speedup <= 20.0:
        return _fail(f"--speedup must be within 1..20, got {args.speedup}")
    for path in (args.portrait, args.audio):
        if not Path(path).is_file():
            return _fail(f"file not found: {path}")
    from ..core.audio import AudioError, load_audio  # noqa: PLC0415

    try:
        speech = load_audio(args.audio).samples
    except AudioError as exc:
        return _fail(str(exc))
    report: dict = {"machine": machine(), "settings": {
        "portrait": args.portrait, "audio": args.audio, "size": 512, "fps": FPS,
        "offline_seconds": args.offline_seconds, "live_seconds": args.live_seconds,
        "speedup": args.speedup, "capacity_seconds": args.capacity_seconds}}
    if "offline" not in args.skip:
        report["offline"] = offline(args.portrait, speech, args.offline_seconds, args.audio)
    if "live" not in args.skip:
        report["live"] = live(args.portrait, speech, args.live_seconds, args.speedup, args.capacity_seconds)
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def repeat_to(samples: np.ndarray, seconds: float, rate: int = 16000) -> np.ndarray:
    n = int(round(seconds * rate))
    return np.tile(samples, int(np.ceil(n / len(samples))))[:n].astype(np.float32)


# -- the machine --------------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"vasa_nodes": __version__}
    for module in ("numpy", "onnxruntime", "av", "cv2", "moderngl"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing module is reported as such
            versions[module] = None
    mem = None
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_mb": mem,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": versions}


# -- offline ------------------------------------------------------------------------------

def offline(portrait_path: str, speech: np.ndarray, seconds: float, audio_path: str) -> dict:
    from ..core.audio import Audio  # noqa: PLC0415
    from ..core.features import compute_features  # noqa: PLC0415
    from ..core.pipeline import (  # noqa: PLC0415
        GenerateSettings, model_files, motion_for_audio, render_frames, write_video)
    from ..core.portrait import load_portrait  # noqa: PLC0415
    from ..core.provenance import statement  # noqa: PLC0415
    from ..core.renderer import FaceRenderer  # noqa: PLC0415
    from ..core.video import VideoWriter  # noqa: PLC0415
    from ..core.watermark import DEFAULT_WATERMARK  # noqa: PLC0415

    audio = Audio(repeat_to(speech, seconds))
    settings = GenerateSettings()
    out: dict = {"audio_seconds": seconds}
    with tempfile.TemporaryDirectory() as tmp:
        # end to end, as vasa-generate runs it (portrait loaded, motion, render + encode)
        start = time.perf_counter()
        portrait = load_portrait(portrait_path, 512)
        loaded = time.perf_counter()
        motion = motion_for_audio(audio, settings)
        moved = time.perf_counter()
        frames = write_video(portrait, motion, audio, str(Path(tmp) / "e2e.mp4"), FPS,
                             provenance=statement(model_files(settings), DEFAULT_WATERMARK))
        end = time.perf_counter()
        out["frames"] = frames
        out["end_to_end_fps"] = round(frames / (end - start), 1)
        out["end_to_end_s"] = round(end - start, 2)
        # stages one by one
        t = time.perf_counter()
        compute_features(audio.samples, FPS)
        features_s = time.perf_counter() - t
        renderer = FaceRenderer(portrait)
        try:
            t = time.perf_counter()
            images = [image.copy() for image in render_frames(renderer, motion)]
            render_s = time.perf_counter() - t
        finally:
            renderer.close()
        t = time.perf_counter()
        with VideoWriter(str(Path(tmp) / "encode.mp4"), 512, FPS, with_audio=True,
                         provenance=statement(watermark=DEFAULT_WATERMARK)) as writer:
            writer.write_audio(audio.samples)
            for image in images:
                writer.write_frame(image)
        encode_s = time.perf_counter() - t
        out["stages_ms_per_frame"] = {
            "portrait": round(1000 * (loaded - start) / frames, 3),
            "features": round(1000 * features_s / frames, 3),
            "motion": round(1000 * max(0.0, (moved - loaded) - features_s) / frames, 3),
            "render_and_watermark": round(1000 * render_s / frames, 3),
            "encode_and_provenance": round(1000 * encode_s / frames, 3),
        }
        # the command's wall clock, start-up included
        wav = Path(tmp) / "speech.wav"
        import soundfile  # noqa: PLC0415

        soundfile.write(wav, audio.samples, 16000)
        t = time.perf_counter()
        run = subprocess.run([str(Path(sys.prefix) / "bin" / "vasa-generate"), "--portrait", portrait_path,
                              "--audio", str(wav), "--out", str(Path(tmp) / "cli.mp4"), "--quiet"],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t
        out["vasa_generate"] = ({"wall_s": round(wall, 2), "fps": round(frames / wall, 1)} if run.returncode == 0
                                else {"error": run.stderr.strip().splitlines()[-1:]})
    return out


# -- live ---------------------------------------------------------------------------------

class _Procs:
    """CPU time and memory of the node processes vasa-avatar started (from /proc)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, parent: int):
        self.parent = parent
        self.nodes: dict[str, int] = {}

    def discover(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid != self.parent:
                    continue
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            for part in cmd:
                if part.startswith(b"vasa_nodes.nodes."):
                    self.nodes[part.decode().rsplit(".", 1)[1]] = int(entry.name)

    def cpu_s(self) -> dict[str, float]:
        out = {}
        for name, pid in self.nodes.items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[name] = (int(fields[11]) + int(fields[12])) / self.TICK
            except (OSError, ValueError, IndexError):
                pass
        return out

    def memory_mb(self, key: str) -> dict[str, float]:
        out = {}
        for name, pid in self.nodes.items():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        out[name] = int(line.split()[1]) / 1024
            except (OSError, ValueError):
                pass
        return out


def live(portrait_path: str, speech: np.ndarray, seconds: float, speedup: float, capacity_seconds: float) -> dict:
    import rclpy  # noqa: PLC0415
    from sensor_msgs.msg import Image  # noqa: PLC0415

    from ..msg import AudioChunk  # noqa: PLC0415
    from ..nodes.common import IMAGE_QOS, STREAM_QOS, serialized_stamp_ns, to_ns, to_time  # noqa: PLC0415

    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    log = tempfile.TemporaryFile("w+")  # the graph's log (a pipe nobody reads during the run could fill and stall it)
    graph = subprocess.Popen([str(Path(sys.prefix) / "bin" / "vasa-avatar"), "--portrait", portrait_path,
                              "--size", "512", "--log-level", "warn"], stdout=subprocess.DEVNULL,
                             stderr=log, text=True)
    procs = _Procs(graph.pid)
    rclpy.init()
    node = rclpy.create_node("vasa_bench_probe")
    images: dict[int, int] = {}
    sound: list[tuple[int, int]] = []  # (stamp, arrival) of /vasa/audio_out chunks
    # The probe reads each image's stamp from its serialized bytes: deserializing 0.8 MB frames
    # would take CPU from the graph it measures.
    node.create_subscription(Image, "/vasa/image",
                             lambda data: images.setdefault(serialized_stamp_ns(data), time.time_ns()), IMAGE_QOS,
                             raw=True)
    node.create_subscription(AudioChunk, "/vasa/audio_out",
                             lambda m: sound.append((to_ns(m.header.stamp), time.time_ns())), STREAM_QOS)
    pub = node.create_publisher(AudioChunk, "/vasa/audio_in", STREAM_QOS)
    out: dict = {"audio_seconds": seconds}
    try:
        deadline = time.monotonic() + 90
        while not images and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not images:
            raise RuntimeError("no images from the graph within 90 s")
        procs.discover()
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            rclpy.spin_once(node, timeout_sec=0.05)
        rss_samples: list[tuple[float, dict]] = []
        cpu0, wall0 = procs.cpu_s(), time.monotonic()
        t0, first_in = stream(node, pub, AudioChunk, to_time, repeat_to(speech, seconds), 1.0, rss_samples, procs)
        cpu1, wall1 = procs.cpu_s(), time.monotonic()
        drain(node, 3.0)
        out.update(latencies(images, t0, first_in, seconds))
        out.update(sound_offset(sound, images, t0, seconds))
        out["cpu_percent"] = {n: round(100 * (cpu1[n] - cpu0.get(n, 0.0)) / (wall1 - wall0), 1) for n in cpu1}
        out["peak_rss_mb"] = {n: round(v, 1) for n, v in procs.memory_mb("VmHWM").items()}
        if seconds >= 120 and rss_samples:
            at_1 = min(rss_samples, key=lambda s: abs(s[0] - 60.0))[1]
            last = rss_samples[-1][1]
            out["rss_growth_percent_from_minute_1"] = {n: round(100 * (last[n] - at_1[n]) / at_1[n], 2)
                                                       for n in last if n in at_1}
        if capacity_seconds > 0:
            out["capacity"] = capacity(node, pub, AudioChunk, to_time, repeat_to(speech, capacity_seconds),
                                       speedup, images, procs, not_before=t0 + int(seconds * 1e9))
        out["restarts_or_errors"] = None
    finally:
        node.destroy_node()
        rclpy.shutdown()
        graph.send_signal(signal.SIGINT)
        try:
            graph.wait(timeout=30)
        except subprocess.TimeoutExpired:
            graph.kill()
            graph.wait()
        log.seek(0)
        err = log.read()
        log.close()
    problems = [line for line in (err or "").splitlines() if "[ERROR]" in line or "restart" in line.lower()]
    out["restarts_or_errors"] = problems[:20]
    return out


CAPACITY_STEPS = (3.0, 2.0, 1.6, 1.2)
"""Speed-ups tried in turn, from --speedup down, until the graph keeps up with one."""


def capacity(node, pub, msg_type, to_time, clip: np.ndarray, speedup: float, images: dict[int, int],
             procs: _Procs, not_before: int) -> dict:
    """Streams `clip` faster than real time, at `speedup` and then at each lower CAPACITY_STEPS
    speed-up until the graph keeps up: every frame of the stream delivered (± 1) at ≥ 95 % of
    the rate the audio asks for. A graph that falls behind loses queued input and fills the rest
    of the stream's time with its idle face at 25 frames/s, so frames alone would mislead;
    the rate over the stream's frames tells. `not_before`: the end of the stamps used so far.
    `images` (stamp -> arrival, filled by the probe) is emptied before each try, so call this
    after the live figures are taken."""
    import rclpy  # noqa: PLC0415

    seconds = len(clip) / 16000
    expected = int(np.ceil(seconds * FPS - 1e-9))
    tries = []
    for x in [speedup] + [step for step in CAPACITY_STEPS if step < speedup]:
        # The previous stream's stamps (ahead of the clock at a speed-up) must be in the past,
        # so that its frames and the idle ones after them lie outside this stream's window.
        while time.time_ns() < not_before + 1_000_000_000:
            rclpy.spin_once(node, timeout_sec=0.05)
        # Only this stream's frames: the face resting while the motion's clock, run ahead by the
        # last stream, was waiting for the present, may have been stamped inside this window.
        images.clear()
        t1, _ = stream(node, pub, msg_type, to_time, clip, x, [], procs)
        window_end = t1 + int(seconds * 1e9)
        not_before = window_end
        last = t1 + (expected - 1) * 1_000_000_000 // FPS
        deadline = time.monotonic() + seconds + 3.0
        while time.monotonic() < deadline and not any(s >= last for s in images):
            rclpy.spin_once(node, timeout_sec=0.05)
        drain(node, 0.5)
        arrived = sorted(a for s, a in images.items() if t1 - 1 <= s < window_end)
        rate = (len(arrived) - 1) / ((arrived[-1] - arrived[0]) / 1e9) if len(arrived) > 1 else 0.0
        tries.append({"audio_sent_at_fps": round(FPS * x, 1), "frames": len(arrived), "expected": expected,
                      "fps": round(rate, 1), "kept_up": len(arrived) >= expected - 1 and rate >= 0.95 * FPS * x})
        if tries[-1]["kept_up"]:
            break
    kept = next((t for t in tries if t["kept_up"]), None)
    return {"sustained_fps": kept["fps"] if kept else None,
            "kept_up_with_audio_at_fps": kept["audio_sent_at_fps"] if kept else None, "tries": tries}


def stream(node, pub, msg_type, to_time, audio: np.ndarray, speedup: float, rss_samples: list, procs: _Procs):
    """Publish `audio` as one stream in 20 ms chunks, `speedup` times real time, each chunk
    stamped with the presentation time of its first sample. Returns (the stream's stamp t0,
    the wall time the first chunk went out), both ns."""
    import rclpy  # noqa: PLC0415

    t0 = time.time_ns()
    first_out = None
    step = CHUNK / 16000 / speedup * 1e9
    next_sample = time.monotonic()
    for k, offset in enumerate(range(0, len(audio), CHUNK)):
        due = t0 + int(k * step)
        while time.time_ns() < due:
            rclpy.spin_once(node, timeout_sec=max(0.0, (due - time.time_ns()) / 1e9))
        msg = msg_type(sample_rate=16000, sample_offset=offset, samples=audio[offset:offset + CHUNK],
                       end_of_stream=offset + CHUNK >= len(audio))
        msg.header.stamp = to_time(t0 + offset * 1_000_000_000 // 16000)
        pub.publish(msg)
        if first_out is None:
            first_out = time.time_ns()
        if time.monotonic() >= next_sample:
            rss_samples.append(((time.time_ns() - t0) / 1e9, procs.memory_mb("VmRSS")))
            next_sample += 5.0
    return t0, first_out


def drain(node, seconds: float) -> None:
    import rclpy  # noqa: PLC0415

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def latencies(images: dict[int, int], t0: int, first_in: int, seconds: float) -> dict:
    period = 1e9 / FPS
    expected = int(np.ceil(seconds * FPS - 1e-9))
    stamps = sorted(s for s in images if t0 - 1e5 <= s < t0 + int(seconds * 1e9))
    lat = [(images[s] - (s + period)) / 1e6 for s in stamps]
    return {
        "frames": len(stamps), "expected_frames": expected, "frame_count_ok": abs(len(stamps) - expected) <= 1,
        "preceding_latency_ms": round((images[stamps[0]] - first_in) / 1e6, 1) if stamps else None,
        "frame_latency_ms": ({"median": round(float(np.median(lat)), 1), "p95": round(float(np.percentile(lat, 95)), 1),
                              "max": round(float(np.max(lat)), 1)} if lat else None),
    }


def sound_offset(sound: list[tuple[int, int]], images: dict[int, int], t0: int, seconds: float) -> dict:
    """When the sound of stamp t goes out (/vasa/audio_out) against when the image of stamp t
    arrives, over the last 2 s of the stream: + the sound comes late."""
    end = t0 + int(seconds * 1e9)
    heard = [(a - s) / 1e6 for s, a in sound if end - 2e9 <= s < end]
    seen = [(images[s] - s) / 1e6 for s in images if end - 2e9 <= s < end]
    if not heard or not seen:
        return {"sound_vs_picture_ms": None}
    offset = float(np.median(heard) - np.median(seen))
    return {"sound_vs_picture_ms": round(offset, 1), "sound_within_one_frame": abs(offset) <= 1000 / FPS}


# -- the table ----------------------------------------------------------------------------

def table(report: dict) -> str:
    m = report["machine"]
    rows = [f"vasa-bench {__version__} on {m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']}"]
    off = report.get("offline")
    if off:
        rows.append(f"offline 512², {off['audio_seconds']:.0f} s of speech: {off['end_to_end_fps']} frames/s end to end "
                    f"({off['frames']} frames in {off['end_to_end_s']} s)")
        cli = off["vasa_generate"]
        rows.append(f"  vasa-generate wall clock: {cli['wall_s']} s = {cli['fps']} frames/s" if "wall_s" in cli
                    else f"  vasa-generate failed: {cli['error']}")
        rows.append("  per frame: " + ", ".join(f"{k} {v:.2f} ms" for k, v in off["stages_ms_per_frame"].items()))
    lv = report.get("live")
    if lv:
        fl = lv.get("frame_latency_ms") or {}
        rows.append(f"live, {lv['audio_seconds']:.0f} s in real time (20 ms chunks): preceding latency "
                    f"{lv.get('preceding_latency_ms')} ms; per frame median {fl.get('median')} ms, p95 {fl.get('p95')} ms")
        rows.append(f"  frames {lv['frames']} of {lv['expected_frames']} expected; sound vs picture "
                    f"{lv.get('sound_vs_picture_ms')} ms")
        if "capacity" in lv:
            c = lv["capacity"]
            rows.append(f"  capacity: {c['sustained_fps']} frames/s sustained" if c["sustained_fps"]
                        else "  capacity: kept up with none of the speeds tried")
            rows[-1] += " (" + "; ".join(f"audio at {t['audio_sent_at_fps']} frames/s -> {t['fps']} out, "
                                         f"{t['frames']}/{t['expected']} frames{', kept up' if t['kept_up'] else ''}"
                                         for t in c["tries"]) + ")"
        rows.append("  per node: " + ", ".join(f"{n} {lv['cpu_percent'].get(n, 0):.0f} % CPU / "
                                               f"{lv['peak_rss_mb'].get(n, 0):.0f} MB"
                                               for n in sorted(lv["peak_rss_mb"])))
        if "rss_growth_percent_from_minute_1" in lv:
            rows.append("  RSS growth from minute 1: " + ", ".join(
                f"{n} {v:+.1f} %" for n, v in sorted(lv["rss_growth_percent_from_minute_1"].items())))
        if lv.get("restarts_or_errors"):
            rows.append(f"  problems logged: {len(lv['restarts_or_errors'])} (see the JSON)")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
