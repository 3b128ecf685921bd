"""Shared fixtures. Tests run against the installed package in .venv (scripts/test.sh)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import speech_with_pauses

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
VENV_BIN = Path(sys.prefix) / "bin"


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    """A real photo the project ships (NASA astronaut portrait, public domain)."""
    return SAMPLES / "astronaut.png"


@pytest.fixture(scope="session")
def fitter():
    """The face detector + face mesh (MediaPipe), shared by all tests that track faces."""
    from vasa_nodes.core.portrait import FaceFitter

    f = FaceFitter()
    yield f
    f.close()


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """A WAV of two English sentences with 1 s of silence around them, and their speech spans."""
    import soundfile

    samples, spans = speech_with_pauses(["Hello, my name is Ava and I am a robot.",
                                         "Peter bought my map in the market."])
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    soundfile.write(path, samples, 16000, subtype="PCM_16")
    return path, spans


@pytest.fixture(scope="session")
def finnish():
    """(samples at 16 kHz, phones) of Finnish speech (not a training language) with its phoneme
    times, 0.5 s of silence either side."""
    import numpy as np
    import soxr

    from vasa_nodes.core.tts import synthesize

    speech = synthesize("Mummo paistoi pullaa, ja pappa poimi mustikoita metsästä.", voice="fi+m3")
    x = soxr.resample(speech.samples, speech.sample_rate, 16000).astype(np.float32)
    lead = np.zeros(8000, np.float32)
    phones = [(p.phoneme, p.start_s + 0.5, p.end_s + 0.5) for p in speech.phonemes]
    return np.concatenate([lead, x, lead]), phones


@pytest.fixture(scope="session", autouse=True)
def _isolated_dds_domain():
    """Keep this run's DDS traffic to itself (scripts/test.sh also picks a random domain)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
