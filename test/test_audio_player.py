"""audio_player over real DDS: without a sound device it says so once and republishes the speech on
/vasa/audio_out in order, each chunk when the image of its stamp arrives."""

import signal
import subprocess
import sys
import time

import numpy as np
import rclpy
from sensor_msgs.msg import Image

from vasa_nodes.msg import AudioChunk
from vasa_nodes.nodes.common import IMAGE_QOS, STREAM_QOS, to_ns, to_time

CHUNK = 320  # 20 ms at 16 kHz


def test_audio_player_without_a_device_warns_once_and_republishes_in_step_with_the_images():
    proc = subprocess.Popen([sys.executable, "-P", "-m", "vasa_nodes.nodes.audio_player", "--ros-args",
                             "-p", "initial_delay_s:=0.3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    out_chunks = []  # (arrival ns, message)
    try:
        node = rclpy.create_node("player_test")
        node.create_subscription(AudioChunk, "/vasa/audio_out", lambda m: out_chunks.append((time.time_ns(), m)),
                                 STREAM_QOS)
        audio_pub = node.create_publisher(AudioChunk, "/vasa/audio", STREAM_QOS)
        image_pub = node.create_publisher(Image, "/vasa/image", IMAGE_QOS)
        end = time.monotonic() + 30
        while (audio_pub.get_subscription_count() == 0 or image_pub.get_subscription_count() == 0
               or node.count_publishers("/vasa/audio_out") == 0) and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert audio_pub.get_subscription_count() and image_pub.get_subscription_count()
        time.sleep(1.0)  # let discovery settle both ways
        rng = np.random.default_rng(0)
        streams = []
        images = []  # (due arrival ns, stamp ns): the "renderer" shows frame t at t + 80 ms
        for _ in range(2):  # two utterances of 1 s, 0.5 s apart
            samples = (0.1 * rng.standard_normal(16000)).astype(np.float32)
            t0 = time.time_ns()
            streams.append((t0, samples))
            images += [(t0 + k * 40_000_000 + 80_000_000, t0 + k * 40_000_000) for k in range(25)]
            for k, offset in enumerate(range(0, 16000, CHUNK)):
                due = t0 + k * 20_000_000
                while time.time_ns() < due:
                    while images and images[0][0] <= time.time_ns():
                        img = Image(height=1, width=1, encoding="rgb8", step=3, data=b"\0\0\0")
                        img.header.stamp = to_time(images.pop(0)[1])
                        image_pub.publish(img)
                    rclpy.spin_once(node, timeout_sec=0.002)
                msg = AudioChunk(sample_rate=16000, sample_offset=offset, samples=samples[offset:offset + CHUNK],
                                 end_of_stream=offset + CHUNK >= 16000)
                msg.header.stamp = to_time(t0 + offset * 1_000_000_000 // 16000)
                msg.header.frame_id = "file"
                audio_pub.publish(msg)
            stop = time.monotonic() + 0.5
            while time.monotonic() < stop:
                while images and images[0][0] <= time.time_ns():
                    img = Image(height=1, width=1, encoding="rgb8", step=3, data=b"\0\0\0")
                    img.header.stamp = to_time(images.pop(0)[1])
                    image_pub.publish(img)
                rclpy.spin_once(node, timeout_sec=0.005)
        stop = time.monotonic() + 1.0
        while time.monotonic() < stop:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        proc.send_signal(signal.SIGINT)
        log, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, log
    warnings = [line for line in log.splitlines() if "WARN" in line]
    assert len(warnings) == 1, log
    assert "not playing the speech, still republishing it on /vasa/audio_out" in warnings[0]

    # Everything came back, in order, unchanged, with its stamps.
    assert len(out_chunks) == 2 * 50, f"{len(out_chunks)} chunks republished"
    for s, (t0, samples) in enumerate(streams):
        got = [m for _, m in out_chunks[50 * s:50 * (s + 1)]]
        assert [m.sample_offset for m in got] == list(range(0, 16000, CHUNK))
        np.testing.assert_array_equal(np.concatenate([np.asarray(m.samples) for m in got]), samples)
        assert [to_ns(m.header.stamp) for m in got] == [t0 + o * 1_000_000_000 // 16000 for o in range(0, 16000, CHUNK)]
        assert got[-1].end_of_stream and got[0].header.frame_id == "file"
    delays = [(arrival - to_ns(m.header.stamp)) / 1e9 for arrival, m in out_chunks]
    # The first utterance starts with the initial delay, before any image has been measured…
    assert 0.3 <= delays[0] < 0.45
    # …then follows the images (shown 80 ms after their stamps), as does the whole second one.
    assert all(0.08 <= d < 0.2 for d in delays[60:]), delays[60:]
