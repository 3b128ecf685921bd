"""Text-to-speech with phoneme timing, backed by espeak-ng through ctypes.

The talking face needs both the waveform and *when* each phoneme is spoken,
so that mouth shapes can be driven from the same clock as the audio.  espeak-ng
reports phoneme events with the index of the output sample at which each
phoneme starts, which gives sample-exact alignment without any forced aligner.

The shared library and its voice data come from the ``espeakng-loader``
package, so no system-wide espeak installation is required.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PhonemeEvent",
    "Speech",
    "TTSError",
    "WordEvent",
    "list_voices",
    "synthesize",
]


class TTSError(RuntimeError):
    """Speech could not be synthesised (unknown voice, empty text, missing library)."""


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme and the stretch of audio it occupies.

    ``phoneme`` is espeak's ASCII mnemonic without stress marks, e.g. ``"p"``,
    ``"@"``, ``"aI"``.  Pauses and silences start with ``_`` (``"_"``,
    ``"_:"``, ``"_|"``); a switch to another language's pronunciation shows up
    as a short marker such as ``"(en)"``.
    """

    phoneme: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class WordEvent:
    """Start of a word: ``text_position`` is the 0-based index into the input text."""

    text_position: int
    start_s: float


@dataclass(frozen=True)
class Speech:
    """Synthesised audio together with its phoneme and word timeline.

    ``phonemes`` tile the audio exactly: the first starts at 0, each one ends
    where the next starts, and the last ends at ``len(samples) / sample_rate``.
    """

    samples: np.ndarray
    sample_rate: int
    phonemes: tuple[PhonemeEvent, ...]
    words: tuple[WordEvent, ...]

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return len(self.samples) / self.sample_rate


# Values from espeak-ng's speak_lib.h (API revision 12, espeak-ng 1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
# Without this flag espeak_Initialize calls exit() when the data is missing,
# which would take the whole Python process down.
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7

_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7

_RATE_MIN_WPM = 80
_RATE_MAX_WPM = 450
# espeakWORDGAP is expressed in units of 10 ms.
_WORDGAP_UNIT_MS = 10
# espeak seeds its noise generator (breath, klatt, whisper) from the clock;
# a fixed seed makes a given sequence of requests reproducible across runs.
# Repeats inside one process still differ slightly: wavegen keeps its
# pitch-flutter phase and filter memories between messages and the API
# offers no way to reset them.
_RAND_SEED = 0

_STRESS_MARKS = "',"
_SILENCE = "_"


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        # Phoneme mnemonic; NUL-terminated only when shorter than 8 bytes.
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """Mirror of ``espeak_EVENT``."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """Mirror of ``espeak_VOICE``."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        # Not a C string: repeated (priority byte, NUL-terminated language)
        # pairs, ended by a zero priority byte.
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class _Catalogue:
    """Voice names accepted by :func:`synthesize`, resolved to espeak identifiers."""

    voices: dict[str, str]  # lower-cased alias -> espeak identifier
    languages: tuple[str, ...]  # language codes, sorted
    variants: dict[str, str]  # lower-cased variant name -> file name used after "+"


class _Engine:
    """The process-wide espeak-ng instance and the buffers of the running synthesis."""

    def __init__(self) -> None:
        self.lib, self.sample_rate, data_path = _load_library()
        self.catalogue = _read_catalogue(self.lib, Path(data_path))
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, str]] = []
        # espeak keeps only the raw function pointer, so the ctypes wrapper
        # must outlive every synthesis or the callback would be freed.
        self.callback = _SynthCallback(self._on_audio)
        self.lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                label = event.id.string.decode("utf-8", errors="replace")
                self.events.append((event.type, event.sample, event.text_position, label))
            elif event.type == _EVENT_WORD:
                self.events.append((event.type, event.sample, event.text_position, ""))
            i += 1
        return 0  # 0 asks espeak to continue synthesis


_lock = threading.Lock()
_engine: _Engine | None = None


def _load_library() -> tuple[ctypes.CDLL, int, str]:
    # Imported here so that a missing package surfaces as TTSError on first
    # use instead of breaking every import of this module.
    try:
        import espeakng_loader
    except ImportError as exc:
        raise TTSError(
            f"espeak-ng is not available: cannot import espeakng_loader ({exc})"
        ) from exc
    try:
        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        lib = ctypes.CDLL(lib_path)
    except (OSError, RuntimeError) as exc:
        raise TTSError(f"espeak-ng library could not be loaded: {exc}") from exc

    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int

    sample_rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS,
        0,
        data_path.encode(),
        _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
    )
    if sample_rate <= 0:
        raise TTSError(f"espeak-ng failed to initialise with data at {data_path}")
    return lib, sample_rate, data_path


def _list_raw_voices(
    lib: ctypes.CDLL, spec: _Voice | None
) -> list[tuple[str, str, list[tuple[int, str]]]]:
    """(identifier, name, [(priority, language), ...]) for each voice espeak lists."""
    array = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
    voices = []
    i = 0
    while array[i]:
        voice = array[i].contents
        languages = []
        cursor = voice.languages
        while (priority := ctypes.string_at(cursor, 1)[0]) != 0:
            language = ctypes.string_at(cursor + 1)
            languages.append((priority, language.decode()))
            cursor += len(language) + 2  # priority byte + text + NUL
        voices.append((voice.identifier.decode(), voice.name.decode(), languages))
        i += 1
    return voices


def _has_dictionary(data_path: Path, identifier: str, languages: list[tuple[int, str]]) -> bool:
    """Whether the pronunciation dictionary espeak's LoadVoice would open is installed."""
    # espeak lists voices from both folders, identified relative to each.
    candidates = (data_path / "lang" / identifier, data_path / "voices" / identifier)
    voice_file = next((path for path in candidates if path.is_file()), None)
    if voice_file is None:
        return False
    return (data_path / f"{_dictionary_name(voice_file, languages)}_dict").is_file()


def _dictionary_name(voice_file: Path, languages: list[tuple[int, str]]) -> str:
    """The dictionary named by a voice file, defaulting to its first language like LoadVoice."""
    # Voice files are not all UTF-8 (some carry GBK comments); keywords are ASCII.
    for line in voice_file.read_text(encoding="latin-1").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "dictionary":
            return fields[1]
    return languages[0][1].split("-", 1)[0] if languages else ""


def _read_catalogue(lib: ctypes.CDLL, data_path: Path) -> _Catalogue:
    # Some wheels ship voice files whose dictionary was not built (fo, kaa,
    # xex in espeakng-loader 0.2.4); espeak only prints a warning for them and
    # then produces silence or mispronounced speech, so they are left out.
    voices = [
        (identifier, name, languages)
        for identifier, name, languages in _list_raw_voices(lib, None)
        if _has_dictionary(data_path, identifier, languages)
    ]

    # A language code picks the voice that lists it with the best (lowest)
    # priority, matching espeak's own choice; ties go to the first identifier
    # so the result never depends on directory order.
    best: dict[str, tuple[int, str]] = {}
    for identifier, _name, languages in voices:
        for priority, language in languages:
            language = language.lower()
            candidate = (priority, identifier)
            if language not in best or candidate < best[language]:
                best[language] = candidate
    aliases = {language: identifier for language, (_priority, identifier) in best.items()}
    for identifier, name, _languages in voices:
        for alias in (identifier, identifier.rsplit("/", 1)[-1], name):
            aliases.setdefault(alias.lower(), identifier)

    variant_spec = _Voice()
    # Keep the bytes alive while espeak reads them through the raw pointer.
    variant_key = ctypes.c_char_p(b"variant")
    variant_spec.languages = ctypes.cast(variant_key, ctypes.c_void_p)
    # Variant files are found by exact name (e.g. "AnxiousAndy"), so keep
    # the original spelling for espeak and match case-insensitively here.
    variant_files = (
        identifier.rsplit("/", 1)[-1]
        for identifier, _name, _languages in _list_raw_voices(lib, variant_spec)
    )
    variants = {file_name.lower(): file_name for file_name in variant_files}
    return _Catalogue(voices=aliases, languages=tuple(sorted(best)), variants=variants)


def _get_engine() -> _Engine:
    """Initialise espeak on first use; the caller must hold ``_lock``."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def _resolve_voice(catalogue: _Catalogue, voice: str) -> str:
    """Turn a user-facing voice name into the string espeak_SetVoiceByName accepts."""
    base, plus, variant = voice.strip().partition("+")
    identifier = catalogue.voices.get(base.lower())
    if identifier is None:
        raise TTSError(
            f"unknown espeak voice {voice!r}; use a language code such as 'en-us', 'fr' or 'zh' "
            "(see vasa_nodes.core.tts.list_voices())"
        )
    if not plus:
        return identifier
    # espeak silently ignores an unknown variant, so check it here.
    variant_file = catalogue.variants.get(variant.strip().lower())
    if variant_file is None:
        raise TTSError(f"unknown espeak voice variant {variant!r} in {voice!r}")
    return f"{identifier}+{variant_file}"


def list_voices(language_prefix: str | None = None) -> list[str]:
    """Return the language codes that :func:`synthesize` accepts as ``voice``.

    Codes are lower-case BCP-47-like tags as espeak-ng lists them, e.g.
    ``"en-us"``, ``"fr"``, ``"cmn"``, ``"zh"``.  With ``language_prefix`` only
    codes equal to it or extending it by a ``-`` subtag are returned, so
    ``"en"`` gives ``"en"``, ``"en-us"``, ``"en-gb-scotland"``, ... but not an
    unrelated code that merely starts with the same letters.

    Raises:
        TTSError: the espeak-ng library cannot be loaded.
    """
    with _lock:
        languages = _get_engine().catalogue.languages
    if language_prefix is None:
        return list(languages)
    prefix = language_prefix.lower()
    return [code for code in languages if code == prefix or code.startswith(prefix + "-")]


def synthesize(
    text: str,
    voice: str = "en-us",
    rate_wpm: int = 160,
    pitch: int = 50,
    pitch_range: int = 50,
    gap_ms: int = 0,
) -> Speech:
    """Speak ``text`` with espeak-ng and return the audio with its phoneme timeline.

    Args:
        text: text in the voice's language, read literally (no SSML markup).
        voice: a language code from :func:`list_voices` (``"en-us"``, ``"de"``,
            ``"zh"``), an espeak voice identifier (``"roa/fr"``) or voice name,
            optionally followed by ``+variant`` (e.g. ``"en-us+f3"``).
        rate_wpm: speaking rate in words per minute, 80 to 450.
        pitch: base pitch, 0 to 100 (50 is the voice's normal pitch).
        pitch_range: intonation range, 0 (monotone) to 100.
        gap_ms: extra pause inserted between words, in steps of 10 ms.

    Returns:
        Speech at espeak's native sample rate (22050 Hz), float32 in [-1, 1].
        Phoneme times come from espeak's output sample indices, so they are
        exact with respect to ``samples``.  Zero-length phoneme events are
        dropped, and leading audio before the first phoneme is labelled ``"_"``.
        The same sequence of calls gives identical samples in every process;
        repeating a call within one process gives the same phonemes but can
        move their boundaries by up to about 10 ms, because espeak carries
        synthesis state over from one message to the next.

    Raises:
        TTSError: unknown voice or variant, empty text, or espeak-ng unavailable
            or failing.
        ValueError: a numeric parameter is out of range.
    """
    if not text.strip():
        raise TTSError("cannot synthesise empty text")
    if not _RATE_MIN_WPM <= rate_wpm <= _RATE_MAX_WPM:
        raise ValueError(f"rate_wpm must be in [{_RATE_MIN_WPM}, {_RATE_MAX_WPM}], got {rate_wpm}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be in [0, 100], got {pitch}")
    if not 0 <= pitch_range <= 100:
        raise ValueError(f"pitch_range must be in [0, 100], got {pitch_range}")
    if gap_ms < 0:
        raise ValueError(f"gap_ms must be >= 0, got {gap_ms}")

    encoded = text.encode("utf-8")
    with _lock:
        engine = _get_engine()
        lib = engine.lib
        voice_name = _resolve_voice(engine.catalogue, voice)
        if lib.espeak_SetVoiceByName(voice_name.encode()) != _EE_OK:
            raise TTSError(f"espeak-ng could not load voice {voice!r} ({voice_name})")
        # Every parameter is set on every call because espeak keeps them as
        # global state; a previous request must not leak into this one.
        for parameter, value in (
            (_PARAM_RATE, rate_wpm),
            (_PARAM_PITCH, pitch),
            (_PARAM_RANGE, pitch_range),
            (_PARAM_WORDGAP, round(gap_ms / _WORDGAP_UNIT_MS)),
        ):
            if lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                raise TTSError(f"espeak-ng rejected parameter {parameter}={value}")
        lib.espeak_ng_SetRandSeed(_RAND_SEED)

        engine.chunks.clear()
        engine.events.clear()
        try:
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            lib.espeak_Synchronize()
            chunks, events = list(engine.chunks), list(engine.events)
        finally:
            engine.chunks.clear()
            engine.events.clear()
        sample_rate = engine.sample_rate
    if status != _EE_OK:
        raise TTSError(f"espeak-ng synthesis failed with status {status}")

    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    samples = pcm.astype(np.float32) / np.float32(32768.0)
    return Speech(
        samples=samples,
        sample_rate=sample_rate,
        phonemes=_phoneme_timeline(events, len(samples), sample_rate),
        words=tuple(
            # espeak counts characters from 1.
            WordEvent(text_position=position - 1, start_s=sample / sample_rate)
            for kind, sample, position, _label in events
            if kind == _EVENT_WORD
        ),
    )


def _phoneme_timeline(
    events: list[tuple[int, int, int, str]], num_samples: int, sample_rate: int
) -> tuple[PhonemeEvent, ...]:
    """Contiguous phoneme segments covering ``[0, num_samples)``."""
    starts: list[tuple[int, str]] = []
    for kind, sample, _position, label in events:
        if kind != _EVENT_PHONEME:
            continue
        sample = min(max(sample, 0), num_samples)
        phoneme = label.lstrip(_STRESS_MARKS)
        if starts and sample <= starts[-1][0]:
            # Same start as the previous event: that one would last zero
            # samples, so this later phoneme replaces it.
            starts[-1] = (starts[-1][0], phoneme)
        else:
            starts.append((sample, phoneme))
    if num_samples and (not starts or starts[0][0] > 0):
        starts.insert(0, (0, _SILENCE))

    timeline = []
    for i, (start, phoneme) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else num_samples
        if end > start:
            timeline.append(PhonemeEvent(phoneme, start / sample_rate, end / sample_rate))
    return tuple(timeline)
