"""Motion diffusion model at run time: ONNX Runtime, numpy, no torch.

The model (trained by `vasa-train fit`, see vasa_nodes/train/model.py) denoises a window
of W motion frames given K frames of previous motion, the audio features of those K + W
frames plus L frames of look-ahead, and optional controls (gaze direction, head distance,
emotion). It predicts the clean window x0; a few deterministic DDIM steps turn seeded noise
into motion. Classifier-free guidance mixes three predictions per step: with all
conditions, without audio, and without controls, each with its own scale.

Two ways to run it, same weights:
- offline (`generate`): whole windows of W frames, each continuing the previous one's
  last K frames, so any length of audio is covered seamlessly in constant memory;
- streaming (`push` / `finish` / `idle`): one frame at a time, as soon as its audio and
  one frame of look-ahead are in, from a window started two frames earlier; the window's
  later frames are only guessed (their audio masked) and thrown away.

Everything the sampler needs besides the weights (sizes, normalisation, schedule) is
stored in the ONNX file's metadata, so the .onnx file is the whole model.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import N_MELS, FeatureFrames, mel_band_centres
from .acoustic_opening import DEFAULT_WEIGHT as DEFAULT_ACOUSTIC_OPENING, OpeningModel, open_mouth
from .lip_seal import SEALED_JAW, LipSeal, seal_lips, seal_weight
from .audio import SAMPLE_RATE
from .blendshapes import ARKIT_BLENDSHAPES, INDEX, NUM_BLENDSHAPES
from .motion import EMOTIONS, BlinkTimer, Controls, MotionFrame

# --- Shared with training (vasa_nodes/train): the model's input conventions. ---

AUDIO_DIM = N_MELS + 4
"""Per-frame audio input: 80 normalised log-mel values, voice activity, and three articulatory
cues that carry over from synthetic to recorded voices: the level of the oral band (700-3500 Hz,
where vowel formants are; it drops on closures) relative to its running peak, the spectral
centroid of the voiced band (rounded vs. spread), and the frame-to-frame level change."""

CONTROL_LAYOUT = ("gaze_on", "gaze_yaw", "gaze_pitch", "distance_on", "head_scale",
                  "emotion_on", *EMOTIONS[1:])
"""Per-frame control vector: three groups (gaze, distance, emotion), each with an 'on' flag;
a group that is off is unconditioned (free gaze, free distance, any emotion)."""
CONTROL_DIM = len(CONTROL_LAYOUT)
CONTROL_GROUPS = {"gaze": (0, 3), "distance": (3, 5), "emotion": (5, CONTROL_DIM)}

BLINKS = [INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]]
MOUTH = [i for i, name in enumerate(ARKIT_BLENDSHAPES) if name.startswith(("jaw", "mouth", "tongue"))]

PEAK_FLOOR = -6.5
"""Lowest reference level (log10 power) of the audio normaliser: quieter input is silence."""
PEAK_DECAY_PER_S = 0.05
"""How fast the normaliser's reference level falls in a pause (log10 power per second)."""


def controls_vector(controls: Controls | None) -> np.ndarray:
    """CONTROL_LAYOUT vector of validated controls (None: everything free)."""
    v = np.zeros(CONTROL_DIM, np.float32)
    if controls is None:
        return v
    c = controls.validated()
    if c.gaze_enabled:
        v[0:3] = 1.0, c.gaze_yaw, c.gaze_pitch
    if c.distance_enabled:
        v[3:5] = 1.0, c.head_scale - 1.0
    v[5] = 1.0
    if c.emotion != "neutral":
        v[6 + EMOTIONS.index(c.emotion) - 1] = c.emotion_intensity
    return v


class AudioNormalizer:
    """Causal level normalisation of log-mel frames and articulatory cues (AUDIO_DIM values per
    frame): each frame relative to a running peak of the frame loudness (mean log-mel), so quiet
    and loud recordings look alike, and digital silence stays at the floor. Streaming and
    whole-file use give identical output."""

    def __init__(self, fps: float = 25.0):
        self.decay = PEAK_DECAY_PER_S / fps
        self.oral_decay_db = 0.5 / fps
        self._mel_hz = mel_band_centres()
        self._oral = (self._mel_hz > 700) & (self._mel_hz < 3500)
        self._voiced = (self._mel_hz > 150) & (self._mel_hz < 4000)
        self.reset()

    def reset(self) -> None:
        self._peak = PEAK_FLOOR
        self._oral_peak_db = -30.0
        self._prev_level = None

    def __call__(self, frames: FeatureFrames) -> np.ndarray:
        """(n, AUDIO_DIM) model input for the next n frames of a stream."""
        n = len(frames)
        out = np.empty((n, AUDIO_DIM), np.float32)
        mel = frames.features.astype(np.float64)
        level = mel.mean(axis=1)
        oral_db = 10.0 * np.log10((10.0 ** mel[:, self._oral]).sum(1) + 1e-12)
        power = 10.0 ** mel[:, self._voiced]
        centroid = (power * self._mel_hz[self._voiced]).sum(1) / np.maximum(power.sum(1), 1e-12)
        vad = frames.voice_activity
        for i in range(n):
            self._peak = max(float(level[i]), self._peak - self.decay, PEAK_FLOOR)
            out[i, :N_MELS] = np.clip(mel[i] - self._peak, -7.0, 1.0) / 3.0 + 1.0
            if vad[i] > 0.5:
                self._oral_peak_db = max(float(oral_db[i]), self._oral_peak_db - self.oral_decay_db)
            out[i, N_MELS + 1] = np.clip((oral_db[i] - (self._oral_peak_db - 15.0)) / 15.0, 0.0, 1.0) * vad[i]
            out[i, N_MELS + 2] = np.clip((centroid[i] - 1800.0) / 1000.0, -1.0, 2.0) * vad[i]
            prev = level[i] if self._prev_level is None else self._prev_level
            out[i, N_MELS + 3] = np.clip(level[i] - prev, -1.5, 1.5)
            self._prev_level = float(level[i])
        out[:, N_MELS] = vad
        return out


def normalize_audio(frames: FeatureFrames, fps: float = 25.0) -> np.ndarray:
    """AudioNormalizer over a whole stream."""
    return AudioNormalizer(fps)(frames)


TIME_GRID_POWER = 3.0
"""Sampling times are (1 - k/steps) ** this: the later steps, at low noise, lie closer together,
which leaves less residual noise (frame-to-frame jitter) in few-step sampling."""


def alpha_bar(t: np.ndarray) -> np.ndarray:
    """Cosine noise schedule: signal fraction at diffusion time t in [0, 1]."""
    return np.clip(np.cos((np.asarray(t, np.float64) + 0.008) / 1.008 * math.pi / 2) ** 2, 1e-4, 1.0)


# --- Run time ---

class MotionModelError(ValueError):
    """The model file is missing, unreadable or not a motion model."""


@dataclass
class Guidance:
    """Classifier-free guidance scales (1 = plain conditional prediction).

    The audio scale acts on the mouth channels: it sharpens the lips' articulation, while
    head, gaze, brows and lids follow the plain conditional prediction (guided, the head
    jittered by several degrees from frame to frame in a live stream, where each frame
    comes from its own window). The controls scale acts on every channel."""

    audio: float = 3.5
    controls: float = 1.5


@dataclass
class ModelInfo:
    context: int   # K
    window: int    # W
    lookahead: int  # L
    motion_dim: int
    audio_dim: int  # the first audio_dim of the AUDIO_DIM input values, as the model was trained
    fps: float
    mean: np.ndarray
    std: np.ndarray
    extra: dict = field(default_factory=dict)

    @staticmethod
    def from_metadata(meta: dict[str, str]) -> "ModelInfo":
        try:
            cfg = json.loads(meta["vasa_motion"])
            return ModelInfo(int(cfg["context"]), int(cfg["window"]), int(cfg["lookahead"]), int(cfg["motion_dim"]),
                             int(cfg.get("audio_dim", N_MELS + 1)), float(cfg["fps"]),
                             np.asarray(cfg["mean"], np.float32), np.asarray(cfg["std"], np.float32), cfg)
        except (KeyError, ValueError, TypeError) as exc:
            raise MotionModelError(f"not a vasa_nodes motion model (metadata: {exc})") from None


DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "motion_dit.onnx"
"""The shipped model, installed inside the Python package."""


def load_session(path: str | Path, what: str = "motion model", error: type[Exception] = MotionModelError,
                 threads: int = 0):
    """An ONNX Runtime session on the best provider here (CUDA when present, else CPU); a missing
    or unreadable file raises `error`, naming the file as `what`. `threads`: intra-op threads
    (0: ONNX Runtime's choice, one per core)."""
    import onnxruntime as ort  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = int(threads)
    # No busy-waiting between runs: the live graph calls it 25 times a second and the renderer
    # needs the cores in between.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise error(f"cannot load {what} {path}: {str(exc).splitlines()[0]}") from None


class MotionModel:
    """The denoiser and its sampler (stateless; see DiffusionMotionGenerator for streams)."""

    DEFAULT_STEPS = 4

    def __init__(self, path: str | Path = DEFAULT_MODEL, steps: int = DEFAULT_STEPS, guidance: Guidance | None = None,
                 threads: int = 0):
        """`threads`: ONNX Runtime intra-op threads (0: one per core). On a 2-core machine one
        thread costs ~20 % less CPU per window (11.8 against 14.8 ms) for ~2 ms more wall time,
        which is what the live graph wants: the other core is busy rendering."""
        if threads < 0:
            raise ValueError(f"threads must be 0 (one per core) or more, got {threads}")
        self.session = load_session(path, threads=threads)
        self.info = ModelInfo.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.steps = int(steps)
        if not 1 <= self.steps <= 50:
            raise ValueError(f"sampling steps must be 1-50, got {steps}")
        self.guidance = guidance or Guidance()
        self.provider = self.session.get_providers()[0]

    def sample(self, context: np.ndarray, audio: np.ndarray, audio_mask: np.ndarray, controls: np.ndarray,
               noise: np.ndarray) -> np.ndarray:
        """Motion window (W, D), denormalised, from
        context: (K, D) previous motion (denormalised);
        audio: (K + W + L, AUDIO_DIM) normalised audio; audio_mask: (K + W + L,) 1 where known;
        controls: (CONTROL_DIM,) CONTROL_LAYOUT vector; noise: (W, D) the starting noise."""
        i = self.info
        n = i.context + i.window + i.lookahead
        if audio.shape != (n, AUDIO_DIM) or audio_mask.shape != (n,):
            raise ValueError(f"audio must be ({n}, {AUDIO_DIM}) with a ({n},) mask")
        audio = audio[:, :i.audio_dim]
        ctx = (np.asarray(context, np.float32) - i.mean) / i.std
        # One batch per step: all conditions, then without audio and without controls where
        # their guidance has an effect (classifier-free guidance).
        g = self.guidance
        # Controls that only say "neutral, free" are not worth a third pass: gaze or distance on,
        # or an emotion with intensity (values are only set when their group is on).
        commanded = bool(controls[0] or controls[3] or np.any(controls[6:]))
        no_audio, no_controls = g.audio != 1.0, g.controls != 1.0 and commanded
        masks = [audio_mask] + [np.zeros_like(audio_mask)] * no_audio + [audio_mask] * no_controls
        ctrls = [controls] + [controls] * no_audio + [np.zeros_like(controls)] * no_controls
        batch = len(masks)
        feeds = {
            "context": np.repeat(ctx[None], batch, 0),
            "context_mask": np.ones((batch, 1), np.float32),
            "audio": np.repeat(audio[None].astype(np.float32), batch, 0),
            "audio_mask": np.stack(masks).astype(np.float32),
            "controls": np.stack(ctrls).astype(np.float32),
        }
        x = np.asarray(noise, np.float32)
        times = np.linspace(1.0, 0.0, self.steps + 1) ** TIME_GRID_POWER
        for t, t_next in zip(times[:-1], times[1:]):
            feeds["x_t"] = np.repeat(x[None], batch, 0)
            feeds["t"] = np.full(batch, t, np.float32)
            out = self.session.run(None, feeds)[0]
            x0 = out[0].copy()
            if no_audio:
                x0[:, MOUTH] += (g.audio - 1.0) * (out[0] - out[1])[:, MOUTH]
            if no_controls:
                x0 += (g.controls - 1.0) * (out[0] - out[-1])
            a, a_next = float(alpha_bar(t)), float(alpha_bar(t_next))
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
            x = (math.sqrt(a_next) * x0 + math.sqrt(max(1.0 - a_next, 0.0)) * eps).astype(np.float32)
        return x * i.std + i.mean


def frames_from_vectors(x: np.ndarray, first_index: int, voice_activity: np.ndarray) -> list[MotionFrame]:
    return [MotionFrame.from_vector(v, first_index + k, float(voice_activity[k])) for k, v in enumerate(x)]


class DiffusionMotionGenerator:
    """Speech -> motion with the diffusion model; same interface as RuleBasedMotionGenerator.

    `generate(frames)` is the offline path: it needs the whole clip's features at once
    (call it once per stream). `push(frames)` is the streaming path: it returns the motion
    frames that became ready (each one frame after its audio); `finish()` flushes the rest.
    `idle()` continues the stream with silence. Same seed and input: same output.
    """

    OVERLAP = 5
    """Frames by which consecutive offline windows overlap (cross-faded)."""

    PAUSE_FRAMES = 4
    """Streaming: after this many silent frames in a row the stream is in a pause (see _step)."""

    LIVE_LAG = 2
    """Streaming: each frame is drawn from a window started this many frames before it (see _step)."""

    def __init__(self, model: MotionModel, seed: int = 0, controls: Controls | None = None,
                 lookahead_frames: int = 1, lip_seal: LipSeal | None = None,
                 acoustic_opening: float = DEFAULT_ACOUSTIC_OPENING, opening_model: OpeningModel | None = None):
        self.model = model
        self.fps = model.info.fps
        self.seed = seed
        for part in (lip_seal, opening_model):
            if part is not None and not part.fits(self.fps, AUDIO_DIM):
                raise MotionModelError(f"the {part.KIND} ({part.fps:g} fps, {part.audio_dim} audio values) "
                                       f"does not fit the motion model ({self.fps:g} fps)")
        self.lip_seal = lip_seal
        self.opening_model = opening_model
        if not 0.0 <= acoustic_opening <= 1.0:
            raise MotionModelError(f"acoustic opening must be within 0..1, got {acoustic_opening:g}")
        self.acoustic_opening = float(acoustic_opening)
        self.lookahead = int(np.clip(lookahead_frames, 0, model.info.lookahead + model.info.window - 1))
        self.set_controls(controls or Controls())
        self._silence = None
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._blinks = BlinkTimer(self.fps, np.random.default_rng([self.seed, 1]))
        self._noise = np.zeros((0, self.model.info.motion_dim), np.float32)  # sampling noise per stream frame
        self._noise_first = 0  # stream frame of self._noise[0]
        self._normalizer = AudioNormalizer(self.fps)
        self._audio = np.zeros((0, AUDIO_DIM), np.float32)    # normalised audio, recent frames
        self._vad = np.zeros(0, np.float32)
        self._motion = np.zeros((0, self.model.info.motion_dim), np.float32)  # emitted motion, recent frames
        self._emitted = 0  # frames emitted so far
        self._received = 0  # audio frames received so far

    def set_controls(self, controls: Controls) -> None:
        self.controls = controls.validated()
        self._control_vec = controls_vector(self.controls)

    @property
    def frames_received(self) -> int:
        """Feature frames consumed so far (the index the next stream's first frame gets)."""
        return self._received

    # -- offline --
    def generate(self, frames: FeatureFrames) -> list[MotionFrame]:
        """Motion for a whole clip, window by window (fastest path).

        Windows overlap by OVERLAP frames and are cross-faded there, so no seam shows where
        one window hands over to the next; each window continues from the K frames before it.
        """
        i = self.model.info
        audio = self._normalizer(frames)
        vad = frames.voice_activity
        n = len(audio)
        if n == 0:
            return []
        k, w, look, overlap = i.context, i.window, i.lookahead, min(self.OVERLAP, i.window // 2)
        stride = w - overlap
        history = self._context()
        have_past = len(self._audio) >= k
        full = np.concatenate([self._audio[-k:] if have_past else np.zeros((k, AUDIO_DIM), np.float32), audio,
                               np.zeros((w + look, AUDIO_DIM), np.float32)])
        known = np.concatenate([np.full(k, 1.0 if have_past else 0.0), np.ones(n),
                                np.zeros(w + look)]).astype(np.float32)
        out = np.zeros((n + w, i.motion_dim), np.float32)
        fade = (np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1))[:, None]
        for start in range(0, n, stride):
            context = out[start - k:start] if start >= k else np.concatenate([history, out[:start]])[-k:]
            span = slice(start, start + k + w + look)
            x = self._apply_intensity(self.model.sample(context, full[span], known[span], self._control_vec,
                                                        self._noise_for(self._emitted + start)))
            if start > 0:  # cross-fade from the previous window's tail
                x[:overlap] = (1.0 - fade) * out[start:start + overlap] + fade * x[:overlap]
            out[start:start + w] = x
            if start + w >= n:
                break
        motion = out[:n]
        mouth = self._mouth(motion.copy(), np.concatenate([self._audio, audio]), len(self._audio))
        result = frames_from_vectors(self._with_blinks(mouth), self._emitted, vad)
        self._emitted += n
        self._received += n
        self._keep(audio, vad, motion)
        return result

    # -- streaming --
    def push(self, frames: FeatureFrames, ahead: FeatureFrames | None = None) -> list[MotionFrame]:
        """Add feature frames; return the motion frames whose audio and look-ahead are in.

        `ahead`, optional: the frame after these, ahead of time
        (StreamingFeatureExtractor.peek()). It stands in for the last look-ahead frame, so
        each motion frame is ready one audio chunk sooner; the complete frame, when pushed
        later, replaces it for the frames still to come."""
        if ahead is not None and len(ahead) and (len(ahead) != 1 or
                                                 ahead.frame_offset != frames.frame_offset + len(frames)):
            raise ValueError(f"the frame ahead must be the one frame after those pushed "
                             f"({frames.frame_offset + len(frames)}), got {len(ahead)} from {ahead.frame_offset}")
        out = []
        audio = self._normalizer(frames)
        for k in range(len(frames)):  # frame by frame: the buffers only hold what one window needs
            self._keep(audio[k:k + 1], frames.voice_activity[k:k + 1], None)
            self._received += 1
            while self._emitted + self.lookahead < self._received:
                out.append(self._step())
        if ahead is not None and len(ahead) and self.lookahead > 0:
            # Normalised like the next frame, without moving the normaliser on.
            early = copy.copy(self._normalizer)(ahead)[0]
            while self._emitted + self.lookahead < self._received + 1:
                out.append(self._step(ahead=early))
        return out

    def finish(self) -> list[MotionFrame]:
        """End of the stream's audio: the frames still waiting for look-ahead."""
        out = []
        while self._emitted < self._received:
            out.append(self._step())
        return out

    def idle(self) -> MotionFrame:
        """One more frame of silence (the face keeps living, mouth closed)."""
        if self._silence is None:
            from .features import compute_features  # noqa: PLC0415

            self._silence = compute_features(np.zeros(int(SAMPLE_RATE / self.fps), np.float32), self.fps)
        self._keep(self._normalizer(self._silence), self._silence.voice_activity, None)
        self._received += 1
        return self._step(future=self._audio[-1])  # no stream: the near future is silent too

    # -- internals --
    def _context(self, lag: int = 0) -> np.ndarray:
        """The K motion frames before the last `lag` ones; a stream starts from the face at rest
        (neutral), so its first frames continue from a closed mouth and a still head."""
        k = self.model.info.context
        motion = self._motion[:len(self._motion) - lag]
        if len(motion) >= k:
            return motion[-k:]
        rest = np.repeat(MotionFrame.neutral().to_vector()[None], k - len(motion), 0)
        return np.concatenate([rest, motion])

    def _step(self, future: np.ndarray | None = None, ahead: np.ndarray | None = None) -> MotionFrame:
        """Emit frame self._emitted from the buffered audio (its look-ahead, where known;
        `ahead`, when given, is the next frame's audio ahead of time, and `future` the known
        audio of every frame not received yet).

        The frame is drawn from a window that starts LIVE_LAG frames before it and continues
        the K frames before that, so it lies inside the window, as offline frames do: the
        first frame after the context leans on the context (the model's own last frames) and
        follows the audio less, which held lips half open through closures and pauses.
        Windows of consecutive frames start from the same noise where they overlap (noise
        belongs to frames), which keeps the stream smooth. In a pause the rest of the stream
        is taken to be silent."""
        pause = self._in_pause()
        if future is None and pause:
            future = self._audio[-1]
        lag = min(self.LIVE_LAG, self._emitted)
        start = self._emitted - lag
        x = self.model.sample(self._context(lag), *self._window_audio(start, future, ahead), self._control_vec,
                              self._noise_for(start))[lag:lag + 1]
        x = self._apply_intensity(x)
        buffered_first = self._received - len(self._audio)
        vad_i = self._emitted - buffered_first
        va = float(self._vad[vad_i]) if 0 <= vad_i < len(self._vad) else 0.0
        heard = self._audio if ahead is None else np.concatenate([self._audio, ahead[None]])
        out = self._with_blinks(self._mouth(x.copy(), heard, vad_i))
        frame = MotionFrame.from_vector(out[0], self._emitted, va)
        self._keep(None, None, x)
        self._emitted += 1
        return frame

    def _window_audio(self, start: int, future: np.ndarray | None,
                      ahead: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(audio, known) of the window whose first frame is stream frame `start`."""
        i = self.model.info
        n = i.context + i.window + i.lookahead
        first = start - i.context  # stream frame index of the window's first context slot
        audio = np.zeros((n, AUDIO_DIM), np.float32)
        known = np.zeros(n, np.float32)
        buffered_first = self._received - len(self._audio)
        for slot in range(n):
            f = first + slot
            if buffered_first <= f < self._received and f >= 0:
                audio[slot] = self._audio[f - buffered_first]
                known[slot] = 1.0
            elif ahead is not None and f == self._received:
                audio[slot] = ahead
                known[slot] = 1.0
            elif future is not None and f >= self._received:
                audio[slot] = future
                known[slot] = 1.0
        return audio, known

    def _in_pause(self) -> bool:
        n = self.PAUSE_FRAMES
        return len(self._vad) >= n and bool(np.all(self._vad[-n:] < 0.5))

    def _noise_for(self, first: int) -> np.ndarray:
        """Starting noise of a window beginning at stream frame `first`. Noise belongs to frames,
        not windows: overlapping windows start from the same noise where they overlap, so
        they agree there (smooth streaming, seamless windows), and a seed fixes every frame."""
        w, d = self.model.info.window, self.model.info.motion_dim
        end = first + w
        have = self._noise_first + len(self._noise)
        if end > have:
            self._noise = np.concatenate([self._noise, self._rng.standard_normal((end - have, d)).astype(np.float32)])
        drop = max(0, first - self.LIVE_LAG - self._noise_first)  # (live windows start back)
        self._noise, self._noise_first = self._noise[drop:], self._noise_first + drop
        return self._noise[first - self._noise_first:end - self._noise_first]

    def _keep(self, audio: np.ndarray | None, vad: np.ndarray | None, motion: np.ndarray | None) -> None:
        """Append to the rolling buffers, keeping only what the next windows can need."""
        i = self.model.info
        keep = i.context + i.window + i.lookahead + 4 * self.lookahead + 8
        if audio is not None:
            self._audio = np.concatenate([self._audio, audio])[-keep:]
            self._vad = np.concatenate([self._vad, vad])[-keep:]
        if motion is not None:
            self._motion = np.concatenate([self._motion, motion])[-(i.context + self.LIVE_LAG):]

    def _mouth(self, x: np.ndarray, audio: np.ndarray, first: int) -> np.ndarray:
        """Motion rows x, frames first.. of the normalised `audio`, with the lip aperture moved
        towards the opening heard in the sound (the mouth-opening model's, else the 2-4 kHz band's:
        core/acoustic_opening.py), then the lips sealed
        where the lip-seal detector hears a /p b m/ (core/lip_seal.py). Like blinks, only the
        output carries these; the model's own context stays as it generated it."""
        rows = audio[first:first + len(x)] if first >= 0 else audio[:0]
        if len(rows) == len(x) and self.acoustic_opening > 0.0:
            heard = None if self.opening_model is None else self.opening_model.openings(audio, first, len(x))
            open_mouth(x, rows, self.acoustic_opening, heard)
        if self.lip_seal is None:
            return x
        return seal_lips(x, seal_weight(self.lip_seal.probabilities(audio, first, len(x))), max_jaw=SEALED_JAW)

    def _with_blinks(self, x: np.ndarray) -> np.ndarray:
        """Spontaneous blinks on top of the model's lids, frame by frame: the few-step sampler
        rarely produces a rare, brief event like a blink on its own, so a blink timer
        (10-30 per minute) guarantees them. The model's own context does not see them."""
        for row in x:
            closure = self._blinks.step()
            row[BLINKS] = np.maximum(row[BLINKS], closure)
        return x

    def _apply_intensity(self, x: np.ndarray) -> np.ndarray:
        """motion_intensity scales head rotation and translation about rest (1 = as generated)."""
        s = self.controls.motion_intensity
        if s == 1.0:
            return x
        x = x.copy()
        x[:, NUM_BLENDSHAPES:NUM_BLENDSHAPES + 6] *= s
        return x
