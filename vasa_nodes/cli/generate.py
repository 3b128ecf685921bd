"""vasa-generate: portrait + speech audio -> talking-face mp4 (H.264 + AAC), no ROS needed.

Four modes:
  --audio AUDIO --out OUT.mp4             motion generated from the speech
  --motion MOTION.csv [--audio A] --out   motion from a Live Link Face style CSV
  --bag BAG --out OUT.mp4                 a recorded session (its FaceMotion and speech) rendered offline
  --sheet OUT.png                         a labelled grid of expressions, poses and gazes
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from ..core.motion import EMOTIONS, Controls
from .motion_options import add_motion_options, motion_option_error, motion_settings

PROG = "vasa-generate"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Animate one portrait with speech audio and write an mp4 (H.264 video + AAC audio).",
    )
    p.add_argument("--portrait", required=True, metavar="IMG",
                   help="portrait image (JPEG, PNG, WebP, TIFF, BMP; any size, colour or greyscale)")
    p.add_argument("--audio", metavar="AUDIO",
                   help="speech audio (WAV, FLAC, OGG, AIFF, MP3, …; any rate, mono or stereo); "
                        "with --motion, the sound track")
    p.add_argument("--motion", metavar="MOTION.csv",
                   help="render this motion (Live Link Face CSV: ARKit blendshape columns, HeadYaw/HeadPitch/"
                        "HeadRoll, Left/RightEyeYaw/Pitch; one row per frame at --fps) instead of generating it")
    p.add_argument("--bag", metavar="BAG",
                   help="render a session recorded with vasa-avatar --record (a rosbag2 bag: its vasa/face_motion "
                        "at its own frame rate, with its vasa/audio as the sound track) instead of generating motion")
    p.add_argument("--out", metavar="OUT.mp4", help="output video file")
    p.add_argument("--sheet", metavar="OUT.png",
                   help="write a labelled grid of the portrait's expressions, head poses and gazes, and exit")
    p.add_argument("--size", type=int, default=512, help="output width and height in pixels (default 512)")
    p.add_argument("--fps", type=int, default=25, choices=(20, 25, 40, 50), help="video frame rate (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the non-verbal motion (blinks, head sway)")
    p.add_argument("--emotion", choices=EMOTIONS, default="neutral", help="emotion offset (default neutral)")
    p.add_argument("--emotion-intensity", type=float, default=0.6, metavar="0..1",
                   help="strength of --emotion (default 0.6)")
    p.add_argument("--gaze", type=float, nargs=2, metavar=("YAW", "PITCH"),
                   help="hold the main gaze direction, radians (+yaw: subject's left, +pitch: up)")
    p.add_argument("--head-scale", type=float, metavar="S",
                   help="apparent head size relative to the portrait (> 1 closer), 0.5..2")
    p.add_argument("--motion-intensity", type=float, default=1.0, metavar="0..2",
                   help="scale of head motion and gaze shifts (default 1)")
    add_motion_options(p)
    p.add_argument("--no-watermark", action="store_true",
                   help="leave the frames without the invisible mark that tells them from real video "
                        "(on by default; vasa-detect finds it). The file still states that it is synthetic")
    p.add_argument("--watermark-key", metavar="KEY", default=None,
                   help="a key of yours whose 16-bit digest the mark carries (vasa-detect --key KEY checks it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format=f"{PROG}: %(levelname)s: %(message)s")
    logging.getLogger().handlers[0].setFormatter(_LowerLevelFormatter(f"{PROG}: %(levelname)s: %(message)s"))
    # Imported after argument parsing so that --help stays instant.
    from ..core.audio import AudioError, load_audio  # noqa: PLC0415
    from ..core.motion_csv import MotionFileError, read_motion_csv  # noqa: PLC0415
    from ..core.acoustic_opening import OpeningModelError  # noqa: PLC0415
    from ..core.lip_seal import LipSealError  # noqa: PLC0415
    from ..core.motion_model import MotionModelError  # noqa: PLC0415
    from ..core.pipeline import model_files, motion_for_audio, write_video  # noqa: PLC0415
    from ..core.provenance import statement  # noqa: PLC0415
    from ..core.watermark import Watermarker  # noqa: PLC0415
    from ..core.portrait import PortraitError, load_portrait  # noqa: PLC0415
    from ..core.renderer import RendererError  # noqa: PLC0415

    if error := motion_option_error(args):
        return _fail(error)
    if not 64 <= args.size <= 2048:
        return _fail(f"--size must be within 64..2048, got {args.size}")
    if args.sheet:
        if args.out or args.motion or args.bag:
            return _fail("--sheet writes a PNG and takes no --out, --motion or --bag")
    elif not args.out:
        return _fail("give --out OUT.mp4 (or --sheet OUT.png)")
    elif args.bag and (args.audio or args.motion):
        return _fail("--bag renders the recorded motion and speech: drop --audio and --motion")
    elif not args.audio and not args.motion and not args.bag:
        return _fail("give --audio (speech to animate) or --motion (a motion CSV)")
    elif not args.out.lower().endswith((".mp4", ".m4v", ".mov")):
        return _fail(f"--out must end in .mp4 (or .m4v/.mov), got {args.out}")
    controls = Controls(
        gaze_enabled=args.gaze is not None,
        gaze_yaw=args.gaze[0] if args.gaze else 0.0,
        gaze_pitch=args.gaze[1] if args.gaze else 0.0,
        distance_enabled=args.head_scale is not None,
        head_scale=args.head_scale or 1.0,
        emotion=args.emotion,
        emotion_intensity=args.emotion_intensity,
        motion_intensity=args.motion_intensity,
    )
    if args.no_watermark and args.watermark_key:
        return _fail("--watermark-key needs the watermark: drop --no-watermark")
    watermark = None if args.no_watermark else Watermarker(args.watermark_key)
    if watermark is None:
        logging.warning("watermark off (--no-watermark): the frames carry no mark that tells them from real "
                        "video; the file's metadata still states that it is synthetic")
    try:
        if args.sheet:
            return _write_sheet(args, watermark)
        if args.bag:
            return _render_bag(args, watermark)
        motion = read_motion_csv(args.motion) if args.motion else None
        audio = load_audio(args.audio, min_duration_s=1.0 / args.fps) if args.audio else None
        portrait = load_portrait(args.portrait, args.size)
        settings = motion_settings(args, fps=args.fps, seed=args.seed, controls=controls)
        from_audio = motion is None
        if from_audio:
            motion = motion_for_audio(audio, settings)
        # after the motion: the model files named are the ones that loaded
        provenance = statement(model_files(settings) if from_audio else [], watermark)
        start = time.perf_counter()
        with _progress(len(motion), disable=args.quiet) as bar:
            frames = write_video(portrait, motion, audio, args.out, args.fps, progress=bar.update,
                                 watermark=watermark, provenance=provenance)
        elapsed = time.perf_counter() - start
    except (AudioError, PortraitError, RendererError, MotionFileError, MotionModelError, LipSealError,
            OpeningModelError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    logging.info("wrote %s: %d frames (%.2f s) at %d fps, %.1f frames/s", args.out, frames, frames / args.fps,
                 args.fps, frames / max(elapsed, 1e-9))
    return 0


def _render_bag(args: argparse.Namespace, watermark) -> int:
    """--bag: the recorded FaceMotion on its video clock, the recorded speech beside it."""
    from ..core.audio import SAMPLE_RATE, Audio  # noqa: PLC0415
    from ..core.bag import BagError, BagReader, session_audio, session_motion  # noqa: PLC0415
    from ..core.pipeline import write_video  # noqa: PLC0415
    from ..core.portrait import load_portrait  # noqa: PLC0415
    from ..core.provenance import statement  # noqa: PLC0415

    try:
        with BagReader(args.bag) as reader:
            session = session_motion(reader)
            samples = session_audio(reader, session.start_ns, len(session.frames) / session.fps)
            if reader.warning:
                logging.warning(reader.warning)
    except BagError as exc:
        return _fail(str(exc))
    fps = int(round(session.fps))
    if abs(fps - session.fps) > 1e-6 or fps <= 0:
        return _fail(f"{args.bag}: recorded motion at {session.fps:g} frames/s; only whole rates can be rendered")
    if samples is None:
        logging.warning("%s: no speech recorded on vasa/audio; the video has no sound track", args.bag)
    portrait = load_portrait(args.portrait, args.size)
    start = time.perf_counter()
    with _progress(len(session.frames), disable=args.quiet) as bar:
        frames = write_video(portrait, session.frames, None if samples is None else Audio(samples, SAMPLE_RATE),
                             args.out, fps, progress=bar.update, watermark=watermark,
                             provenance=statement([], watermark))
    elapsed = time.perf_counter() - start
    logging.info("wrote %s: %d frames (%.2f s) at %d fps from %d recorded motion frames, %.1f frames/s", args.out,
                 frames, frames / fps, fps, session.recorded, frames / max(elapsed, 1e-9))
    return 0


def _write_sheet(args: argparse.Namespace, watermark) -> int:
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from ..core.portrait import load_portrait  # noqa: PLC0415
    from ..core.provenance import png_text, statement  # noqa: PLC0415
    from ..core.renderer import FaceRenderer  # noqa: PLC0415
    from ..core.sheet import render_sheet  # noqa: PLC0415

    # the sheet is marked as one picture, so that its mark reads across the whole grid
    renderer = FaceRenderer(load_portrait(args.portrait, args.size), watermark=None)
    try:
        sheet = np.ascontiguousarray(render_sheet(renderer))
        if watermark is not None:
            watermark.apply(sheet)
        Image.fromarray(sheet).save(args.sheet, pnginfo=png_text(statement(watermark=watermark)))
    finally:
        renderer.close()
    logging.info("wrote %s", args.sheet)
    return 0


def _progress(total: int, disable: bool):
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, unit="frame", desc="rendering", disable=disable or not sys.stderr.isatty(),
                file=sys.stderr, leave=False)


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record)


def _fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
