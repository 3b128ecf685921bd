"""The audio player's scheduling core, without ROS: when each sample is heard and republished."""

import numpy as np
import pytest

from vasa_nodes.core.playback import NS, LatencyTracker, PlaybackScheduler

RATE = 16000


def test_each_sample_is_output_at_its_stamp_plus_the_delay_and_late_samples_are_dropped():
    s = PlaybackScheduler(delay_ns=100_000_000)
    ramp = np.arange(1, 321, dtype=np.float32) / 1000
    s.push(1 * NS, ramp, RATE)                      # heard from 1.1 s on
    before = s.render(1 * NS + 90_000_000, 160, RATE)  # 1.090 .. 1.100 s: nothing yet
    assert not before.any()
    out = s.render(1 * NS + 100_000_000, 160, RATE)  # exactly the first 160 samples
    np.testing.assert_array_equal(out, ramp[:160])
    # The device skipped 5 ms (80 samples): those are dropped, not played late.
    out = s.render(1 * NS + 115_000_000, 160, RATE)
    np.testing.assert_array_equal(out[:80], ramp[240:])
    assert not out[80:].any()
    assert s.dropped_samples == 80


def test_chunks_are_released_in_order_when_due_and_the_delay_follows_the_latency_between_streams():
    s = PlaybackScheduler(delay_ns=300_000_000)
    for k in range(3):
        s.push(NS + k * 20_000_000, np.zeros(320, np.float32), RATE, sample_offset=320 * k, end_of_stream=k == 2)
    assert s.release(NS + 299_000_000) == []
    assert [c.sample_offset for c in s.release(NS + 320_000_000)] == [0, 320]
    # A measured latency is taken at once between streams…
    assert s.set_latency(80_000_000)
    c = s.push(2 * NS, np.zeros(320, np.float32), RATE)
    assert c.due_ns == 2 * NS + 80_000_000
    # …but within a stream only when it moved by more than a frame.
    assert not s.set_latency(100_000_000)
    assert s.set_latency(130_000_000)
    # A later chunk due earlier never overtakes: the order of the stream is kept.
    assert [c.sample_offset for c in s.release(3 * NS)] == [640, 0]


def test_latency_counts_only_images_of_speech():
    t = LatencyTracker()
    assert t.latency_ns is None
    t.audio(10 * NS, 16000, RATE, stream_start=True)           # speech from 10 s to 11 s
    assert not t.image(9 * NS, 9 * NS + 200_000_000)           # an idle frame before it
    for k in range(5):
        assert t.image(10 * NS + k * 40_000_000, 10 * NS + k * 40_000_000 + (70 + k) * 1_000_000)
    assert t.latency_ns == 72_000_000
    with pytest.raises(ValueError, match="NaN"):
        PlaybackScheduler(0).push(0, np.array([np.nan], np.float32), RATE)
