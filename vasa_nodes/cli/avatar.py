"""vasa-avatar: start the six-node graph from the YAML config, like avatar.launch.py, without ros2 launch.

Each node runs in its own process with `--ros-args --params-file CONFIG`, plus the
overrides given here. Ctrl-C (or SIGTERM) stops them all. The nodes are supervised: one
that dies (a crash, kill -9: any exit code but 0) is restarted alone, with one log line, after a short backoff
and at most MAX_RESTARTS_PER_MINUTE times a minute; one that cannot start
(EXIT_STARTUP_ERROR: unreadable portrait, no face, bad parameter) stops the graph, since no
restart would fix it, and so does a node that keeps dying. The nodes also stop when
vasa-avatar itself is killed (the kernel sends them SIGTERM when it goes). `--record BAG` adds
bag_recorder (every <namespace>/vasa/ topic into a rosbag2 bag), `--play BAG` adds bag_player
(a recorded session fed back in; with `--play-from motion` only face_renderer runs beside it).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from vasa_nodes.nodes.common import EXIT_STARTUP_ERROR

PROG = "vasa-avatar"
NODES = ("audio_capture", "audio_encoder", "motion_generator", "avatar_control", "face_renderer", "audio_player")
NOT_RESTARTED = ("bag_recorder", "bag_player")
"""Nodes whose crash is reported but not restarted: the bag they write or play is not started over."""
FOXGLOVE_PORT = 8765
RESTART_DELAYS_S = (0.2, 1.0, 2.0, 4.0)  # backoff before the 1st, 2nd, 3rd, further restarts within a minute
MAX_RESTARTS_PER_MINUTE = 5


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
    p = argparse.ArgumentParser(prog=PROG, description="Run the vasa_nodes talking-face graph (six ROS 2 nodes), "
                                "restarting a node that dies.")
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
    p.add_argument("--foxglove", type=_port, nargs="?", const=FOXGLOVE_PORT, default=None, metavar="PORT",
                   help=f"also run foxglove_bridge: a live view in Foxglove on ws://HOST:PORT "
                        f"(default port {FOXGLOVE_PORT})")
    p.add_argument("--preview", action="store_true",
                   help="also show the face in a window (the preview node; with no display: one warning)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warn", "error"))
    return p


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return port


def node_names(args: argparse.Namespace) -> tuple[str, ...]:
    """The nodes this run starts: the six of the graph (face_renderer alone with --play-from motion), plus
    bag_player with --play, bag_recorder with --record, foxglove_bridge with --foxglove and
    preview with --preview."""
    names = ("face_renderer",) if args.play and args.play_from == "motion" else NODES
    names += ("bag_player",) if args.play else ()
    names += ("bag_recorder",) if args.record else ()
    names += ("foxglove_bridge",) if args.foxglove is not None else ()
    return names + (("preview",) if args.preview else ())


def node_commands(args: argparse.Namespace, config: Path) -> dict[str, list[str]]:
    """The command line of each node process."""
    names = node_names(args)
    overrides: dict[str, list[str]] = {name: [] for name in NODES + names}
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
    if args.play:
        play_from = args.play_from or "audio"
        if play_from == "audio":  # the recorded speech goes in where a dialogue system's would
            overrides["audio_capture"] += ["-p", "source:=topic"]
        overrides["bag_player"] += ["-p", f"bag:={os.path.abspath(args.play)}", "-p", f"start_from:={play_from}"]
        if args.rate is not None:
            overrides["bag_player"] += ["-p", f"rate:={args.rate}"]
    if args.record:
        overrides["bag_recorder"] += ["-p", f"bag:={os.path.abspath(args.record)}",
                                      "-p", f"storage:={args.storage or 'mcap'}"]
        if args.no_watermark:
            overrides["bag_recorder"] += ["-p", "watermark:=false"]
        if args.watermark_key:
            overrides["bag_recorder"] += ["-p", f"watermark_key:={args.watermark_key}"]
    if args.foxglove is not None:
        overrides["foxglove_bridge"] += ["-p", f"port:={args.foxglove}"]
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

    commands = node_commands(args, config)
    if args.preview:
        from vasa_nodes.nodes.preview import no_display_reason  # noqa: PLC0415

        reason = no_display_reason()
        if reason:
            print(f"{PROG}: warning: --preview: {reason}; not showing a preview window", file=sys.stderr)
            del commands["preview"]
    procs = {name: _start(cmd) for name, cmd in commands.items()}
    restarts: dict[str, deque[float]] = {name: deque() for name in commands}
    due: dict[str, float] = {}  # node -> when it is restarted
    done: set[str] = set()  # nodes that stopped cleanly by themselves
    code = 0
    try:
        while not stopping:
            now = time.monotonic()
            for name, proc in procs.items():
                if name in done:
                    continue
                if name in due:
                    if now >= due[name]:
                        procs[name] = _start(commands[name])
                        del due[name]
                    continue
                rc = proc.poll()
                if rc is None:
                    continue
                if rc == 0:  # it stopped on request (SIGINT, SIGTERM, its window closed): not a crash
                    print(f"{PROG}: {name} stopped (exit code 0); not restarting it", file=sys.stderr, flush=True)
                    done.add(name)
                    continue
                if name in NOT_RESTARTED:  # a second recorder would refuse the existing bag; a player would repeat
                    print(f"{PROG}: error: {name} {_how(rc)}; not restarting it, the rest of the graph goes on",
                          file=sys.stderr, flush=True)
                    done.add(name)
                    continue
                if rc == EXIT_STARTUP_ERROR:
                    print(f"{PROG}: error: {name} could not start (exit code {rc}); stopping the graph",
                          file=sys.stderr)
                    code, stopping = 1, True
                    break
                recent = restarts[name]
                while recent and recent[0] < now - 60.0:
                    recent.popleft()
                if len(recent) >= MAX_RESTARTS_PER_MINUTE:
                    print(f"{PROG}: error: {name} {_how(rc)} after {len(recent)} restarts within a minute; "
                          f"stopping the graph", file=sys.stderr)
                    code, stopping = 1, True
                    break
                delay = RESTART_DELAYS_S[min(len(recent), len(RESTART_DELAYS_S) - 1)]
                recent.append(now)
                due[name] = now + delay
                print(f"{PROG}: {name} {_how(rc)}; restarting it in {delay:g} s "
                      f"(restart {len(recent)} in the last minute)", file=sys.stderr, flush=True)
            time.sleep(0.05)
    finally:
        _stop_all({name: proc for name, proc in procs.items() if name not in due and name not in done})
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


def _how(rc: int) -> str:
    """How a node process ended, for the log."""
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when vasa-avatar goes, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start(cmd: list[str]) -> subprocess.Popen:
    # Own sessions: a terminal's Ctrl-C reaches only this process, which then stops each
    # node exactly once (a second SIGINT would interrupt a node's clean shutdown).
    return subprocess.Popen(cmd, start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)


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
