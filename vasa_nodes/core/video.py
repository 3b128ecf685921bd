"""MP4 output: H.264 video (+ AAC audio) through PyAV (FFmpeg), streams aligned at t = 0, and
the provenance statement as MP4 metadata tags and a signed C2PA manifest."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .provenance import ProvenanceError, mp4_tags, sign_mp4

log = logging.getLogger(__name__)


class VideoWriter:
    """Write RGB frames at a fixed rate, then the audio track, into one .mp4 file.

    `provenance` (core/provenance.statement()): written as MP4 metadata tags and, on close,
    as a C2PA manifest signed with the local key (a warning if that cannot be done: the
    tags stay). None: a plain video."""

    def __init__(self, path: str | Path, size: int, fps: int = 25, crf: int = 20, preset: str = "veryfast",
                 with_audio: bool = True, provenance: dict[str, str] | None = None):
        import av  # noqa: PLC0415

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.provenance = provenance
        # use_metadata_tags: keys of our own (vasa_nodes.*) are kept, not only the standard ones.
        self._container = av.open(str(self.path), mode="w",
                                  options={"movflags": "+faststart+use_metadata_tags" if provenance else "+faststart"})
        if provenance:
            self._container.metadata.update(mp4_tags(provenance))
        self._video = self._container.add_stream("libx264", rate=Fraction(fps, 1))
        self._video.width = self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._audio = None
        if with_audio:
            self._audio = self._container.add_stream("aac", rate=SAMPLE_RATE)
            self._audio.layout = "mono"
        self._frames = 0

    def write_frame(self, rgb: np.ndarray) -> None:
        import av  # noqa: PLC0415

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._frames
        frame.time_base = Fraction(1, self.fps)
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self._frames += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """The whole 16 kHz mono track (float32 in [-1, 1]), starting at t = 0."""
        import av  # noqa: PLC0415

        x = np.asarray(samples, np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = 0
        frame.time_base = Fraction(1, SAMPLE_RATE)
        for packet in self._audio.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._video.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            for packet in self._audio.encode(None):
                self._container.mux(packet)
        self._container.close()
        if self.provenance:
            try:
                sign_mp4(self.path, self.provenance)
            except ProvenanceError as exc:
                log.warning("%s (the MP4 metadata tags still say what made it)", exc)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
