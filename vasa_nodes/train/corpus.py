"""Synthetic training corpus: multilingual speech with exact phoneme timing and matching motion.

Each utterance is spoken by espeak-ng in a random language, voice, rate and pitch; its
phoneme events give the articulation (visemes.articulation); the non-verbal motion (head,
gaze, blinks, brows) comes from the rule-based generator on the same audio. The audio is
then degraded (level, noise, reverberation, band limits) so that features learnt from it
carry over to recorded voices. Targets are always computed from the clean timing.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE
from ..core.blendshapes import INDEX
from ..core.features import compute_features
from ..core.motion import EMOTIONS, MOTION_DIM, Controls, RuleBasedMotionGenerator, emotion_offset
from ..core.motion_model import CONTROL_DIM, controls_vector
from ..core.tts import synthesize
from .visemes import MOUTH_CHANNELS, articulation, bilabial_frames, seal_lips

FPS = 25

WORD_LISTS = {"en-us": "en_US", "en": "en_US", "fr": "fr_FR", "de": "de_DE", "es": "es_ES", "it": "it_IT",
              "nl": "nl_NL", "pl": "pl_PL", "ru": "ru_RU", "cmn": "zh_CN", "ja": "ja_JP"}
"""espeak-ng voice -> Faker locale whose word list (faker.providers.lorem: common words of
the language) makes random-word sentences (`random_sentence`). Portuguese has none there."""

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
    controls: np.ndarray | None = None  # (T, CONTROL_DIM) the controls the motion obeys (None: all free)


def augment(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Level, noise, reverberation, band limits and codec-like quantisation: the ways
    recordings differ from clean TTS (and from each other)."""
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
    if rng.random() < 0.2:  # coarse quantisation (8-bit / mu-law-like codecs)
        bits = int(rng.integers(6, 10))
        peak = np.abs(y).max() + 1e-9
        y = np.round(y / peak * (2 ** (bits - 1))) / (2 ** (bits - 1)) * peak
        info["bits"] = bits
    gain_db = rng.uniform(-30, 0)
    y = y / (np.abs(y).max() + 1e-9) * 10 ** (gain_db / 20)
    info["peak_db"] = round(gain_db, 1)
    return y.astype(np.float32), info


def speed_and_pitch(clean: np.ndarray, phones, factor: float):
    """Play `clean` `factor` times faster (pitch and formants up by the same factor), with
    its phone times to match: another voice size and speaking rate from one recording."""
    import soxr  # noqa: PLC0415

    y = soxr.resample(clean, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)
    return y, [(p, s / factor, e / factor) for p, s, e in phones]


def random_controls(rng: np.random.Generator) -> Controls:
    """Controls an utterance is performed with: often free, sometimes commanded."""
    emotion = str(rng.choice(EMOTIONS)) if rng.random() < 0.6 else "neutral"
    return Controls(
        gaze_enabled=bool(rng.random() < 0.35), gaze_yaw=float(rng.uniform(-0.45, 0.45)),
        gaze_pitch=float(rng.uniform(-0.3, 0.3)),
        distance_enabled=bool(rng.random() < 0.35), head_scale=float(np.exp(rng.uniform(-0.35, 0.35))),
        emotion=emotion, emotion_intensity=float(rng.uniform(0.3, 1.0)) if emotion != "neutral" else 0.0)


def performed_motion(clean: np.ndarray, phones, alphabet: str, controls: Controls, rng: np.random.Generator,
                     n_frames: int) -> np.ndarray:
    """Motion targets for clean speech with known phone times: articulation from the phones,
    head, gaze, blinks and brows from the rules on the audio, all under `controls`."""
    clean_features = compute_features(clean, FPS)
    generator = RuleBasedMotionGenerator(FPS, seed=int(rng.integers(1 << 31)), controls=controls)
    generator.settle()
    motion = np.stack([m.to_vector() for m in generator.generate(clean_features)])[:n_frames]
    mouth = articulation(with_rests(phones, len(motion) / FPS), len(motion), FPS, alphabet=alphabet)
    channels = [INDEX[name] for name in MOUTH_CHANNELS]
    offset = emotion_offset(controls)
    motion[:, channels] = np.clip(mouth[:, channels] + offset[channels], 0.0, 1.0)
    # An emotion's jaw offset (surprise) must not part the lips of a /p b m/.
    seal_lips(motion, bilabial_frames(phones, len(motion), FPS, alphabet))
    return motion


def with_rests(phones, duration_s: float, min_gap_s: float = 0.02) -> list:
    """The phones with explicit rests ("_") filling every gap, before the first and after the
    last: in a pause the lips rest, instead of holding the nearest sound's shape."""
    out, t = [], 0.0
    for p, s, e in sorted(phones, key=lambda x: x[1]):
        if s - t > min_gap_s:
            out.append(("_", t, s))
        out.append((p, s, e))
        t = max(t, e)
    if duration_s - t > min_gap_s:
        out.append(("_", t, duration_s))
    return out


@functools.cache
def _word_source(locale: str):
    """Faker's generator for `locale`, made once per locale (each sentence reseeds it)."""
    from faker import Faker  # noqa: PLC0415  (training only)

    return Faker(locale)


def random_sentence(language: str, rng: np.random.Generator) -> str | None:
    """A sentence of 4-10 random common words of `language` (None where it has no word list).

    The fixed sentences (TEXTS) are few, so the phone sequences a corpus built from them
    alone can teach repeat; random words put every sound of the language next to every
    other, as running speech does, while espeak-ng still times each phoneme exactly."""
    locale = WORD_LISTS.get(language)
    if locale is None:
        return None
    words = _word_source(locale)
    words.seed_instance(int(rng.integers(2**31)))
    return words.sentence(nb_words=int(rng.integers(4, 11)), variable_nb_words=False)


def make_utterance(texts: list[str] | str, voice: str, rng: np.random.Generator, augmented: bool = True,
                   controls: Controls | None = None) -> Utterance:
    """One training utterance: a few sentences in one voice with pauses between them; audio
    features and motion targets, frame for frame."""
    import soxr  # noqa: PLC0415

    texts = [texts] if isinstance(texts, str) else texts
    variant = str(rng.choice(["", "+m1", "+m3", "+f1", "+f3", "+f4"]))
    rate, pitch, pitch_range = int(rng.integers(120, 210)), int(rng.integers(25, 80)), int(rng.integers(20, 90))
    parts = [np.zeros(int(rng.uniform(0.2, 1.5) * SAMPLE_RATE), np.float32)]
    phones = []
    for k, text in enumerate(texts):
        speech = synthesize(text, voice=voice + variant, rate_wpm=rate, pitch=pitch, pitch_range=pitch_range)
        offset = sum(len(p) for p in parts) / SAMPLE_RATE
        phones += [(p.phoneme, p.start_s + offset, p.end_s + offset) for p in speech.phonemes]
        parts.append(soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE).astype(np.float32))
        pause = rng.uniform(0.2, 1.0) if rng.random() < 0.7 else rng.uniform(1.5, 5.0)
        parts.append(np.zeros(int((pause if k < len(texts) - 1 else rng.uniform(0.3, 2.0)) * SAMPLE_RATE),
                              np.float32))
    clean = np.concatenate(parts)
    controls = controls or random_controls(rng)
    meta = {"text": " ".join(texts), "voice": voice + variant, "phones": [[p, round(s, 4), round(e, 4)]
                                                                          for p, s, e in phones]}
    return utterance_from_audio(clean, phones, "espeak", controls, rng, augmented, meta)


def utterance_from_audio(clean: np.ndarray, phones, alphabet: str, controls: Controls, rng: np.random.Generator,
                         augmented: bool, meta: dict) -> Utterance:
    """Features of the (augmented) audio and the motion performed on the clean one."""
    if augmented and rng.random() < 0.3:
        factor = float(rng.uniform(0.9, 1.12))
        clean, phones = speed_and_pitch(clean, phones, factor)
        meta = {**meta, "speed_pitch_factor": round(factor, 3)}
        if "phones" in meta:  # the phone times the motion was made from
            meta["phones"] = [[p, round(s, 4), round(e, 4)] for p, s, e in phones]
    audio, info = augment(clean, rng) if augmented else (clean, {})
    features = compute_features(audio, FPS)
    motion = performed_motion(clean, phones, alphabet, controls, rng, len(features))
    assert len(features) == len(motion)
    meta = {**meta, "duration_s": round(len(clean) / SAMPLE_RATE, 3), "augmentation": info,
            "controls": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(controls).items()}}
    ctrl = np.repeat(controls_vector(controls)[None], len(motion), 0)
    return Utterance(features.features, features.loudness_db, features.voice_activity, motion, meta, ctrl)


def build_corpus(out_dir: str | Path, minutes: float, seed: int = 0, languages: list[str] | None = None,
                 progress=None, random_words: float = 0.0) -> dict:
    """Synthesise about `minutes` of speech into `out_dir` (corpus.npz + corpus.json). Returns a summary.

    With `random_words` > 0, each sentence is, with that probability, a random-word sentence
    (random_sentence) instead of a fixed one, in languages that have a word list. At 0 the
    corpus is exactly what earlier releases built from the same seed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    languages = languages or list(TEXTS)
    unknown = sorted(set(languages) - set(TEXTS))
    if unknown:
        raise ValueError(f"no texts for {', '.join(unknown)}; known: {', '.join(TEXTS)}")
    if not 0.0 <= random_words <= 1.0:
        raise ValueError(f"random_words must be within 0..1, got {random_words:g}")
    rng = np.random.default_rng(seed)
    utterances: list[Utterance] = []
    total_s = 0.0
    while total_s < minutes * 60:
        language = str(rng.choice(languages))
        texts = [str(t) for t in rng.choice(TEXTS[language], size=int(rng.integers(1, 4)))]
        if random_words > 0.0:
            texts = [(random_sentence(language, rng) or t) if rng.random() < random_words else t for t in texts]
        utterance = make_utterance(texts, language, rng)
        utterance.meta["language"] = language
        utterances.append(utterance)
        total_s += utterance.meta["duration_s"]
        if progress:
            progress(utterance.meta["duration_s"])
    lengths = save_utterances(out / "corpus.npz", utterances)
    summary = {"fps": FPS, "motion_dim": MOTION_DIM, "utterances": len(utterances), "frames": int(lengths.sum()),
               "minutes": round(total_s / 60, 2), "languages": sorted({u.meta["language"] for u in utterances}),
               "seed": seed, "random_words": random_words}
    (out / "corpus.json").write_text(json.dumps({**summary, "items": [u.meta for u in utterances]}, indent=1,
                                                ensure_ascii=False))
    return summary


def save_utterances(path: str | Path, utterances: list[Utterance]) -> np.ndarray:
    """Write utterances into one .npz: frames concatenated (features, loudness_db, voice_activity,
    motion, controls) and `lengths`, the frame count of each utterance. Returns the lengths."""
    lengths = np.array([len(u.motion) for u in utterances])
    np.savez_compressed(
        path,
        features=np.concatenate([u.features for u in utterances]).astype(np.float16),
        loudness_db=np.concatenate([u.loudness_db for u in utterances]),
        voice_activity=np.concatenate([u.voice_activity for u in utterances]),
        motion=np.concatenate([u.motion for u in utterances]),
        controls=np.concatenate([u.controls if u.controls is not None else
                                 np.zeros((len(u.motion), CONTROL_DIM), np.float32) for u in utterances]),
        lengths=lengths,
    )
    return lengths
