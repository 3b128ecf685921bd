"""Recorded speech with transcripts -> training utterances.

A speech folder holds one or more `transcripts.tsv` files (any depth), tab-separated with a
header: `file` (audio path relative to the .tsv), `text`, and optionally `language` (or a
note column starting with the language code, e.g. `es MLS spk13697`); English is assumed
otherwise. Phone times come from pocketsphinx forced alignment for English, and for other
languages from aligning the recording to espeak-ng's reading of the same text (dynamic
time warping of their spectra), whose phone times are exact. Motion targets are then
made exactly as for synthetic speech (vasa_nodes.train.corpus), and each recording is
used several times under different augmentations and controls.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE, Audio, load_audio
from ..core.evaluation import EvaluationError, align_transcript
from ..core.features import compute_features
from ..core.tts import TTSError
from .corpus import FPS, Utterance, random_controls, utterance_from_audio

log = logging.getLogger(__name__)

# Language codes of the transcripts -> espeak-ng voices.
ESPEAK_VOICES = {"en": "en-us", "de": "de", "es": "es", "fr": "fr", "sv": "sv", "zh": "cmn", "ja": "ja", "it": "it",
                 "pt": "pt", "nl": "nl", "pl": "pl", "ru": "ru"}


@dataclass
class Recording:
    path: Path
    text: str
    language: str


def find_recordings(folder: str | Path) -> list[Recording]:
    """Every (audio, transcript, language) listed by transcripts.tsv files under `folder`."""
    out = []
    for tsv in sorted(Path(folder).rglob("transcripts.tsv")):
        with tsv.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if not row.get("file") or not row.get("text"):
                    continue
                language = (row.get("language") or "").strip()
                if not language:
                    note = next((v for k, v in row.items() if k not in ("file", "text") and v), "")
                    code = note.split()[0] if note.split() else ""
                    language = code if code in ESPEAK_VOICES else "en"
                out.append(Recording(tsv.parent / row["file"], row["text"], language))
    return out


def clean_transcript(text: str) -> str:
    """Drop markup such as <cutoff-x>, [laughter] and <unk>; keep the words."""
    return " ".join(re.sub(r"<[^>]*>|\[[^\]]*\]", " ", text).split())


SILENCE_BELOW_PEAK_DB = 35.0
"""To the DTW alignment, frames whose level lies this far below the loudest frame's are silence,"""
ABOVE_NOISE_DB = 12.0
"""... or less than this above the noise floor (the level of the quietest tenth of the frames)."""


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Monotonic alignment of feature rows a (n, d) to b (m, d): for each row of a, the
    matching row of b. Steps of 0, 1 or 2 rows of b per row of a (vectorised per row)."""
    an = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-9)
    bn = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-9)
    cost = 1.0 - an @ bn.T
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    step = np.zeros((n, m), np.int8)
    acc[0, :3] = cost[0, :3].cumsum()
    for i in range(1, n):
        prev = acc[i - 1]
        cand = np.stack([prev, np.concatenate([[np.inf], prev[:-1]]), np.concatenate([[np.inf, np.inf], prev[:-2]])])
        step[i] = cand.argmin(0)
        acc[i] = cost[i] + cand.min(0)
    j = m - 1
    path = np.zeros(n, int)
    for i in range(n - 1, -1, -1):
        path[i] = j
        j = max(j - int(step[i, j]), 0)
    return path


def _cepstra(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """(cepstra at 100 fps of the part between the first and the last sound, index of its first frame)."""
    from scipy.fft import dct  # noqa: PLC0415

    frames = compute_features(samples, FPS * 4)  # 100 fps for a finer alignment
    mel = frames.features
    # Leading and trailing silence differ between a recording and espeak's reading; left in,
    # they pin the path's ends and drag the first and last phones into the silence.
    level = frames.loudness_db
    threshold = max(level.max() - SILENCE_BELOW_PEAK_DB, np.percentile(level, 10) + ABOVE_NOISE_DB)
    sounding = np.nonzero(level > threshold)[0]
    first, last = (int(sounding[0]), int(sounding[-1]) + 1) if len(sounding) else (0, len(mel))
    c = dct(mel[first:last], type=2, norm="ortho", axis=1)[:, 1:20]
    return c - c.mean(0), first


def align_with_tts(audio: Audio, text: str, voice: str) -> list[tuple[str, float, float]]:
    """Phone times of a recording in any espeak-ng language: espeak reads the text, and its
    exact phone times are carried onto the recording through a DTW alignment."""
    import soxr  # noqa: PLC0415

    from ..core.tts import synthesize  # noqa: PLC0415

    speech = synthesize(text, voice=voice, rate_wpm=160)
    synth = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE).astype(np.float32)
    (a, a_first), (b, b_first) = _cepstra(audio.samples), _cepstra(synth)
    path = dtw_path(b, a)  # synthetic frame -> recording frame, both from their first sound
    rate = FPS * 4

    def to_recording(t: float) -> float:
        k = t * rate - b_first
        if k < 0:  # before the first sound: the silence, shifted with it
            return max((a_first + k) / rate, 0.0)
        if k >= len(path):
            return (a_first + path[-1] + (k - len(path) + 1)) / rate
        return float(a_first + path[int(k)]) / rate

    return [(p.phoneme, to_recording(p.start_s), to_recording(p.end_s)) for p in speech.phonemes]


def phones_of(rec: Recording, audio: Audio) -> tuple[list[tuple[str, float, float]], str]:
    """(phone times, alphabet) of a recording."""
    text = clean_transcript(rec.text)
    if rec.language == "en":
        try:
            return [(p.phone, p.start_s, p.end_s) for p in align_transcript(audio, text)], "arpabet"
        except EvaluationError as exc:
            log.warning("%s: pocketsphinx alignment failed (%s); aligning to espeak instead", rec.path.name, exc)
    return align_with_tts(audio, text, ESPEAK_VOICES.get(rec.language, "en-us")), "espeak"


def recorded_utterances(folder: str | Path, copies: int, rng: np.random.Generator, hold_out: list[str] = (),
                        progress=None) -> tuple[list[Utterance], list[dict]]:
    """Utterances from every recording under `folder` (paths containing any `hold_out`
    string are skipped): one clean copy and copies - 1 augmented ones, each with its own
    controls. Returns (utterances, one summary row per recording)."""
    utterances, rows = [], []
    for rec in find_recordings(folder):
        if any(h in str(rec.path) for h in hold_out):
            continue
        if not clean_transcript(rec.text):
            log.warning("%s: skipped: no words in its transcript", rec.path)
            continue
        try:
            audio = load_audio(rec.path)
            phones, alphabet = phones_of(rec, audio)
        except (ValueError, OSError, TTSError) as exc:
            log.warning("%s: skipped: %s", rec.path, str(exc).splitlines()[0])
            continue
        meta = {"source": str(rec.path.relative_to(Path(folder))) if rec.path.is_relative_to(Path(folder))
                else str(rec.path), "language": rec.language, "alphabet": alphabet,
                "phones": [[p, round(s, 4), round(e, 4)] for p, s, e in phones]}
        for k in range(copies):
            u = utterance_from_audio(audio.samples, phones, alphabet, random_controls(rng), rng, augmented=k > 0,
                                     meta=meta)
            u.meta["language"] = rec.language
            utterances.append(u)
        rows.append({"source": meta["source"], "language": rec.language, "alphabet": alphabet,
                     "duration_s": round(audio.duration_s, 2)})
        if progress:
            progress(audio.duration_s)
    return utterances, rows
