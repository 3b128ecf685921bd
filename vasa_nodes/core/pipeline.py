"""Offline pipeline: portrait + audio file -> frames (and an mp4), with the same cores as the nodes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .acoustic_opening import DEFAULT_WEIGHT as DEFAULT_ACOUSTIC_OPENING, load_opening_model
from .audio import Audio
from .features import StreamingFeatureExtractor, compute_features
from .lip_seal import load_lip_seal
from .motion import Controls, MotionFrame, RuleBasedMotionGenerator
from .motion_model import DEFAULT_MODEL, DiffusionMotionGenerator, Guidance, MotionModel
from .portrait import Portrait
from .provenance import statement
from .renderer import FaceRenderer
from .video import VideoWriter
from .watermark import DEFAULT_WATERMARK, Watermarker

log = logging.getLogger(__name__)

AUDIO_CHUNK = 320
"""Samples per chunk fed to the streaming cores offline (20 ms, as a live stream would)."""


@dataclass
class GenerateSettings:
    fps: int = 25
    seed: int = 0
    controls: Controls | None = None
    model: str | None = None  # ONNX motion model; None: the shipped one; "rules": rule-based generator
    steps: int = 4
    guidance: Guidance | None = None  # classifier-free guidance scales (None: the model's defaults)
    lip_seal: str | None = None  # lip-seal detector (ONNX); None: the shipped one; "none": off
    acoustic_opening: float = DEFAULT_ACOUSTIC_OPENING  # lip aperture towards the heard opening (0: off)
    opening_model: str | None = None  # mouth-opening model (ONNX); None: the shipped one; "band": the 2-4 kHz band


def model_files(settings: GenerateSettings) -> list[str]:
    """The model files `settings` generate motion with (for the provenance statement)."""
    from .acoustic_opening import DEFAULT_OPENING_MODEL  # noqa: PLC0415
    from .lip_seal import DEFAULT_LIP_SEAL  # noqa: PLC0415

    if settings.model == "rules":
        return []
    files = [str(settings.model or DEFAULT_MODEL)]
    if settings.lip_seal != "none":
        files.append(str(settings.lip_seal or DEFAULT_LIP_SEAL))
    if settings.acoustic_opening > 0 and settings.opening_model != "band":
        files.append(str(settings.opening_model or DEFAULT_OPENING_MODEL))
    return files


def motion_for_audio(audio: Audio, settings: GenerateSettings) -> list[MotionFrame]:
    """Motion frames for the whole clip: ceil(duration * fps) frames.

    With the diffusion model, whole windows of the model's frame rate, resampled to
    `fps` if that differs. With the rules, the audio is fed in 20 ms chunks through the
    same streaming extractor and generator the nodes run, so offline and live agree.
    """
    if settings.model != "rules":
        return _diffusion_motion(audio, settings)
    extractor = StreamingFeatureExtractor(settings.fps)
    generator = RuleBasedMotionGenerator(settings.fps, seed=settings.seed, controls=settings.controls)
    frames: list[MotionFrame] = []
    x = audio.samples
    for start in range(0, len(x), AUDIO_CHUNK):
        frames += generator.generate(extractor.push(x[start:start + AUDIO_CHUNK]))
    frames += generator.generate(extractor.finish())
    return frames


def render_frames(renderer: FaceRenderer, motion: list[MotionFrame]) -> Iterator[np.ndarray]:
    for m in motion:
        yield renderer.render(m)


def write_video(portrait: Portrait, motion: list[MotionFrame], audio: Audio | None, out_path: str, fps: int,
                progress: Callable[[int], None] | None = None,
                watermark: Watermarker | None = DEFAULT_WATERMARK, provenance: dict | None = None) -> int:
    """Render motion frames of `portrait` into an mp4, with `audio` as its sound track when given.

    Every frame carries `watermark` (None: unmarked); the file's metadata states `provenance`
    (core/provenance.statement(); None: the statement without model files)."""
    renderer = FaceRenderer(portrait, watermark=watermark)
    if provenance is None:
        provenance = statement(watermark=watermark)
    try:
        with VideoWriter(out_path, portrait.size, fps, with_audio=audio is not None,
                         provenance=provenance) as writer:
            if audio is not None:
                writer.write_audio(audio.samples)
            for image in render_frames(renderer, motion):
                writer.write_frame(image)
                if progress:
                    progress(1)
    finally:
        renderer.close()
    return len(motion)


def _diffusion_motion(audio: Audio, settings: GenerateSettings) -> list[MotionFrame]:
    model = MotionModel(settings.model or DEFAULT_MODEL, steps=settings.steps, guidance=settings.guidance)
    generator = DiffusionMotionGenerator(model, seed=settings.seed, controls=settings.controls,
                                         lip_seal=load_lip_seal(settings.lip_seal),
                                         acoustic_opening=settings.acoustic_opening,
                                         opening_model=load_opening_model(settings.opening_model))
    features = compute_features(audio.samples, model.info.fps)
    frames = generator.generate(features)
    n = int(np.ceil(len(audio.samples) / audio.sample_rate * settings.fps - 1e-9))
    if abs(model.info.fps - settings.fps) < 1e-6:
        return frames[:n]
    # Another video rate: interpolate the motion vectors in time.
    x = np.stack([f.to_vector() for f in frames])
    va = np.array([f.voice_activity for f in frames])
    src = np.arange(len(frames)) / model.info.fps
    dst = np.arange(n) / settings.fps
    out = np.stack([np.interp(dst, src, x[:, j]) for j in range(x.shape[1])], axis=1)
    return [MotionFrame.from_vector(v, k, float(np.interp(dst[k], src, va))) for k, v in enumerate(out)]
