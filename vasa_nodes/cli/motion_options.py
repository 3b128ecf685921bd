"""The options that choose and tune the motion generator, shared by vasa-generate and vasa-eval."""

from __future__ import annotations

import argparse

from ..core.acoustic_opening import DEFAULT_WEIGHT as DEFAULT_ACOUSTIC_OPENING


def add_motion_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--motion-model", metavar="MODEL.onnx|rules",
                   help="motion model: an ONNX file from vasa-train fit, or 'rules' for the rule-based generator "
                        "(default: the shipped diffusion model)")
    p.add_argument("--steps", type=int, default=4, metavar="N", help="diffusion sampling steps (default 4)")
    p.add_argument("--guidance", type=float, nargs=2, metavar=("AUDIO", "CONTROLS"),
                   help="classifier-free guidance scales of the audio and of the controls (1 = none; "
                        "default: the motion model's defaults)")
    p.add_argument("--lip-seal", metavar="DETECTOR.onnx|none",
                   help="lip-seal detector that shuts the lips for /p b m/: an ONNX file from vasa-train lipseal, "
                        "or 'none' for the motion model alone (default: the shipped detector)")
    p.add_argument("--acoustic-opening", type=float, default=DEFAULT_ACOUSTIC_OPENING, metavar="W",
                   help="how far the lip aperture follows the mouth opening heard in the sound, 0..1 (0: the motion "
                        f"model's own aperture; default {DEFAULT_ACOUSTIC_OPENING:g})")
    p.add_argument("--opening-model", metavar="MODEL.onnx|band",
                   help="where the mouth opening is heard: a mouth-opening model from vasa-train opening, or "
                        "'band' for the level of the 2-4 kHz band (default: the shipped model)")


def motion_option_error(args: argparse.Namespace) -> str | None:
    """The one-line complaint about out-of-range motion options, or None."""
    if not 1 <= args.steps <= 50:
        return f"--steps must be within 1..50, got {args.steps}"
    if args.guidance and not all(0.0 <= g <= 5.0 for g in args.guidance):
        return "--guidance scales must be within 0..5"
    if not 0.0 <= args.acoustic_opening <= 1.0:
        return f"--acoustic-opening must be within 0..1, got {args.acoustic_opening:g}"
    return None


def motion_settings(args: argparse.Namespace, **kwargs):
    """GenerateSettings from the motion options (and any other settings given as keywords)."""
    from ..core.motion_model import Guidance  # noqa: PLC0415
    from ..core.pipeline import GenerateSettings  # noqa: PLC0415

    return GenerateSettings(model=args.motion_model, steps=args.steps, lip_seal=args.lip_seal,
                            acoustic_opening=args.acoustic_opening, opening_model=args.opening_model,
                            guidance=Guidance(*args.guidance) if args.guidance else None, **kwargs)
