"""Synthetic training corpus: multilingual speech with exact phoneme timing and matching motion.

Each utterance is spoken by espeak-ng in a random language, voice, rate and pitch; its
phoneme events give the articulation (visemes.articulation); the non-verbal motion (head,
gaze, blinks, brows) comes from the rule-based generator on the same audio. The audio is
then degraded (level, noise, reverberation, band limits) so that features learnt from it
carry over to recorded voices. Targets are always computed from the clean timing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE
from ..core.blendshapes import INDEX
from ..core.features import compute_features
from ..core.motion import MOTION_DIM, RuleBasedMotionGenerator
from ..core.tts import synthesize
from .visemes import MOUTH_CHANNELS, articulation

FPS = 25

# A few sentences per language, written for this corpus (rich in bilabials, rounded and
# open vowels). espeak-ng voice identifiers as keys.
TEXTS: dict[str, list[str]] = {
    "en-us": ["Bob bought a big blue map for my brother.", "Please open the window, it is warm in here.",
              "Who would have thought the moon was so bright tonight?", "Maybe we can meet at noon by the park."],
    "en": ["My mother makes marvellous apple pie.", "The robot waved and smiled at the people."],
    "fr": ["Bonjour, je m'appelle Paul et j'habite à Paris.", "Le petit bateau bleu avance sur la mer."],
    "de": ["Guten Morgen, mein Bruder baut ein neues Boot.", "Bitte bring mir bald das blaue Buch."],
    "es": ["Buenos días, mi madre prepara la comida.", "El perro bebe agua en el parque bonito."],
    "it": ["Buongiorno, il mio babbo mangia la pasta.", "Piove molto, prendi l'ombrello blu per favore."],
    "pt": ["Bom dia, o meu pai bebe um café bem quente.", "A menina pinta um barco muito bonito."],
    "nl": ["Goedemorgen, mijn broer bouwt een mooie boot.", "Mama maakt pannenkoeken met boter."],
    "pl": ["Dzień dobry, mama piecze pyszne bułki.", "Mój brat bardzo lubi białe mleko."],
    "ru": ["Доброе утро, мама моет раму.", "Мы были в большом парке у моря."],
    "cmn": ["你好，我妈妈买了一本书。", "爸爸明天去北京看朋友。"],
    "ja": ["おはようございます、母はパンを買いました。", "明日は晴れますか。"],
}


@dataclass
class Utterance:
    features: np.ndarray     # (T, 80) log-mel of the (augmented) audio
    loudness_db: np.ndarray  # (T,)
    voice_activity: np.ndarray  # (T,)
    motion: np.ndarray       # (T, MOTION_DIM) targets, MotionFrame.to_vector layout
    meta: dict


def augment(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Level, noise, reverberation and band limits: the ways recordings differ from clean TTS."""
    from scipy.signal import butter, fftconvolve, sosfilt  # noqa: PLC0415

    info: dict = {}
    y = x.astype(np.float64)
    if rng.random() < 0.5:  # room: exponentially decaying noise as impulse response
        rt60 = rng.uniform(0.15, 0.6)
        n = int(rt60 * SAMPLE_RATE)
        rir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
        rir[0] = 1.0 / rng.uniform(0.15, 0.5)
        y = fftconvolve(y, rir / np.abs(rir).sum() * 4.0)[:len(y)]
        info["rt60_s"] = round(rt60, 2)
    if rng.random() < 0.4:  # telephone / cheap microphone band
        lo, hi = rng.uniform(80, 300), rng.uniform(3400, 7500)
        y = sosfilt(butter(4, [lo, hi], btype="band", fs=SAMPLE_RATE, output="sos"), y)
        info["band_hz"] = [round(lo), round(hi)]
    if rng.random() < 0.6:  # white or pink noise
        snr_db = rng.uniform(10, 40)
        noise = rng.standard_normal(len(y))
        if rng.random() < 0.5:
            spectrum = np.fft.rfft(noise) / np.sqrt(np.maximum(np.arange(len(noise) // 2 + 1), 1))
            noise = np.fft.irfft(spectrum, len(noise))
        p_signal = np.mean(y ** 2) + 1e-12
        y = y + noise * np.sqrt(p_signal / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr_db / 10))
        info["snr_db"] = round(snr_db, 1)
    gain_db = rng.uniform(-18, 0)
    y = y / (np.abs(y).max() + 1e-9) * 10 ** (gain_db / 20)
    info["peak_db"] = round(gain_db, 1)
    return y.astype(np.float32), info


def make_utterance(text: str, voice: str, rng: np.random.Generator, augmented: bool = True) -> Utterance:
    """One training utterance: audio features and motion targets, frame for frame."""
    import soxr  # noqa: PLC0415

    variant = rng.choice(["", "+m1", "+m3", "+f1", "+f3", "+f4"])
    speech = synthesize(text, voice=voice + variant, rate_wpm=int(rng.integers(120, 210)),
                        pitch=int(rng.integers(25, 80)), pitch_range=int(rng.integers(20, 90)))
    lead = np.zeros(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), np.float32)
    tail = np.zeros(int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), np.float32)
    clean = np.concatenate([lead, soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE), tail])
    offset = len(lead) / SAMPLE_RATE
    phones = [(p.phoneme, p.start_s + offset, p.end_s + offset) for p in speech.phonemes]
    audio, info = augment(clean, rng) if augmented else (clean, {})

    # Non-verbal motion from the clean audio (the augmentation must not change the targets).
    clean_features = compute_features(clean, FPS)
    generator = RuleBasedMotionGenerator(FPS, seed=int(rng.integers(1 << 31)))
    motion = np.stack([m.to_vector() for m in generator.generate(clean_features)])
    mouth = articulation(phones, len(motion), FPS)
    channels = [INDEX[name] for name in MOUTH_CHANNELS]
    motion[:, channels] = mouth[:, channels]

    features = compute_features(audio, FPS)
    assert len(features) == len(motion)
    meta = {"text": text, "voice": voice + variant, "duration_s": round(len(clean) / SAMPLE_RATE, 3),
            "phones": [[p, round(s, 4), round(e, 4)] for p, s, e in phones], "augmentation": info}
    return Utterance(features.features, features.loudness_db, features.voice_activity, motion, meta)


def build_corpus(out_dir: str | Path, minutes: float, seed: int = 0, languages: list[str] | None = None,
                 progress=None) -> dict:
    """Synthesise about `minutes` of speech into `out_dir` (corpus.npz + corpus.json). Returns a summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    languages = languages or list(TEXTS)
    unknown = sorted(set(languages) - set(TEXTS))
    if unknown:
        raise ValueError(f"no texts for {', '.join(unknown)}; known: {', '.join(TEXTS)}")
    rng = np.random.default_rng(seed)
    utterances: list[Utterance] = []
    total_s = 0.0
    while total_s < minutes * 60:
        language = str(rng.choice(languages))
        utterance = make_utterance(str(rng.choice(TEXTS[language])), language, rng)
        utterance.meta["language"] = language
        utterances.append(utterance)
        total_s += utterance.meta["duration_s"]
        if progress:
            progress(utterance.meta["duration_s"])
    lengths = save_utterances(out / "corpus.npz", utterances)
    summary = {"fps": FPS, "motion_dim": MOTION_DIM, "utterances": len(utterances), "frames": int(lengths.sum()),
               "minutes": round(total_s / 60, 2), "languages": sorted({u.meta["language"] for u in utterances}),
               "seed": seed}
    (out / "corpus.json").write_text(json.dumps({**summary, "items": [u.meta for u in utterances]}, indent=1,
                                                ensure_ascii=False))
    return summary


def save_utterances(path: str | Path, utterances: list[Utterance]) -> np.ndarray:
    """Write utterances into one .npz: frames concatenated (features, loudness_db, voice_activity,
    motion) and `lengths`, the frame count of each utterance. Returns the lengths."""
    lengths = np.array([len(u.motion) for u in utterances])
    np.savez_compressed(
        path,
        features=np.concatenate([u.features for u in utterances]).astype(np.float16),
        loudness_db=np.concatenate([u.loudness_db for u in utterances]),
        voice_activity=np.concatenate([u.voice_activity for u in utterances]),
        motion=np.concatenate([u.motion for u in utterances]),
        lengths=lengths,
    )
    return lengths
