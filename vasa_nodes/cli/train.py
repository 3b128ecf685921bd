"""vasa-train: build training data for the motion model.

    vasa-train corpus --out DIR [--minutes 60] [--seed 0] [--languages en-us,fr,...]
    vasa-train recorded SPEECH_DIR --out DIR [--copies 3] [--hold-out TEXT ...]
    vasa-train extract VIDEO [VIDEO ...] --out DATA.npz [--copies 1] [--seed 0]
    vasa-train fit DATA [DATA ...] --out MODEL.onnx [--minutes 100] [--steps N] [--init MODEL.pt|MODEL.onnx]
    vasa-train lipseal DATA [DATA ...] --out LIP_SEAL.onnx [--steps 6000]
    vasa-train opening DATA [DATA ...] --out MOUTH_OPENING.onnx [--steps 2000]

`corpus` synthesises multilingual speech with exact phoneme timing and matching motion
targets; `recorded` does the same for recorded speech with transcripts (forced alignment);
`extract` tracks real talking videos (with sound) and fits the same motion vector, so
models can be trained on your own recordings. All three write the same .npz layout:
features (T, 80) log-mel, loudness_db, voice_activity, motion (T, 61), controls (T, 10),
lengths. `fit` trains the motion diffusion model on any mix of them and exports ONNX;
`lipseal` trains the lip-seal detector (where the lips shut for /p b m/) on the same data;
`opening` trains the mouth-opening model (how far real lips are apart) on `extract` data.
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
    c.add_argument("--random-words", type=float, default=0.0, metavar="FRACTION",
                   help="share of sentences made of random common words of the language instead of the "
                        "built-in sentences, for phonetic variety (0..1, default 0)")
    r = sub.add_parser("recorded", help="recorded speech with transcripts -> aligned motion targets")
    r.add_argument("speech", metavar="SPEECH_DIR", help="folder with transcripts.tsv files (file, text, language)")
    r.add_argument("--out", required=True, metavar="DIR")
    r.add_argument("--copies", type=int, default=3, help="uses of each recording: 1 clean + augmented (default 3)")
    r.add_argument("--hold-out", nargs="*", default=[], metavar="TEXT",
                   help="skip recordings whose path contains any of these (keep them for evaluation)")
    r.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("fit", help="train the motion diffusion model and export it as ONNX")
    f.add_argument("data", nargs="+", metavar="DATA", help="corpus.npz files (or folders holding one)")
    f.add_argument("--out", required=True, metavar="MODEL.onnx")
    f.add_argument("--minutes", type=float, default=100.0, help="training time budget (default 100)")
    f.add_argument("--steps", type=int, default=0, help="stop after this many steps (default: time budget only)")
    f.add_argument("--batch", type=int, default=64)
    f.add_argument("--width", type=int, default=160)
    f.add_argument("--layers", type=int, default=4)
    f.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (default 4e-4)")
    f.add_argument("--init", metavar="MODEL.pt|MODEL.onnx",
                   help="continue from the weights of an earlier fit: the .pt written beside its .onnx, or an "
                        "exported .onnx itself (the shipped model included)")
    s = sub.add_parser("lipseal", help="train the lip-seal detector (lips shut for /p b m/) and export it as ONNX")
    s.add_argument("data", nargs="+", metavar="DATA", help="corpus.npz files (or folders holding one)")
    s.add_argument("--out", required=True, metavar="LIP_SEAL.onnx")
    s.add_argument("--steps", type=int, default=6000, help="training steps (default 6000)")
    s.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    s.add_argument("--seed", type=int, default=0)
    o = sub.add_parser("opening", help="train the mouth-opening model (how far real lips are apart) on talking "
                                       "videos from `extract`, and export it as ONNX")
    o.add_argument("data", nargs="+", metavar="DATA", help="DATA.npz files from `vasa-train extract` (or folders "
                                                           "holding a corpus.npz)")
    o.add_argument("--out", required=True, metavar="MOUTH_OPENING.onnx")
    o.add_argument("--steps", type=int, default=750,
                   help="training steps (default 750: more fit the training speakers closer and new voices worse)")
    o.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    o.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("extract", help="fit motion to real talking videos with sound")
    e.add_argument("videos", nargs="+", metavar="VIDEO")
    e.add_argument("--out", required=True, metavar="DATA.npz")
    e.add_argument("--copies", type=int, default=1,
                   help="uses of each video: its own sound + augmented copies of it (default 1: its own only)")
    e.add_argument("--seed", type=int, default=0, help="seed of the augmentation")
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
                                       progress=lambda s: bar.update(round(s)), random_words=args.random_words)
            print(f"{PROG}: {summary['utterances']} utterances, {summary['minutes']} min, "
                  f"languages {', '.join(summary['languages'])} -> {args.out}/corpus.npz")
        elif args.command == "recorded":
            import json  # noqa: PLC0415
            from pathlib import Path  # noqa: PLC0415

            import numpy as np  # noqa: PLC0415

            from ..train.corpus import save_utterances  # noqa: PLC0415
            from ..train.recorded import recorded_utterances  # noqa: PLC0415

            if args.copies < 1:
                raise ValueError("--copies must be at least 1")
            utterances, rows = recorded_utterances(args.speech, args.copies, np.random.default_rng(args.seed),
                                                   args.hold_out)
            if not utterances:
                raise ValueError(f"no usable recordings under {args.speech} (transcripts.tsv files with file, text)")
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            save_utterances(out / "corpus.npz", utterances)
            minutes = sum(r["duration_s"] for r in rows) / 60
            (out / "corpus.json").write_text(json.dumps({"recordings": rows, "copies": args.copies,
                                                         "hold_out": args.hold_out, "minutes": round(minutes, 2),
                                                         "items": [u.meta for u in utterances]},
                                                        indent=1, ensure_ascii=False))
            print(f"{PROG}: {len(rows)} recordings, {minutes:.1f} min, languages "
                  f"{', '.join(sorted({r['language'] for r in rows}))}, x{args.copies} -> {out}/corpus.npz")
        elif args.command == "fit":
            from ..train.fit import FitSettings, fit  # noqa: PLC0415

            settings = FitSettings(minutes=args.minutes, max_steps=args.steps, batch=args.batch, width=args.width,
                                   layers=args.layers, threads=args.threads, seed=args.seed, lr=args.lr,
                                   init=args.init)
            report = fit(args.data, args.out, settings, log=lambda m: print(f"{PROG}: {m}", flush=True))
            print(f"{PROG}: {report['steps']} steps in {report['minutes']:.1f} min, validation loss "
                  f"{report['validation_loss']:.4f} -> {args.out}")
        elif args.command in ("lipseal", "opening"):
            if args.steps < 1:
                raise ValueError("--steps must be at least 1")
            if args.command == "lipseal":
                from ..train.lip_seal import LipSealSettings as Settings, fit_lip_seal as fit_model  # noqa: PLC0415
            else:
                from ..train.opening import OpeningSettings as Settings, fit_opening as fit_model  # noqa: PLC0415
            report = fit_model(args.data, args.out, Settings(steps=args.steps, threads=args.threads, seed=args.seed),
                               log=lambda m: print(f"{PROG}: {m}", flush=True))
            v = report["validation"]
            if args.command == "lipseal":
                result = (f", validation accuracy {v['accuracy']:.3f}, recall {v['recall']:.3f}, "
                          f"precision {v['precision']:.3f}")
            else:
                result = f" on {report['videos']} videos, validation correlation {v['correlation']:.3f}"
            print(f"{PROG}: {report['steps']} steps in {report['minutes']:.1f} min{result} -> {args.out}")
        else:
            from ..core.portrait import FaceFitter  # noqa: PLC0415
            from ..train.corpus import save_utterances  # noqa: PLC0415
            from ..train.extract import extract_video  # noqa: PLC0415

            import numpy as np  # noqa: PLC0415

            if args.copies < 1:
                raise ValueError("--copies must be at least 1")
            rng = np.random.default_rng(args.seed)
            fitter = FaceFitter()
            try:
                per_video = [extract_video(v, fitter, args.copies, rng) for v in args.videos]
            finally:
                fitter.close()
            save_utterances(args.out, [u for copies in per_video for u in copies])
            for copies in per_video:
                u = copies[0]
                print(f"{PROG}: {u.meta['source']}: {len(u.motion)} frames, face tracked in "
                      f"{100 * u.meta['tracked_fraction']:.0f} %, x{len(copies)}")
    except (ValueError, AudioError, EvaluationError, TTSError, OSError) as exc:
        print(f"{PROG}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
