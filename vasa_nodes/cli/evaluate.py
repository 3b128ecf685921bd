"""vasa-eval: measure a talking face with the face tracker and report JSON.

    vasa-eval --portrait IMG --audio SPEECH [--transcript TXT | --phones PHONES.json] [--out REPORT.json]
    vasa-eval --portrait IMG --reference REAL.mp4 [--transcript TXT]       # compare with a real speaker
    vasa-eval --portrait IMG --reference A.mp4 B.mp4 ...                    # several, with medians over them
    vasa-eval --video GENERATED.mp4 --audio SPEECH ...                      # measure an existing video

Without --video the face is generated from the audio with the same cores as vasa-generate
(frames are tracked as they are rendered; nothing is encoded).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from .motion_options import add_motion_options, motion_option_error, motion_settings

PROG = "vasa-eval"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Measure lip sync, silence, head motion and blinks of a "
                                "talking face with the face tracker; prints a JSON report.")
    p.add_argument("--portrait", metavar="IMG", help="portrait to animate (unless --video is given)")
    p.add_argument("--video", metavar="VIDEO", help="an already generated video to measure instead")
    p.add_argument("--audio", metavar="AUDIO", help="the speech (default: the audio track of --reference)")
    p.add_argument("--reference", metavar="REAL.mp4", nargs="+",
                   help="a real talking video with audio: its speaker's mouth is compared with the generated one; "
                        "several: each on its own sound, with a summary over them (medians)")
    p.add_argument("--transcript", metavar="TXT", help="English transcript: phone times by forced alignment")
    p.add_argument("--phones", metavar="PHONES.json", help="phone times: a JSON list of [phone, start_s, end_s]")
    p.add_argument("--fps", type=int, default=25, choices=(20, 25, 40, 50), help="generated video rate")
    p.add_argument("--size", type=int, default=512, help="generated image size")
    p.add_argument("--seed", type=int, default=0)
    add_motion_options(p)
    p.add_argument("--no-watermark", action="store_true",
                   help="measure frames rendered without the invisible mark (to compare: the mark is on by default)")
    p.add_argument("--out", metavar="REPORT.json", help="also write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    if not (args.video or args.portrait):
        return _fail("give --portrait (to generate the face) or --video (to measure one)")
    if not (args.audio or args.reference):
        return _fail("give --audio or --reference (whose audio track is used)")
    if args.transcript and args.phones:
        return _fail("give --transcript or --phones, not both")
    if error := motion_option_error(args):
        return _fail(error)

    several = len(args.reference or ()) > 1
    if several:
        given = [flag for flag, value in (("--audio", args.audio), ("--video", args.video),
                                          ("--transcript", args.transcript), ("--phones", args.phones)) if value]
        if given:
            return _fail(f"with several --reference videos each is compared on its own sound; {given[0]} is for one")

    from ..core import evaluation as ev  # noqa: PLC0415
    from ..core.audio import load_audio  # noqa: PLC0415
    from ..core.portrait import FaceFitter, load_portrait  # noqa: PLC0415

    fitter = FaceFitter()
    try:
        portrait = None if args.video else load_portrait(args.portrait, args.size, fitter)
        if several:
            report, failures = _measure_several(args, portrait, fitter)
        else:
            failures = 0
            audio = load_audio(args.audio or args.reference[0], min_duration_s=1.0 / args.fps)
            phones = None
            if args.transcript:
                phones = ev.align_transcript(audio, Path(args.transcript).read_text())
            elif args.phones:
                phones = ev.read_phones(args.phones)
            report = _measure(args, audio, phones, args.reference[0] if args.reference else None, portrait, fitter)
    except _measure_errors() as exc:
        return _fail(_first_line(exc))
    finally:
        fitter.close()

    # Not measurable (no silent frames, no bilabials) is null: strict JSON has no NaN.
    text = json.dumps(_finite_or_null(report), indent=2, allow_nan=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 2 if failures else 0


def _measure(args: argparse.Namespace, audio, phones, reference: str | None, portrait, fitter) -> dict:
    """The report for one clip: the generated face (or --video) on `audio`, and with a
    `reference` video the comparison with its real speaker."""
    from ..core import evaluation as ev  # noqa: PLC0415
    from ..core.features import compute_features  # noqa: PLC0415
    from ..core.pipeline import motion_for_audio  # noqa: PLC0415
    from ..core.renderer import FaceRenderer  # noqa: PLC0415

    if args.video:
        frames, fps = ev.read_video_frames(args.video)
        generated = ev.track_frames(frames, fps, fitter)
    else:
        motion = motion_for_audio(audio, motion_settings(args, fps=args.fps, seed=args.seed))
        renderer = FaceRenderer(portrait, **({"watermark": None} if args.no_watermark else {}))
        try:
            generated = ev.track_frames((renderer.render(m) for m in motion), args.fps, fitter)
        finally:
            renderer.close()

    report: dict = {"audio_s": round(audio.duration_s, 3), "generated": ev.summarise(generated)}
    audio_features = compute_features(audio.samples, generated.fps)
    voice = audio_features.voice_activity
    report["generated"]["head_motion_vs_loudness"] = round(
        ev.head_motion_vs_loudness(generated, audio_features.loudness_db), 4)
    silent = ev.silent_frames(len(generated.aperture), generated.fps, phones, voice)
    fraction, n = ev.closed_in_silence(generated, silent)
    report["mouth_closed_in_silence"] = {"fraction": round(fraction, 4), "frames": n}
    if phones is not None:
        fraction, n = ev.bilabial_closure(generated, phones)
        report["bilabial_closure"] = {"fraction": round(fraction, 4), "phones": n}
    if reference:
        ref_frames, ref_fps = ev.read_video_frames(reference)
        real = ev.track_frames(ref_frames, ref_fps, fitter)
        real_at_rate = real.resampled(generated.fps, len(generated.aperture))
        r, lag_ms = ev.best_lag_correlation(generated.aperture, real_at_rate.aperture, generated.fps)
        report["reference"] = ev.summarise(real)
        report["reference"]["head_motion_vs_loudness"] = round(
            ev.head_motion_vs_loudness(real_at_rate, audio_features.loudness_db), 4)
        if phones is not None:
            # The real speaker's lips at the same phone times: near 1 when picture, sound
            # and alignment are in step (a check of the reference itself).
            fraction, n = ev.bilabial_closure(real, phones)
            report["reference"]["bilabial_closure"] = {"fraction": round(fraction, 4), "phones": n}
        report["aperture_vs_reference"] = {"correlation": round(r, 4), "lag_ms": round(lag_ms, 1)}
        # For scale: the sound's loudness alone against the same speaker.
        loud = audio_features.loudness_db[:len(generated.aperture)]
        r, lag_ms = ev.best_lag_correlation(loud, real_at_rate.aperture[:len(loud)], generated.fps)
        report["loudness_vs_reference"] = {"correlation": round(r, 4), "lag_ms": round(lag_ms, 1)}
    return report


def _measure_several(args: argparse.Namespace, portrait, fitter) -> tuple[dict, int]:
    """Each reference video against a face generated from its own sound, and the summary over
    them. A video that cannot be measured is reported with its error; the others still are."""
    from ..core import evaluation as ev  # noqa: PLC0415
    from ..core.audio import load_audio  # noqa: PLC0415

    videos: dict[str, dict] = {}
    for path in args.reference:
        try:
            audio = load_audio(path, min_duration_s=1.0 / args.fps)
            videos[path] = _measure(args, audio, None, path, portrait, fitter)
        except _measure_errors() as exc:
            videos[path] = {"error": _first_line(exc)}
            print(f"{PROG}: error: {path}: {videos[path]['error']}", file=sys.stderr)
    failures = sum("error" in r for r in videos.values())
    if failures == len(videos):
        raise ev.EvaluationError("none of the reference videos could be measured")
    return {"summary": ev.summarise_references(list(videos.values())), "videos": videos}, failures


def _measure_errors() -> tuple[type[Exception], ...]:
    """What bad input raises while a clip is measured: reported in one line, never a traceback."""
    from ..core.acoustic_opening import OpeningModelError  # noqa: PLC0415
    from ..core.audio import AudioError  # noqa: PLC0415
    from ..core.evaluation import EvaluationError  # noqa: PLC0415
    from ..core.lip_seal import LipSealError  # noqa: PLC0415
    from ..core.motion_model import MotionModelError  # noqa: PLC0415
    from ..core.portrait import PortraitError  # noqa: PLC0415
    from ..core.renderer import RendererError  # noqa: PLC0415

    return (EvaluationError, AudioError, PortraitError, RendererError, MotionModelError, LipSealError,
            OpeningModelError, OSError)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _finite_or_null(value):
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
