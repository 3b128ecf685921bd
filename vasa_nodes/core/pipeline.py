"""Offline pipeline: portrait + audio file -> frames (and an mp4), with the same cores as the nodes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .audio import Audio
from .features import StreamingFeatureExtractor
from .motion import Controls, MotionFrame, RuleBasedMotionGenerator
from .portrait import Portrait
from .renderer import FaceRenderer
from .video import VideoWriter

log = logging.getLogger(__name__)

AUDIO_CHUNK = 320
"""Samples per chunk fed to the streaming cores offline (20 ms, as a live stream would)."""


@dataclass
class GenerateSettings:
    fps: int = 25
    seed: int = 0
    controls: Controls | None = None


def motion_for_audio(audio: Audio, settings: GenerateSettings) -> list[MotionFrame]:
    """Motion frames for the whole clip: ceil(duration * fps) frames.

    The audio is fed in 20 ms chunks through the same streaming extractor and generator
    the nodes run, so offline and live output agree frame for frame.
    """
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
                progress: Callable[[int], None] | None = None) -> int:
    """Render motion frames of `portrait` into an mp4, with `audio` as its sound track when given."""
    renderer = FaceRenderer(portrait)
    try:
        with VideoWriter(out_path, portrait.size, fps, with_audio=audio is not None) as writer:
            if audio is not None:
                writer.write_audio(audio.samples)
            for image in render_frames(renderer, motion):
                writer.write_frame(image)
                if progress:
                    progress(1)
    finally:
        renderer.close()
    return len(motion)
