"""vasa-eval on synthetic speech: the report's numbers are measured, consistent and in range."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.prefix) / "bin"


MAKE_SPEECH = """
import json, sys
from pathlib import Path
import soundfile
sys.path.insert(0, sys.argv[2])
from helpers import speech_with_pauses
from vasa_nodes.core.tts import synthesize
tmp = Path(sys.argv[1])
texts = ["Bob met my mother at the big market.", "Please pass me the blue map."]
samples, spans = speech_with_pauses(texts, pause_s=1.2, lead_s=1.0)
soundfile.write(tmp / "speech.wav", samples, 16000)
phones, t = [], 1.0
for text in texts:  # the same layout speech_with_pauses builds
    s = synthesize(text)
    phones += [[p.phoneme, t + p.start_s, t + p.end_s] for p in s.phonemes]
    t += s.duration_s + 1.2
(tmp / "phones.json").write_text(json.dumps(phones))
(tmp / "transcript.txt").write_text(" ".join(texts))
"""


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two English sentences with silences, their phone times (espeak) and transcript.

    Synthesised in a fresh process: espeak carries state from call to call, and a fresh
    process makes the audio the same on every run.
    """
    tmp = tmp_path_factory.mktemp("eval")
    subprocess.run([sys.executable, "-P", "-c", MAKE_SPEECH, str(tmp), str(Path(__file__).parent)], check=True,
                   timeout=60)
    return tmp, tmp / "speech.wav"


def run(*args):
    r = subprocess.run([str(BIN / "vasa-eval"), *map(str, args)], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def test_report_from_tts_phone_times(speech, portrait_path):
    tmp, wav = speech
    code, out, err = run("--portrait", portrait_path, "--audio", wav, "--phones", tmp / "phones.json",
                         "--out", tmp / "report.json")
    assert code == 0, err
    report = json.loads(out)
    assert report == json.loads((tmp / "report.json").read_text())
    bilabials = sum(p[0].lower() in "pbm" for p in json.loads((tmp / "phones.json").read_text()))
    assert report["bilabial_closure"]["phones"] == bilabials >= 8
    assert 0.0 <= report["bilabial_closure"]["fraction"] <= 1.0
    silence = report["mouth_closed_in_silence"]
    assert silence["frames"] > 30 and silence["fraction"] >= 0.95
    generated = report["generated"]
    assert generated["tracked_fraction"] == 1.0
    assert 0.05 < generated["head_motion_delta_p_deg"] < 5.0
    # The head moves more while the speaker talks than in the silences around.
    assert generated["head_motion_vs_loudness"] > 0.2


def test_head_motion_vs_loudness_follows_the_speech_rhythm():
    import numpy as np

    from vasa_nodes.core.evaluation import Track, head_motion_vs_loudness

    fps, n = 25.0, 500
    rng = np.random.default_rng(0)
    talking = (np.arange(n) // 50) % 2 == 0  # 2 s talk, 2 s pause
    loud = np.where(talking, -20.0, -60.0) + rng.normal(0, 2, n)
    step = np.where(talking, 0.8, 0.1)[:, None] * rng.normal(0, 1, (n, 3))  # degrees per frame
    nodding = Track(fps, np.zeros(n), np.zeros(n), np.cumsum(step, axis=0))
    assert head_motion_vs_loudness(nodding, loud) > 0.7
    steady = Track(fps, np.zeros(n), np.zeros(n), np.cumsum(0.5 * rng.normal(0, 1, (n, 3)), axis=0))
    assert abs(head_motion_vs_loudness(steady, loud)) < 0.3


def test_forced_alignment_of_a_transcript_finds_the_bilabials(speech, portrait_path):
    tmp, wav = speech
    code, out, err = run("--portrait", portrait_path, "--audio", wav, "--transcript", tmp / "transcript.txt")
    assert code == 0, err
    # b, m, m, b, m  +  p, p, m, b, m: the aligner finds most of them in synthetic speech.
    assert json.loads(out)["bilabial_closure"]["phones"] >= 7


@pytest.fixture(scope="module")
def generated_video(speech, portrait_path):
    """A talking face generated from the speech, encoded with its sound: a 'real' video whose
    mouth is exactly what vasa-eval will generate again from the same sound."""
    tmp, wav = speech
    video = tmp / "generated.mp4"
    r = subprocess.run([str(BIN / "vasa-generate"), "--portrait", str(portrait_path), "--audio", str(wav),
                        "--out", str(video), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return video


def test_a_video_compared_with_itself_correlates_fully_at_zero_lag(speech, portrait_path, generated_video):
    tmp, _ = speech
    video = generated_video
    code, out, err = run("--portrait", portrait_path, "--reference", video, "--phones", tmp / "phones.json")
    assert code == 0, err
    report = json.loads(out)
    assert report["aperture_vs_reference"]["correlation"] > 0.95
    # The same lips at the same phone times: the reference check agrees with the generated figure.
    real, generated = report["reference"]["bilabial_closure"], report["bilabial_closure"]
    assert real["phones"] == generated["phones"] >= 8
    assert abs(real["fraction"] - generated["fraction"]) <= 0.15
    assert report["aperture_vs_reference"]["lag_ms"] == 0.0
    # The loudness baseline: this mouth follows the sound, so loudness predicts it too.
    print(report["loudness_vs_reference"])
    assert report["loudness_vs_reference"]["correlation"] > 0.3
    # AAC decoding may add a frame of padding to the audio.
    assert abs(report["reference"]["frames"] - report["generated"]["frames"]) <= 1


def test_missing_inputs_give_one_line(tmp_path):
    code, _, err = run("--audio", tmp_path / "x.wav")
    assert code == 2 and err.strip() == "vasa-eval: error: give --portrait (to generate the face) or --video (to measure one)"


def test_a_figure_that_cannot_be_measured_is_null(speech, portrait_path, tmp_path):
    import soundfile

    _, wav = speech
    samples, rate = soundfile.read(wav, dtype="float32")
    soundfile.write(tmp_path / "talk.wav", samples[int(1.1 * rate):int(2.3 * rate)], rate)  # inside a sentence
    code, out, err = run("--portrait", portrait_path, "--audio", tmp_path / "talk.wav")
    assert code == 0, err
    assert "NaN" not in out
    assert json.loads(out)["mouth_closed_in_silence"] == {"fraction": None, "frames": 0}


def test_several_reference_videos_are_summarised_and_a_bad_one_is_reported(speech, portrait_path,
                                                                             generated_video):
    tmp, _ = speech
    # The second video: the same sound with the picture 3 frames late (its mouth lags the sound).
    late = tmp / "late.mp4"
    r = subprocess.run([sys.executable, "-P", "-c", DELAY_PICTURE, str(generated_video), str(late)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    broken = tmp / "broken.mp4"
    broken.write_bytes(b"not a video")
    code, out, err = run("--portrait", portrait_path, "--reference", generated_video, late, broken,
                         "--out", tmp / "several.json")
    assert code == 2, err  # one video could not be measured ...
    assert err.count("vasa-eval: error:") == 1 and str(broken) in err
    report = json.loads(out)  # ... and the others are still reported
    assert report == json.loads((tmp / "several.json").read_text())
    videos = report["videos"]
    assert list(videos) == [str(generated_video), str(late), str(broken)]
    assert "cannot read" in videos[str(broken)]["error"]
    same, delayed = videos[str(generated_video)], videos[str(late)]
    assert same["aperture_vs_reference"]["lag_ms"] == 0.0
    assert delayed["aperture_vs_reference"]["lag_ms"] == -120.0  # the generated mouth leads the late picture
    summary = report["summary"]
    assert (summary["videos"], summary["measured"]) == (3, 2)
    ap = summary["aperture_vs_reference"]
    assert ap["median_correlation"] == pytest.approx(
        (same["aperture_vs_reference"]["correlation"] + delayed["aperture_vs_reference"]["correlation"]) / 2,
        abs=1e-4)
    assert ap["median_correlation"] > 0.9
    assert ap["lag_within_40ms_fraction"] == 0.5
    assert summary["generated"]["head_motion_delta_p_deg"] > 0


def test_several_reference_videos_take_their_own_sound(tmp_path, portrait_path):
    code, _, err = run("--portrait", portrait_path, "--reference", tmp_path / "a.mp4", tmp_path / "b.mp4",
                       "--audio", tmp_path / "x.wav")
    assert code == 2
    assert err.strip() == ("vasa-eval: error: with several --reference videos each is compared on its own sound; "
                           "--audio is for one")


DELAY_PICTURE = """
import sys
import av
src, dst = sys.argv[1:]
with av.open(src) as inp, av.open(dst, "w") as out:
    frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    inp.seek(0)
    sound = inp.streams.audio[0]
    a = out.add_stream_from_template(sound)  # the sound as it is: packets copied, not re-encoded
    v = out.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    for packet in inp.demux(sound):
        if packet.dts is not None:
            packet.stream = a
            out.mux(packet)
    for img in [frames[0]] * 3 + frames[:-3]:
        out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
    out.mux(v.encode())
"""
