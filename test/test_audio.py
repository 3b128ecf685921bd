"""Audio conditioning and file loading (real libsndfile, FFmpeg and soxr)."""

import numpy as np
import pytest
import soundfile

from vasa_nodes.core.audio import SAMPLE_RATE, AudioError, ChunkConditioner, condition, load_audio


def tone(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resamples_any_rate_to_16k_preserving_pitch():
    x, warnings = condition(tone(440.0, 44100, 1.0), 44100)
    assert len(x) == pytest.approx(16000, abs=2)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.fft.rfftfreq(len(x), 1 / 16000)[spectrum.argmax()] == pytest.approx(440.0, abs=2.0)
    assert warnings == []


def test_stereo_is_downmixed_and_int_pcm_scaled():
    left = (tone(300, 16000, 0.5) * 32767).astype(np.int16)
    x, warnings = condition(np.stack([left, left], axis=1), 16000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert np.abs(x).max() == pytest.approx(0.5, abs=0.01)
    assert any("downmixed" in w for w in warnings)


def test_nan_and_inf_are_replaced_and_reported():
    x = tone(200, 16000, 0.1)
    x[[3, 50]] = np.nan
    x[7] = np.inf
    y, warnings = condition(x, 16000)
    assert np.all(np.isfinite(y)) and y[3] == 0.0 and y[7] == 0.0
    assert any("3 NaN/Inf" in w for w in warnings)


def test_load_audio_reads_wav_flac_and_aiff(tmp_path):
    x = tone(220, 22050, 0.5)
    for ext in ("wav", "flac", "aiff"):
        path = tmp_path / f"a.{ext}"
        soundfile.write(path, x, 22050)
        audio = load_audio(path)
        assert audio.sample_rate == SAMPLE_RATE
        assert audio.duration_s == pytest.approx(0.5, abs=0.01)


def test_load_audio_decodes_compressed_formats_with_ffmpeg(tmp_path):
    import av

    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone(330, 44100, 1.0).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 44100
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    audio = load_audio(path)
    assert audio.duration_s == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "not found"),
    (lambda p: p.write_bytes(b"this is not audio at all" * 10), "cannot read audio"),
    (lambda p: soundfile.write(p, np.zeros(0, np.float32), 16000), "no samples"),
    (lambda p: soundfile.write(p, np.zeros(100, np.float32), 16000), "too short"),
])
def test_bad_audio_files_give_one_line_reasons(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as err:
        load_audio(path, min_duration_s=0.04)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_chunked_resampling_matches_whole_signal():
    x = tone(500, 48000, 1.0)
    whole, _ = condition(x, 48000)
    conditioner = ChunkConditioner()
    parts = []
    for start in range(0, len(x), 960):
        chunk = x[start:start + 960]
        parts.append(conditioner.push(chunk, 48000, last=start + 960 >= len(x))[0])
    streamed = np.concatenate(parts)
    assert len(streamed) == pytest.approx(len(whole), abs=2)
    n = min(len(whole), len(streamed))
    assert np.abs(streamed[200:n - 200] - whole[200:n - 200]).max() < 1e-3
