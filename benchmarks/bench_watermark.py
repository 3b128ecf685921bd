"""The invisible watermark: cost, invisibility, robustness and false positives.

    .venv/bin/python -P benchmarks/bench_watermark.py [--portrait IMG ...] [--audio SPEECH ...]
        [--real VIDEO_OR_IMAGE ...] [--clip-frames 25] [--out REPORT.json]

For each portrait x speech, the clip is generated (diffusion motion) and rendered twice,
with and without the mark. It prints
- the cost of marking a 512² frame (ms) and the PSNR of marked against unmarked frames;
- for each alteration (none, H.264 CRF 28 / 35 at the same size, 256² and back, JPEG 90 per
  frame, crops of 10 % (also then H.264), 20 % off-centre and 30 %, a screen-capture-like
  path), the fraction of marked frames found on their own and of clips (runs of
  --clip-frames frames) found; crops are read with the crop search, as vasa-detect does
  (single frames: every 10th);
- false positives: unmarked generated frames and clips, and every frame/clip of --real
  material (videos, photos), read with the crop search where the plain reading finds
  nothing (single video frames: every 10th).
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vasa_nodes.core import watermark as wm
from vasa_nodes.core.audio import load_audio
from vasa_nodes.core.pipeline import GenerateSettings, motion_for_audio
from vasa_nodes.core.portrait import FaceFitter, load_portrait
from vasa_nodes.core.renderer import FaceRenderer

REPO = Path(__file__).resolve().parents[1]


def h264(frames: list[np.ndarray], crf: int, fps: int = 25) -> list[np.ndarray]:
    """Encode with libx264 (preset medium, yuv420p) and decode again."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(fps, 1))
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": str(crf), "preset": "medium"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def jpeg(f: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def rescaled(f: np.ndarray, side: int) -> np.ndarray:
    h, w = f.shape[:2]
    small = cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def crop(f: np.ndarray, fraction: float, at_x: float = 0.5, at_y: float = 0.5) -> np.ndarray:
    """Cut `fraction` of the width and height away (split between the sides as at_x, at_y say:
    0.5 centred), kept at the smaller size."""
    h, w = f.shape[:2]
    ch, cw = int(round(h * (1 - fraction))) // 2 * 2, int(round(w * (1 - fraction))) // 2 * 2
    y0, x0 = int(round((h - ch) * at_y)), int(round((w - cw) * at_x))
    return np.ascontiguousarray(f[y0:y0 + ch, x0:x0 + cw])


def screen_capture(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Shown enlarged 1.4x with bilinear filtering, captured with a slight gamma and brightness
    change, and stored as H.264 CRF 23 at the captured size."""
    out = []
    for f in frames:
        side = int(round(f.shape[0] * 1.4)) // 2 * 2
        big = cv2.resize(f, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        out.append(np.clip(255.0 * (big ** 0.95) * 0.97 + 3.0, 0, 255).astype(np.uint8))
    return h264(out, 23)


ALTERATIONS = {
    "none": lambda fr: fr,
    "h264_crf28": lambda fr: h264(fr, 28),
    "h264_crf35": lambda fr: h264(fr, 35),
    "scale_256_and_back": lambda fr: [rescaled(f, 256) for f in fr],
    "jpeg90": lambda fr: [jpeg(f, 90) for f in fr],
    "crop_10pct": lambda fr: [crop(f, 0.10) for f in fr],
    "crop_10pct_h264_crf28": lambda fr: h264([crop(f, 0.10) for f in fr], 28),
    "crop_20pct_offcentre": lambda fr: [crop(f, 0.20, 0.8, 0.2) for f in fr],
    "crop_30pct": lambda fr: [crop(f, 0.30) for f in fr],
    "screen_capture": screen_capture,
}


def clip_rates(frames: list[np.ndarray], clip_frames: int, search: bool = False,
               frame_stride: int = 10) -> tuple[int, int, int, int]:
    """(frames found, frames, clips found, clips). `search`: as vasa-detect reads, where the
    mark is not found as it stands, a crop's placement is searched (for single frames on
    every `frame_stride`-th frame only: the search takes about 0.2 s a frame)."""
    if search:
        singles = frames[::frame_stride]
        found = sum(wm.detect_clip([f], search=True).detection.found for f in singles)
        clips = [frames[i:i + clip_frames] for i in range(0, len(frames) - clip_frames + 1, clip_frames)]
        clips_found = sum(wm.detect_clip(c, search=True).detection.found for c in clips)
        return found, len(singles), clips_found, len(clips)
    evidence = [wm.frame_evidence(f) for f in frames]
    found = sum(wm.decide(e).found for e in evidence)
    clips = [evidence[i:i + clip_frames] for i in range(0, len(evidence) - clip_frames + 1, clip_frames)]
    clips_found = sum(wm.decide(np.sum(c, axis=0), len(c)).found for c in clips)
    return found, len(frames), clips_found, len(clips)


def read_real(path: str) -> list[np.ndarray]:
    p = Path(path)
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        return [cv2.cvtColor(img, cv2.COLOR_BGR2RGB)]
    import av

    with av.open(str(p)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portrait", nargs="+", default=[str(REPO / "samples" / "astronaut.png")])
    parser.add_argument("--audio", nargs="+", default=[str(REPO / "samples" / "speech_en.wav")])
    parser.add_argument("--real", nargs="*", default=[], help="real videos and photos for false positives")
    parser.add_argument("--seeds", type=int, default=1, help="motion seeds per portrait x speech")
    parser.add_argument("--clip-frames", type=int, default=25, help="frames per clip (default 25: 1 s)")
    parser.add_argument("--search-false-positives", action=argparse.BooleanOptionalAction, default=True,
                        help="read the unmarked material as vasa-detect does, with the crop search (default on)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()

    fitter = FaceFitter()
    marked_all, plain_all = [], []
    for portrait_path in args.portrait:
        portrait = load_portrait(portrait_path, 512, fitter)
        with_mark, without = FaceRenderer(portrait), FaceRenderer(portrait, watermark=None)
        for audio_path in args.audio:
            audio = load_audio(audio_path)
            for seed in range(args.seeds):
                motion = motion_for_audio(audio, GenerateSettings(seed=seed))
                marked_all.append([with_mark.render(m) for m in motion])
                plain_all.append([without.render(m) for m in motion])
        with_mark.close()
        without.close()

    report: dict = {}
    frame = plain_all[0][0]
    marker = wm.Watermarker()
    start = time.perf_counter()
    for _ in range(500):
        marker.apply(frame.copy())
    copy_start = time.perf_counter()
    for _ in range(500):
        frame.copy()
    end = time.perf_counter()
    report["embed_ms_512"] = round(1000.0 * ((copy_start - start) - (end - copy_start)) / 500, 3)
    start = time.perf_counter()
    for _ in range(100):
        wm.frame_evidence(frame)
    report["detect_ms_512"] = round(1000.0 * (time.perf_counter() - start) / 100, 3)
    psnrs = [wm.psnr(a, b) for ma, pa in zip(marked_all, plain_all) for a, b in zip(ma, pa)]
    report["psnr_db"] = {"min": round(min(psnrs), 2), "median": round(float(np.median(psnrs)), 2)}
    print(f"marking: {report['embed_ms_512']} ms per 512² frame; reading: {report['detect_ms_512']} ms; "
          f"PSNR {report['psnr_db']['min']} dB (min), {report['psnr_db']['median']} dB (median)")

    print(f"\n{'alteration':<22}{'frames found':>16}{'clips found':>16}   (clip = {args.clip_frames} frames)")
    report["robustness"] = {}
    for name, alter in ALTERATIONS.items():
        totals = np.zeros(4, int)
        for clip in marked_all:
            totals += clip_rates(alter(clip), args.clip_frames, search=name.startswith("crop"))
        report["robustness"][name] = {"frames_found": int(totals[0]), "frames": int(totals[1]),
                                      "clips_found": int(totals[2]), "clips": int(totals[3])}
        print(f"{name:<22}{totals[0] / totals[1]:>15.1%} {totals[2] / max(totals[3], 1):>15.1%}"
              f"   ({totals[0]}/{totals[1]}, {totals[2]}/{totals[3]})")

    print(f"\n{'false positives':<40}{'frames':>14}{'clips':>14}")
    report["false_positives"] = {}
    sources = {"unmarked generated": plain_all, "unmarked generated, H.264 CRF 28": [h264(c, 28) for c in plain_all]}
    for path in args.real:
        sources[Path(path).name] = [read_real(path)]
    for name, clips in sources.items():
        totals = np.zeros(4, int)
        for clip in clips:
            totals += clip_rates(clip, args.clip_frames if len(clip) >= args.clip_frames else 1,
                                 search=args.search_false_positives, frame_stride=1 if len(clip) == 1 else 10)
        report["false_positives"][name] = {"frames_found": int(totals[0]), "frames": int(totals[1]),
                                           "clips_found": int(totals[2]), "clips": int(totals[3])}
        print(f"{name[:38]:<40}{totals[0]:>7}/{totals[1]:<6}{totals[2]:>7}/{totals[3]:<6}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
