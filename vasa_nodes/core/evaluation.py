"""Talking-face metrics, measured with the face tracker on video frames.

- bilabial closure: fraction of /p/, /b/, /m/ phones during which the lips close;
- mouth closed in silence: fraction of silent frames with closed lips;
- agreement with a real speaker on the same audio: correlation of mouth apertures and the
  lag of best correlation;
- head motion ΔP (mean rotation change per frame, degrees) and blink rate (per minute).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import Audio
from .face_metrics import measure, relative_rotation
from .portrait import FaceFitter

CLOSED_APERTURE = 0.02
"""Inner-lip gap (face heights) below which the lips count as closed."""

BILABIALS = {"p", "b", "m"}
"""Bilabial phones, lower-cased: espeak mnemonics and ARPAbet (P, B, M) alike."""


class EvaluationError(ValueError):
    """Input the evaluation cannot use; one line for the user."""


@dataclass(frozen=True)
class Phone:
    phone: str
    start_s: float
    end_s: float

    @property
    def is_silence(self) -> bool:
        return self.phone.upper() in ("SIL", "SP", "") or self.phone.startswith("_")


@dataclass
class Track:
    """Per-frame measurements of one video (NaN where the tracker lost the face)."""

    fps: float
    aperture: np.ndarray       # (T,) inner-lip gap / face height
    eye_opening: np.ndarray    # (T,) mean of both eyes, lid gap / eye width
    rotation_deg: np.ndarray   # (T, 3) yaw, pitch, roll relative to the first tracked frame

    @property
    def duration_s(self) -> float:
        return len(self.aperture) / self.fps

    def resampled(self, fps: float, n: int) -> "Track":
        """The same track at another frame rate, `n` frames, by linear interpolation in time."""
        src = (np.arange(len(self.aperture)) + 0.5) / self.fps
        dst = (np.arange(n) + 0.5) / fps

        def interp(y):
            ok = np.isfinite(y)
            return np.interp(dst, src[ok], y[ok], left=np.nan, right=np.nan) if ok.sum() > 1 else np.full(n, np.nan)

        rot = np.stack([interp(self.rotation_deg[:, k]) for k in range(3)], 1)
        return Track(fps, interp(self.aperture), interp(self.eye_opening), rot)


def track_frames(frames: Iterable[np.ndarray], fps: float, fitter: FaceFitter) -> Track:
    """Run the face tracker on RGB frames."""
    aperture, eyes, rot = [], [], []
    reference = None
    for image in frames:
        lm = fitter.landmarks(np.asarray(image))
        if lm is None:
            aperture.append(np.nan)
            eyes.append(np.nan)
            rot.append([np.nan] * 3)
            continue
        m = measure(lm)
        if reference is None:
            reference = lm
        aperture.append(m.mouth_aperture)
        eyes.append(float(np.mean(m.eye_opening)))
        rot.append(np.degrees(relative_rotation(reference, lm)))
    if reference is None:
        raise EvaluationError("the face tracker found no face in any frame")
    return Track(fps, np.array(aperture), np.array(eyes), np.array(rot, np.float64))


def read_video_frames(path: str | Path) -> tuple[list[np.ndarray], float]:
    """All frames of a video as RGB arrays, and its frame rate."""
    import av  # noqa: PLC0415

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EvaluationError(f"no video stream in {path}")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except av.FFmpegError as exc:
        raise EvaluationError(f"cannot read video {path}: {str(exc).splitlines()[0]}") from None
    if not frames:
        raise EvaluationError(f"video has no frames: {path}")
    return frames, fps


def align_transcript(audio: Audio, transcript: str) -> list[Phone]:
    """Phone times of English speech from its transcript (pocketsphinx forced alignment)."""
    from pocketsphinx import Decoder  # noqa: PLC0415

    # Hyphens and dashes separate words ("forty-two", "picture-books"); curly apostrophes are apostrophes.
    text = transcript.lower().replace("\u2019", "'").replace("\u2018", "'")
    words = " ".join("".join(c if c.isalpha() or c == "'" else " " for c in text).split())
    words = " ".join(w.strip("'") for w in words.split() if w.strip("'"))
    if not words:
        raise EvaluationError("the transcript has no words")
    # A little dither (-66 dBFS): pocketsphinx's feature normalisation fails on digital silence.
    dither = np.random.default_rng(0).standard_normal(len(audio.samples)) * 5e-4
    pcm = (np.clip(audio.samples + dither, -1, 1) * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=audio.sample_rate, bestpath=False, loglevel="FATAL")
    for word in sorted(set(words.split())):
        if decoder.lookup_word(word) is None:  # not in the dictionary: pronounce it with espeak-ng
            phones = _espeak_pronunciation(word)
            if phones:
                decoder.add_word(word, phones, True)
    try:
        decoder.set_align_text(words)
    except (RuntimeError, KeyError) as exc:
        raise EvaluationError(f"cannot align the transcript (word missing from the dictionary?): {exc}") from None
    # The first pass finds the words; the second, in alignment mode, times their phones.
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    try:
        decoder.set_alignment()
    except RuntimeError:
        raise EvaluationError("the transcript could not be aligned to the audio (does it match the speech?)") from None
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    alignment = decoder.get_alignment()
    if alignment is None:
        raise EvaluationError("the transcript could not be aligned to the audio")
    return [Phone(p.name, p.start / 100.0, (p.start + p.duration) / 100.0) for w in alignment for p in w]


# espeak-ng English phoneme mnemonics -> CMU ARPAbet (longest prefix first), for words
# missing from pocketsphinx's dictionary.
_ESPEAK_ARPABET = sorted({
    "tS": "CH", "dZ": "JH", "aI@": "AY ER", "aI": "AY", "aU": "AW", "eI": "EY", "oU": "OW", "OI": "OY",
    "O:": "AO", "A:": "AA", "A@": "AA R", "e@": "EH R", "i@": "IH R", "o@": "AO R", "O@": "AO R", "U@": "UH R",
    "3:": "ER", "3": "ER", "@L": "AH L", "i:": "IY", "u:": "UW", "I": "IH", "i": "IY", "E": "EH", "a": "AE",
    "&": "AE", "0": "AA", "O": "AO", "A": "AA", "V": "AH", "U": "UH", "u": "UW", "@": "AH", "e": "EH", "o": "OW",
    "T": "TH", "D": "DH", "S": "SH", "Z": "ZH", "N": "NG", "j": "Y", "w": "W", "h": "HH", "r": "R", "l": "L",
    "m": "M", "n": "N", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V",
    "s": "S", "z": "Z", "x": "K", "4": "T",
}.items(), key=lambda kv: -len(kv[0]))


def _espeak_pronunciation(word: str) -> str:
    """ARPAbet pronunciation of an English word as espeak-ng reads it ("" if none)."""
    from .tts import TTSError, synthesize  # noqa: PLC0415

    try:
        events = synthesize(word, voice="en-us").phonemes
    except TTSError:
        return ""
    out = []
    for e in events:
        p = e.phoneme.strip().lstrip("'ˈ,%=")
        if not p or p.startswith("_"):
            continue
        for mnemonic, arpabet in _ESPEAK_ARPABET:
            if p.startswith(mnemonic):
                out.append(arpabet)
                break
    return " ".join(out)


def read_phones(path: str | Path) -> list[Phone]:
    """Phone times from JSON: a list of [phone, start_s, end_s] (or objects with those keys)."""
    try:
        data = json.loads(Path(path).read_text())
        return [Phone(str(p[0]), float(p[1]), float(p[2])) if isinstance(p, list)
                else Phone(str(p["phone"]), float(p["start_s"]), float(p["end_s"])) for p in data]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise EvaluationError(f"cannot read phone times from {path}: {exc}") from None


def _frames_of(span: tuple[float, float], fps: float, n: int) -> slice:
    return slice(max(int(np.floor(span[0] * fps)), 0), min(int(np.ceil(span[1] * fps)), n))


def bilabial_closure(track: Track, phones: list[Phone]) -> tuple[float, int]:
    """(fraction of bilabial phones during which the lips close, number of such phones)."""
    closed = []
    for p in phones:
        if p.phone.lower() in BILABIALS:
            seg = track.aperture[_frames_of((p.start_s, p.end_s), track.fps, len(track.aperture))]
            seg = seg[np.isfinite(seg)]
            if len(seg):
                closed.append(seg.min() < CLOSED_APERTURE)
    return (float(np.mean(closed)) if closed else float("nan")), len(closed)


def silent_frames(n: int, fps: float, phones: list[Phone] | None, voice_activity: np.ndarray | None,
                  margin_s: float = 0.2) -> np.ndarray:
    """Frames at least `margin_s` away from any speech (from phone times, else from voice activity)."""
    speech = np.zeros(n, bool)
    if phones:
        for p in phones:
            if not p.is_silence:
                speech[_frames_of((p.start_s - margin_s, p.end_s + margin_s), fps, n)] = True
    elif voice_activity is not None:
        va = np.asarray(voice_activity)[:n] > 0.5
        grow = int(round(margin_s * fps))
        for k in np.nonzero(va)[0]:
            speech[max(k - grow, 0):k + grow + 1] = True
    return ~speech


def closed_in_silence(track: Track, silent: np.ndarray) -> tuple[float, int]:
    ap = track.aperture[silent[:len(track.aperture)]]
    ap = ap[np.isfinite(ap)]
    return (float(np.mean(ap < CLOSED_APERTURE)) if len(ap) else float("nan")), int(len(ap))


def best_lag_correlation(a: np.ndarray, b: np.ndarray, fps: float, max_lag_s: float = 0.2) -> tuple[float, float]:
    """(correlation at the best lag, lag in ms; positive: `a` lags `b`)."""
    best = (-np.inf, 0.0)
    max_lag = int(round(max_lag_s * fps))
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(lag, 0):len(a) + min(lag, 0)]
        y = b[max(-lag, 0):len(b) + min(-lag, 0)]
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 10 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
            continue
        r = float(np.corrcoef(x[ok], y[ok])[0, 1])
        if r > best[0]:
            best = (r, 1000.0 * lag / fps)
    return best if np.isfinite(best[0]) else (float("nan"), 0.0)


def head_motion_delta_p(track: Track) -> float:
    """Mean rotation change per frame, degrees."""
    d = np.linalg.norm(np.diff(track.rotation_deg, axis=0), axis=1)
    d = d[np.isfinite(d)]
    return float(d.mean()) if len(d) else float("nan")


def head_motion_vs_loudness(track: Track, loudness_db: np.ndarray, window_s: float = 0.5) -> float:
    """Correlation between how fast the head moves and how loud the speech is, both averaged
    over `window_s` (speakers move their heads more while they talk and on stressed words)."""
    speed = np.linalg.norm(np.diff(track.rotation_deg, axis=0), axis=1)
    loud = np.asarray(loudness_db, np.float64)[1:len(speed) + 1]
    n = min(len(speed), len(loud))
    speed, loud = speed[:n], loud[:n]
    ok = np.isfinite(speed) & np.isfinite(loud)
    if ok.sum() < 10:
        return float("nan")
    k = max(1, int(round(window_s * track.fps)))
    kernel = np.ones(k) / k
    a = np.convolve(np.where(ok, speed, np.nanmean(speed[ok])), kernel, "same")
    b = np.convolve(np.where(ok, loud, np.mean(loud[ok])), kernel, "same")
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def blink_rate(track: Track, closed_fraction: float = 0.6, min_closed_s: float = 0.06) -> float:
    """Blinks per minute: dips of the eye opening below `closed_fraction` of its median lasting
    at least `min_closed_s` (shorter dips are tracker jitter)."""
    e = track.eye_opening
    ok = np.isfinite(e)
    if ok.sum() < 2:
        return float("nan")
    shut = np.where(ok, e < closed_fraction * np.median(e[ok]), False)
    min_frames = max(1, int(round(min_closed_s * track.fps)))
    blinks, run = 0, 0
    for closed in shut:
        run = run + 1 if closed else 0
        blinks += run == min_frames
    return 60.0 * blinks / track.duration_s


def summarise(track: Track) -> dict:
    ok = np.isfinite(track.aperture)
    return {
        "frames": int(len(track.aperture)),
        "tracked_fraction": round(float(ok.mean()), 4),
        "head_motion_delta_p_deg": round(head_motion_delta_p(track), 4),
        "blinks_per_minute": round(blink_rate(track), 2),
        "mouth_aperture_median": round(float(np.nanmedian(track.aperture)), 4),
    }


def summarise_references(reports: list[dict]) -> dict:
    """Medians over per-video reports (vasa-eval with several --reference videos): agreement
    with real speakers is judged over many of them, since one speaker's habits (a mouth
    that stays parted in pauses, say) can make any single video unrepresentative. Reports
    with an "error" are counted but left out of the figures."""
    measured = [r for r in reports if "error" not in r]

    def median(*keys: str) -> float:
        values = []
        for r in measured:
            v = r
            for k in keys:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None and np.isfinite(v):
                values.append(v)
        return round(float(np.median(values)), 4) if values else float("nan")

    lags = np.array([r["aperture_vs_reference"]["lag_ms"] for r in measured
                     if np.isfinite(r["aperture_vs_reference"]["correlation"])])
    correlations = [r["aperture_vs_reference"]["correlation"] for r in measured]
    return {
        "videos": len(reports),
        "measured": len(measured),
        "aperture_vs_reference": {
            "median_correlation": median("aperture_vs_reference", "correlation"),
            "min_correlation": round(float(np.nanmin(correlations)), 4) if measured else float("nan"),
            "max_correlation": round(float(np.nanmax(correlations)), 4) if measured else float("nan"),
            "median_lag_ms": round(float(np.median(lags)), 1) if len(lags) else float("nan"),
            "lag_within_40ms_fraction": round(float(np.mean(np.abs(lags) <= 40.0)), 4) if len(lags) else float("nan"),
        },
        "loudness_vs_reference": {"median_correlation": median("loudness_vs_reference", "correlation")},
        "mouth_closed_in_silence": {"median_fraction": median("mouth_closed_in_silence", "fraction")},
        "generated": {"head_motion_delta_p_deg": median("generated", "head_motion_delta_p_deg"),
                      "blinks_per_minute": median("generated", "blinks_per_minute")},
        "reference": {"head_motion_delta_p_deg": median("reference", "head_motion_delta_p_deg"),
                      "blinks_per_minute": median("reference", "blinks_per_minute")},
    }
