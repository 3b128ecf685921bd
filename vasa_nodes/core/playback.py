"""Scheduling the speech so that it is heard when its picture is shown (ROS-free core of audio_player).

The stamps say when things belong together: sample n of a stream belongs to the instant
`t0 + n / rate`, and the video frame stamped t shows the face for the audio from t on. The
picture, though, is *shown* a little later than its stamp: the frame stamped t reaches a
viewer at `t + D`, D being the graph's latency (features, motion, rendering, transport;
tens of milliseconds). So the sample stamped t must be heard at `t + D` as well.

`PlaybackScheduler` holds the audio chunks until then: `release(now)` gives the chunks whose
time has come (republished as they are played), `render(start, n)` the samples a sound
device must output from `start` on (silence where there is none; late samples are dropped,
so the sound never drifts behind). `LatencyTracker` measures D from the images' arrivals:
the median of the recent frames whose stamps fall inside a known audio stream (idle frames
between utterances are stamped on their own clock and are left out).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

NS = 1_000_000_000


@dataclass
class ScheduledChunk:
    """A chunk of one audio stream, with the time it is to be heard (`due_ns`, wall clock ns)."""

    stamp_ns: int          # presentation stamp of samples[0] (the images' clock)
    due_ns: int            # when samples[0] is to be heard: stamp_ns + the delay at scheduling time
    sample_rate: int
    sample_offset: int
    samples: np.ndarray    # float32 mono
    end_of_stream: bool
    frame_id: str = ""

    @property
    def end_due_ns(self) -> int:
        return self.due_ns + len(self.samples) * NS // self.sample_rate


class LatencyTracker:
    """Median delay between an image's stamp and its arrival, over the last `window` frames of speech."""

    def __init__(self, window: int = 25, max_latency_s: float = 2.0):
        self._latencies: deque[int] = deque(maxlen=window)
        self._spans: deque[tuple[int, int]] = deque(maxlen=8)  # (first, last) stamp ns of recent audio streams
        self.max_latency_ns = int(max_latency_s * NS)

    def audio(self, stamp_ns: int, samples: int, sample_rate: int, stream_start: bool) -> None:
        """Note the span of a chunk of audio (so that images of speech can be told from idle ones)."""
        end = stamp_ns + samples * NS // max(1, sample_rate)
        if stream_start or not self._spans:
            self._spans.append((stamp_ns, end))
        else:
            first, _ = self._spans[-1]
            self._spans[-1] = (first, end)

    def image(self, stamp_ns: int, arrival_ns: int) -> bool:
        """Note an image's arrival; True if it counted (it shows speech and arrived plausibly late)."""
        latency = arrival_ns - stamp_ns
        if not 0 <= latency <= self.max_latency_ns:
            return False
        if not any(first <= stamp_ns < end for first, end in self._spans):
            return False
        self._latencies.append(latency)
        return True

    @property
    def latency_ns(self) -> int | None:
        """The median latency of the recent frames of speech, or None before any."""
        if not self._latencies:
            return None
        return int(np.median(np.fromiter(self._latencies, np.int64)))


class PlaybackScheduler:
    """Audio chunks held until `stamp + delay`; the delay is fixed per stream (so a stream plays
    without gaps) unless the measured latency moves by more than `realign_ns` during it."""

    def __init__(self, delay_ns: int, realign_ns: int = 40_000_000, max_queue_s: float = 30.0):
        self.delay_ns = int(delay_ns)       # the delay of chunks scheduled from now on
        self.realign_ns = int(realign_ns)
        self.max_queue_s = max_queue_s
        self._pending: deque[ScheduledChunk] = deque()  # not yet released (republishing)
        self._timeline: deque[ScheduledChunk] = deque()  # not yet rendered (sound device)
        self._in_stream = False
        self.dropped_samples = 0

    def set_latency(self, latency_ns: int) -> bool:
        """Follow a measured latency: taken at once between streams, during a stream only when it
        moved by more than `realign_ns` (a jump of the sound, worth it to stay within a frame).
        True if the delay changed."""
        if latency_ns == self.delay_ns:
            return False
        if self._in_stream and abs(latency_ns - self.delay_ns) <= self.realign_ns:
            return False
        self.delay_ns = int(latency_ns)
        return True

    def push(self, stamp_ns: int, samples: np.ndarray, sample_rate: int, sample_offset: int = 0,
             end_of_stream: bool = False, frame_id: str = "") -> ScheduledChunk:
        """Schedule a chunk to be heard at stamp_ns + the current delay."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        samples = np.asarray(samples, np.float32)
        if samples.size and not np.all(np.isfinite(samples)):
            raise ValueError("samples contain NaN or Inf")
        chunk = ScheduledChunk(int(stamp_ns), int(stamp_ns) + self.delay_ns, int(sample_rate), int(sample_offset),
                               samples, bool(end_of_stream), frame_id)
        self._in_stream = not end_of_stream
        self._pending.append(chunk)
        self._timeline.append(chunk)
        # A consumer that stopped (no device, nobody rendering) must not make the queue grow forever.
        horizon = chunk.due_ns - int(self.max_queue_s * NS)
        while self._timeline and self._timeline[0].end_due_ns < horizon:
            self._timeline.popleft()
        return chunk

    def release(self, now_ns: int) -> list[ScheduledChunk]:
        """The chunks whose time to be heard has come, in order."""
        out = []
        while self._pending and self._pending[0].due_ns <= now_ns:
            out.append(self._pending.popleft())
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)

    def render(self, start_ns: int, n: int, sample_rate: int) -> np.ndarray:
        """The n samples (at `sample_rate`, the chunks' rate) to be heard from start_ns on: each
        scheduled sample at its due time, silence elsewhere; samples whose time has passed are dropped."""
        out = np.zeros(n, np.float32)
        period = NS / sample_rate
        end_ns = start_ns + int(round(n * period))
        while self._timeline:
            chunk = self._timeline[0]
            if chunk.sample_rate != sample_rate:  # not ours to output (the node resamples first)
                self._timeline.popleft()
                continue
            if chunk.due_ns >= end_ns:
                break
            # Position of the chunk's samples in the output buffer (may start before it: late).
            first = int(round((chunk.due_ns - start_ns) / period))
            src0 = max(0, -first)
            dst0 = max(0, first)
            count = min(len(chunk.samples) - src0, n - dst0)
            if src0 > 0:
                self.dropped_samples += min(src0, len(chunk.samples))
            if count > 0:
                out[dst0:dst0 + count] += chunk.samples[src0:src0 + count]
            if src0 + max(count, 0) >= len(chunk.samples):
                self._timeline.popleft()
            else:  # the rest of the chunk comes in the next buffer
                rest = src0 + max(count, 0)
                self._timeline[0] = ScheduledChunk(
                    chunk.stamp_ns + rest * NS // chunk.sample_rate, chunk.due_ns + rest * NS // chunk.sample_rate,
                    chunk.sample_rate, chunk.sample_offset + rest, chunk.samples[rest:], chunk.end_of_stream,
                    chunk.frame_id)
                break
        return np.clip(out, -1.0, 1.0)
