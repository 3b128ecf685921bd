"""Articulation targets from timed phonemes: phoneme -> viseme -> ARKit blendshapes, with coarticulation.

Used to build training targets for the motion model from speech whose phoneme timing is
known exactly (espeak-ng events, or forced alignment of recorded speech). Phonemes are
espeak-ng's ASCII mnemonics (ARPAbet from pocketsphinx is mapped onto them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.blendshapes import INDEX, NUM_BLENDSHAPES
from ..core.lip_seal import seal_lips as _seal

# Each viseme: the ARKit coefficients of its articulatory target, and its dominance (how
# strongly it resists its neighbours: lip closure for /p b m/ always wins).
VISEMES: dict[str, tuple[dict[str, float], float]] = {
    "rest": ({"mouthClose": 0.02}, 0.6),
    "bilabial": ({"jawOpen": 0.06, "mouthClose": 0.06, "mouthPressLeft": 0.45, "mouthPressRight": 0.45}, 5.0),
    "labiodental": ({"jawOpen": 0.1, "mouthRollLower": 0.55, "mouthUpperUpLeft": 0.15, "mouthUpperUpRight": 0.15},
                    2.0),
    "dental": ({"jawOpen": 0.16, "tongueOut": 0.25}, 1.2),
    "alveolar": ({"jawOpen": 0.16, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1}, 0.8),
    "sibilant": ({"jawOpen": 0.07, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3}, 1.5),
    "postalveolar": ({"jawOpen": 0.1, "mouthFunnel": 0.5, "mouthPucker": 0.2}, 1.5),
    "velar": ({"jawOpen": 0.22}, 0.6),
    "rhotic": ({"jawOpen": 0.14, "mouthPucker": 0.3, "mouthFunnel": 0.15}, 1.0),
    "glide_w": ({"jawOpen": 0.08, "mouthPucker": 0.7}, 1.6),
    "glide_j": ({"jawOpen": 0.1, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3}, 1.0),
    "open": ({"jawOpen": 0.62, "mouthLowerDownLeft": 0.2, "mouthLowerDownRight": 0.2}, 1.0),
    "mid": ({"jawOpen": 0.36, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.2}, 1.0),
    "close_front": ({"jawOpen": 0.14, "mouthStretchLeft": 0.45, "mouthStretchRight": 0.45,
                     "mouthSmileLeft": 0.1, "mouthSmileRight": 0.1}, 1.0),
    "schwa": ({"jawOpen": 0.28}, 0.5),
    "open_round": ({"jawOpen": 0.42, "mouthFunnel": 0.5}, 1.1),
    "close_round": ({"jawOpen": 0.16, "mouthPucker": 0.65, "mouthFunnel": 0.2}, 1.3),
    "front_round": ({"jawOpen": 0.14, "mouthPucker": 0.55}, 1.3),
}

_SYMBOLS = [  # first matching prefix wins; espeak mnemonics (case-sensitive)
    ("schwa", ("a#", "@", "3:", "I#", "U#")),  # reduced vowels before their full forms
    ("bilabial", ("p", "b", "m")), ("labiodental", ("f", "v")), ("dental", ("T", "D")),
    ("postalveolar", ("tS", "dZ", "S", "Z", "ts`", "s`", "z`", "tS;", "c", "J")),
    ("sibilant", ("s", "z", "ts", "dz")), ("alveolar", ("t", "d", "n", "l", "L", "4", "*")),
    ("velar", ("k", "g", "N", "x", "h", "q", "G", "?", "X", "C")), ("rhotic", ("r", "R", "3", "@r")),
    ("glide_w", ("w", "W")), ("glide_j", ("j",)),
    ("close_round", ("u", "U", "o:", "oU")), ("open_round", ("o", "O", "Q", "0", "aU", "OI")),
    ("front_round", ("y", "Y", "2", "9")), ("close_front", ("i", "I", "e:", "eI")),
    ("open", ("a", "A", "&", "aI", "V")), ("mid", ("e", "E")), ("schwa", ("ə",)),
]

# pocketsphinx ARPAbet -> espeak-style mnemonic, for recorded speech aligned with a transcript.
_ARPABET = {"AA": "A", "AE": "&", "AH": "V", "AO": "O", "AW": "aU", "AY": "aI", "EH": "E", "ER": "3",
            "EY": "eI", "IH": "I", "IY": "i", "OW": "oU", "OY": "OI", "UH": "U", "UW": "u", "B": "b",
            "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k", "L": "l",
            "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T",
            "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "Z", "SIL": "_"}

ANTICIPATION_S = 0.04
"""Lips lead the sound: each target peaks this long before its phoneme's centre."""

MIN_HOLD_S = {"bilabial": 0.08, "labiodental": 0.06}

SEAL_LEAD_S = 0.02
"""Lips shut this long before a bilabial's sound begins (the closure precedes the release)."""

MOUTH_CHANNELS = tuple(sorted({name for targets, _ in VISEMES.values() for name in targets}))
"""The blendshapes these rules drive; the rest of the face is left to the non-verbal rules."""


def viseme_of(phoneme: str, alphabet: str = "espeak") -> str:
    """Viseme class of a phone: an espeak mnemonic, or ARPAbet (`alphabet="arpabet"`, as
    pocketsphinx aligns). The two overlap (`S` is /ʃ/ in espeak, /s/ in ARPAbet), hence the flag.
    Silence and unknown symbols rest."""
    p = phoneme.strip()
    if alphabet == "arpabet":
        p = _ARPABET.get(p.upper().rstrip("012"), "_")
    if not p or p.startswith("_") or p.startswith("("):
        return "rest"
    p = p.lstrip("'ˈ,%=")
    for viseme, prefixes in _SYMBOLS:
        if any(p.startswith(s) for s in sorted(prefixes, key=len, reverse=True)):
            return viseme
    return "schwa" if p[:1].lower() in "aeiouy" else "rest"


def articulation(phones: Sequence[tuple[str, float, float]], n_frames: int, fps: float = 25.0,
                 alphabet: str = "espeak") -> np.ndarray:
    """(n_frames, 52) ARKit coefficients of the mouth from timed phones [(phoneme, start_s, end_s)].

    Coarticulation after Cohen & Massaro: each phone exerts a target with a dominance that
    decays exponentially from its (anticipated) centre; every frame is the dominance-weighted
    mean of all targets, so neighbours blend and strong articulations (lip closure) win.
    """
    out = np.zeros((n_frames, NUM_BLENDSHAPES), np.float32)
    if not phones or n_frames == 0:
        return out
    t = (np.arange(n_frames) + 0.5) / fps
    weights, targets = [], []
    for phoneme, start, end in phones:
        name = viseme_of(phoneme, alphabet)
        shape, dominance = VISEMES[name]
        # Lip closures and lip-teeth contacts last at least this long, however short the sound.
        duration = max(end - start, MIN_HOLD_S.get(name, 0.02))
        centre = (start + end) / 2 - ANTICIPATION_S
        distance = np.abs(t - centre)
        # Strong inside its own interval, then an exponential tail that blends into neighbours.
        weights.append(dominance * np.exp(-distance / (0.5 * duration + 0.03))
                       * (1.0 + 9.0 * (distance < 0.5 * duration)))
        vec = np.zeros(NUM_BLENDSHAPES, np.float32)
        for key, value in shape.items():
            vec[INDEX[key]] = value
        targets.append(vec)
    w = np.stack(weights)  # (P, T)
    w /= np.maximum(w.sum(0, keepdims=True), 1e-9)
    out = (w.T @ np.stack(targets)).astype(np.float32)
    seal_lips(out, bilabial_frames(phones, n_frames, fps, alphabet))
    return out


def bilabial_frames(phones: Sequence[tuple[str, float, float]], n_frames: int, fps: float = 25.0,
                    alphabet: str = "espeak") -> np.ndarray:
    """(n_frames,) bool: frames during which the lips are shut for a /p b m/.

    Blending alone leaves a short stop (25-40 ms, under one frame) between open vowels with
    the lips apart, yet real lips always meet for it: every frame that overlaps the phone
    (from slightly before its sound, by more than 10 ms) is a closure.
    """
    shut = np.zeros(n_frames, bool)
    for phoneme, start, end in phones:
        if viseme_of(phoneme, alphabet) != "bilabial":
            continue
        first = max(int(np.floor((start - SEAL_LEAD_S) * fps)), 0)
        last = int(np.ceil((max(end, start + 0.02) - 0.01) * fps))  # exclusive
        shut[first:min(max(last, first + 1), n_frames)] = True
    return shut


def seal_lips(blendshapes: np.ndarray, shut: np.ndarray) -> np.ndarray:
    """Close the lips in the `shut` frames of (T, 52+) coefficients or motion vectors, in place
    (core.lip_seal.seal_lips: the same seal the motion generator applies at run time)."""
    return _seal(blendshapes, np.asarray(shut, np.float32))
