"""vasa-train: build training data for the motion model.

    vasa-train corpus --out DIR [--minutes 60] [--seed 0] [--languages en-us,fr,...]
    vasa-train extract VIDEO [VIDEO ...] --out DATA.npz

`corpus` synthesises multilingual speech with exact phoneme timing and matching motion
targets; `extract` tracks real talking videos (with sound) and fits the same motion vector,
so models can be trained on your own recordings. Both write the same .npz layout:
features (T, 80) log-mel, loudness_db, voice_activity, motion (T, 61), lengths.
"""

from __future__ import annotations

import argparse
import logging
import sys

PROG = "vasa-train"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Build training data for the vasa_nodes motion model.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("corpus", help="synthesise a multilingual speech corpus with motion targets")
    c.add_argument("--out", required=True, metavar="DIR")
    c.add_argument("--minutes", type=float, default=60.0, help="amount of speech (default 60)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--languages", help="comma-separated espeak-ng voices (default: all built-in languages)")
    e = sub.add_parser("extract", help="fit motion to real talking videos with sound")
    e.add_argument("videos", nargs="+", metavar="VIDEO")
    e.add_argument("--out", required=True, metavar="DATA.npz")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    from ..core.audio import AudioError  # noqa: PLC0415
    from ..core.evaluation import EvaluationError  # noqa: PLC0415
    from ..core.tts import TTSError  # noqa: PLC0415

    try:
        if args.command == "corpus":
            from tqdm import tqdm  # noqa: PLC0415

            from ..train.corpus import build_corpus  # noqa: PLC0415

            languages = args.languages.split(",") if args.languages else None
            with tqdm(total=round(args.minutes * 60), unit="s", desc="speech", disable=not sys.stderr.isatty()) as bar:
                summary = build_corpus(args.out, args.minutes, args.seed, languages,
                                       progress=lambda s: bar.update(round(s)))
            print(f"{PROG}: {summary['utterances']} utterances, {summary['minutes']} min, "
                  f"languages {', '.join(summary['languages'])} -> {args.out}/corpus.npz")
        else:
            from ..core.portrait import FaceFitter  # noqa: PLC0415
            from ..train.corpus import save_utterances  # noqa: PLC0415
            from ..train.extract import extract_video  # noqa: PLC0415

            fitter = FaceFitter()
            try:
                utterances = [extract_video(v, fitter) for v in args.videos]
            finally:
                fitter.close()
            save_utterances(args.out, utterances)
            for u in utterances:
                print(f"{PROG}: {u.meta['source']}: {len(u.motion)} frames, face tracked in "
                      f"{100 * u.meta['tracked_fraction']:.0f} %")
    except (ValueError, AudioError, EvaluationError, TTSError, OSError) as exc:
        print(f"{PROG}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
