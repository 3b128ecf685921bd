"""vasa-avatar: start the six-node graph from the YAML config, like avatar.launch.py, without ros2 launch.

Each node runs in its own process with `--ros-args --params-file CONFIG`, plus the
overrides given here. Ctrl-C (or SIGTERM) stops them all; if one node fails, the others
are stopped and the exit code is non-zero. `--record BAG` adds bag_recorder (every
<namespace>/vasa/ topic into a rosbag2 bag), `--play BAG` adds bag_player (a recorded session
fed back in; with `--play-from motion` only face_renderer runs beside it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROG = "vasa-avatar"
NODES = ("audio_capture", "audio_encoder", "motion_generator", "avatar_control", "face_renderer", "audio_player")


def default_config() -> Path:
    """The installed share/vasa_nodes/config/avatar.yaml (ament index, then this prefix), or the source tree's."""
    candidates = []
    if os.environ.get("AMENT_PREFIX_PATH"):
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: PLC0415

        try:
            candidates.append(Path(get_package_share_directory("vasa_nodes")) / "config" / "avatar.yaml")
        except PackageNotFoundError:
            pass
    candidates.append(Path(sys.prefix) / "share" / "vasa_nodes" / "config" / "avatar.yaml")
    candidates.append(Path(__file__).resolve().parents[2] / "config" / "avatar.yaml")
    return next((c for c in candidates if c.is_file()), candidates[-1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Run the vasa_nodes talking-face graph (six ROS 2 nodes).")
    p.add_argument("--portrait", required=True, metavar="IMG", help="portrait image to animate")
    p.add_argument("--audio", default=None, metavar="SOURCE",
                   help="'topic' (AudioChunk on vasa/audio_in), 'mic', or an audio file to play "
                        "(default: the config's audio_capture.source)")
    p.add_argument("--config", type=Path, default=None, help="parameters YAML keyed by node name "
                   "(default: the package's config/avatar.yaml)")
    p.add_argument("--namespace", default="", help="namespace of the nodes and topics (default: none, /vasa/...)")
    p.add_argument("--size", type=int, default=None, help="output image size in pixels")
    p.add_argument("--loop", action="store_true", help="replay the --audio file forever")
    p.add_argument("--sound", choices=("on", "off"), default=None,
                   help="play the speech on the sound device, in step with the images (default: on, but off "
                        "with --audio mic, which would hear its own output); off still republishes it on "
                        "vasa/audio_out")
    p.add_argument("--no-watermark", action="store_true",
                   help="publish images without the invisible mark that tells them from real video "
                        "(face_renderer watermark:=false; on by default, turning it off is logged)")
    p.add_argument("--watermark-key", default=None, metavar="KEY",
                   help="a key whose digest the mark carries (vasa-detect --key KEY checks it)")
    p.add_argument("--record", metavar="BAG", default=None,
                   help="record every <namespace>/vasa/ topic to a rosbag2 bag at BAG (must not exist; "
                        "closed when the graph stops)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                   help="storage of the --record bag (default mcap)")
    p.add_argument("--play", metavar="BAG", default=None,
                   help="feed a recorded session back into the graph (a bag folder, or its .mcap / .db3)")
    p.add_argument("--play-from", choices=("audio", "motion"), default=None,
                   help="what --play replays: 'audio' (default: the recorded speech and controls; features, "
                        "motion and images are made anew) or 'motion' (the recorded motion; only face_renderer "
                        "runs and re-renders it)")
    p.add_argument("--rate", type=float, default=None, metavar="R",
                   help="--play speed relative to the recording, 0.1-10 (default 1: real time)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warn", "error"))
    return p


def node_commands(args: argparse.Namespace, config: Path) -> dict[str, list[str]]:
    """The command line of each node process."""
    overrides: dict[str, list[str]] = {name: [] for name in NODES}
    overrides["face_renderer"] += ["-p", f"portrait:={os.path.abspath(args.portrait)}"]
    if args.size is not None:
        overrides["face_renderer"] += ["-p", f"size:={args.size}"]
    if args.no_watermark:
        overrides["face_renderer"] += ["-p", "watermark:=false"]
    if args.watermark_key:
        overrides["face_renderer"] += ["-p", f"watermark_key:={args.watermark_key}"]
    if args.audio in ("topic", "mic"):
        overrides["audio_capture"] += ["-p", f"source:={args.audio}"]
    elif args.audio:
        overrides["audio_capture"] += ["-p", "source:=file", "-p", f"file:={os.path.abspath(args.audio)}"]
    if args.loop:
        overrides["audio_capture"] += ["-p", "loop:=true"]
    sound = args.sound or ("off" if args.audio == "mic" else None)
    if sound is not None:
        overrides["audio_player"] += ["-p", f"play:={'true' if sound == 'on' else 'false'}"]
    names = list(NODES)
    if args.play:
        play_from = args.play_from or "audio"
        if play_from == "motion":  # the recorded motion drives face_renderer alone
            names = ["face_renderer"]
        else:
            overrides["audio_capture"] += ["-p", "source:=topic"]
        names.append("bag_player")
        overrides["bag_player"] = ["-p", f"bag:={os.path.abspath(args.play)}", "-p", f"start_from:={play_from}"]
        if args.rate is not None:
            overrides["bag_player"] += ["-p", f"rate:={args.rate}"]
    if args.record:
        names.append("bag_recorder")
        overrides["bag_recorder"] = ["-p", f"bag:={os.path.abspath(args.record)}",
                                     "-p", f"storage:={args.storage or 'mcap'}"]
        if args.no_watermark:
            overrides["bag_recorder"] += ["-p", "watermark:=false"]
        if args.watermark_key:
            overrides["bag_recorder"] += ["-p", f"watermark_key:={args.watermark_key}"]
    commands = {}
    for name in names:
        # -P: never let the working directory (e.g. a source checkout) shadow the installed package.
        cmd = [sys.executable, "-P", "-m", f"vasa_nodes.nodes.{name}", "--ros-args", "-r", f"__node:={name}",
               "--params-file", str(config), "--log-level", args.log_level]
        if args.namespace:
            cmd += ["-r", f"__ns:=/{args.namespace.strip('/')}"]
        commands[name] = cmd + overrides[name]
    return commands


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = args.config or default_config()
    if not config.is_file():
        print(f"{PROG}: error: config file not found: {config}", file=sys.stderr)
        return 2
    if not Path(args.portrait).is_file():
        print(f"{PROG}: error: portrait file not found: {args.portrait}", file=sys.stderr)
        return 2
    if args.audio not in (None, "topic", "mic") and not Path(args.audio).is_file():
        print(f"{PROG}: error: audio file not found: {args.audio}", file=sys.stderr)
        return 2
    if args.no_watermark and args.watermark_key:
        print(f"{PROG}: error: --watermark-key needs the watermark: drop --no-watermark", file=sys.stderr)
        return 2
    if error := _bag_option_error(args):
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    # Own sessions: a terminal's Ctrl-C reaches only this process, which then stops each
    # node exactly once (a second SIGINT would interrupt a node's clean shutdown).
    procs = {name: subprocess.Popen(cmd, start_new_session=True) for name, cmd in node_commands(args, config).items()}
    code = 0
    try:
        while not stopping:
            for name, proc in procs.items():
                rc = proc.poll()
                if rc is not None:
                    print(f"{PROG}: error: {name} exited with code {rc}; stopping the graph", file=sys.stderr)
                    code = 1
                    stopping = True
                    break
            time.sleep(0.1)
    finally:
        _stop_all(procs)
    return code


def _bag_option_error(args: argparse.Namespace) -> str | None:
    """One line about --record/--play options that cannot work, or None."""
    if args.storage and not args.record:
        return "--storage applies to --record BAG"
    if (args.rate is not None or args.play_from) and not args.play:
        return "--rate and --play-from apply to --play BAG"
    if args.rate is not None and not 0.1 <= args.rate <= 10.0:
        return f"--rate must be within 0.1..10, got {args.rate:g}"
    if args.play and args.audio not in (None, "topic"):
        return "--play feeds the recorded speech in: drop --audio"
    from ..core.bag import BagError, BagReader, check_new_bag_path, played_topics  # noqa: PLC0415

    try:
        if args.record:
            check_new_bag_path(args.record)
            if args.play and os.path.abspath(args.play) == os.path.abspath(args.record):
                return "--record and --play name the same bag"
        if args.play:
            with BagReader(args.play) as reader:
                played_topics(reader, args.play_from or "audio")
    except BagError as exc:
        return str(exc)
    return None


def _stop_all(procs: dict[str, subprocess.Popen], timeout_s: float = 5.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for proc in procs.values():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
