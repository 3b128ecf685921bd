"""Articulation targets from exactly timed phonemes (espeak-ng events), with coarticulation."""

import numpy as np
import pytest

from vasa_nodes.core.blendshapes import INDEX
from vasa_nodes.core.tts import synthesize
from vasa_nodes.train.visemes import articulation, viseme_of

FPS = 25


def frame_at(t: float) -> int:
    return int(t * FPS)


def during(a, start, end):
    """Frames whose centre lies in [start, end), at least the one containing the middle."""
    first, last = max(int(np.ceil(start * FPS - 0.5)), 0), int(np.floor(end * FPS - 0.5))
    return a[first:last + 1] if last >= first else a[frame_at((start + end) / 2)][None]


@pytest.fixture(scope="module")
def spoken():
    speech = synthesize("Bob saw a blue moon. Papa may go home.")
    phones = [(p.phoneme, p.start_s, p.end_s) for p in speech.phonemes]
    return phones, articulation(phones, int(np.ceil(speech.duration_s * FPS)), FPS)


def test_lips_close_on_every_bilabial(spoken):
    phones, a = spoken
    bilabials = [(s, e) for p, s, e in phones if viseme_of(p) == "bilabial"]
    assert len(bilabials) >= 7
    for start, end in bilabials:
        frames = during(a, start - 0.04, end)  # lips lead the sound
        assert frames[:, INDEX["jawOpen"]].min() < 0.15
        assert frames[:, INDEX["mouthPressLeft"]].max() > 0.25
        # However short the stop, a frame that overlaps its sound has the lips sealed.
        own = a[int(start * FPS):int(np.ceil(end * FPS))]
        assert (own[:, INDEX["jawOpen"]] - own[:, INDEX["mouthClose"]]).min() < 1e-6


def test_short_stops_between_open_vowels_still_seal_the_lips():
    # 30 ms stops inside wide-open vowels: blending alone would leave the lips apart.
    phones, t = [], 0.0
    for phone, duration in [("a", 0.2), ("p", 0.03), ("a", 0.2), ("b", 0.025), ("A", 0.2), ("m", 0.04), ("a", 0.2)]:
        phones.append((phone, t, t + duration))
        t += duration
    a = articulation(phones, int(np.ceil(t * FPS)), FPS)
    gap = a[:, INDEX["jawOpen"]] - a[:, INDEX["mouthClose"]]
    for phone, start, end in phones:
        own = gap[int(start * FPS):int(np.ceil(end * FPS))]
        if viseme_of(phone) == "bilabial":
            assert own.min() < 1e-6, phone
        else:
            assert own.max() > 0.3, phone  # the vowels stay open


def test_open_vowels_open_the_jaw_and_silence_rests(spoken):
    phones, a = spoken
    opens = [(s, e) for p, s, e in phones if viseme_of(p) == "open" and e - s > 0.06]
    assert opens and all(during(a, s, e)[:, INDEX["jawOpen"]].max() > 0.3 for s, e in opens)
    pauses = [(s, e) for p, s, e in phones if p.startswith("_") and e - s > 0.2]
    assert pauses and all(a[frame_at((s + e) / 2), INDEX["jawOpen"]] < 0.08 for s, e in pauses)


def test_rounding_anticipates_the_vowel(spoken):
    phones, a = spoken
    start, end = max(((s, e) for p, s, e in phones if p.startswith("u")), key=lambda se: se[1] - se[0])
    before = a[frame_at(start - 0.03), INDEX["mouthPucker"]]
    assert before > 0.05  # the lips start rounding before the /u/ is heard
    assert a[frame_at((start + end) / 2), INDEX["mouthPucker"]] > 0.4


def test_phone_alphabets_are_kept_apart():
    assert viseme_of("S") == "postalveolar" and viseme_of("S", "arpabet") == "sibilant"
    assert viseme_of("D") == "dental" and viseme_of("D", "arpabet") == "alveolar"
    assert viseme_of("M", "arpabet") == "bilabial" and viseme_of("SIL", "arpabet") == "rest"
    assert viseme_of("_:") == "rest" and viseme_of("(en)") == "rest"
