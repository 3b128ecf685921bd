"""512² images between two processes over Fast DDS: Fast DDS's default transports against the
profile face_renderer loads (vasa_nodes.nodes.common.LARGE_SAMPLE_PROFILES: a 16 MB
shared-memory segment).

For each setting of the publisher and each reader QoS (reliable keep-last 10, as
vasa/image is published; best effort, as image viewers read it), a publisher process sends
--seconds of 512x512 rgb8 images at 25 fps and a reader process with the default settings
counts them and their latency (arrival - stamp, both on this host's clock).

    .venv/bin/python -P benchmarks/bench_transport.py [--seconds 12] [--size 512]

Run it as the nodes run (ROS_AUTOMATIC_DISCOVERY_RANGE as you use it; the test suite uses
LOCALHOST).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

FPS = 25.0


def publish(seconds: float, size: int) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from vasa_nodes.nodes.common import IMAGE_QOS

    rclpy.init()
    node = rclpy.create_node("bench_transport_pub")
    pub = node.create_publisher(Image, "/bench/image", IMAGE_QOS)
    end = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)
    data = np.random.default_rng(0).integers(0, 255, size * size * 3, np.uint8).tobytes()
    start = time.monotonic()
    for k in range(int(seconds * FPS)):
        while time.monotonic() < start + k / FPS:
            time.sleep(0.0005)
        msg = Image(height=size, width=size, encoding="rgb8", step=3 * size, data=data)
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = now // 1_000_000_000, now % 1_000_000_000
        pub.publish(msg)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def read(best_effort: bool, seconds: float) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from vasa_nodes.nodes.common import IMAGE_QOS, serialized_stamp_ns

    rclpy.init()
    node = rclpy.create_node("bench_transport_read")
    latency = []
    node.create_subscription(Image, "/bench/image",
                             lambda d: latency.append((time.time_ns() - serialized_stamp_ns(d)) / 1e6),
                             qos_profile_sensor_data if best_effort else IMAGE_QOS, raw=True)
    end = time.monotonic() + seconds + 25
    quiet_since = None
    while time.monotonic() < end:
        n = len(latency)
        rclpy.spin_once(node, timeout_sec=0.1)
        if latency and len(latency) == n:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2.0:
                break
        else:
            quiet_since = None
    node.destroy_node()
    rclpy.shutdown()
    a = np.array(latency)
    print(json.dumps({"received": len(latency), "median_ms": round(float(np.median(a)), 2) if latency else None,
                      "p95_ms": round(float(np.percentile(a, 95)), 2) if latency else None}))


def run(profile: str | None, best_effort: bool, seconds: float, size: int, domain: int) -> dict:
    me = [sys.executable, "-P", __file__]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FASTDDS_", "FASTRTPS_"))}
    base["ROS_DOMAIN_ID"] = str(domain)
    reader = subprocess.Popen(me + ["--role", "read", "--seconds", str(seconds)] + (["--best-effort"] if best_effort
                                                                                     else []),
                              env=base, stdout=subprocess.PIPE, text=True)
    pub_env = dict(base, **({"FASTDDS_DEFAULT_PROFILES_FILE": profile} if profile else {}))
    subprocess.run(me + ["--role", "publish", "--seconds", str(seconds), "--size", str(size)], env=pub_env, check=True)
    out = json.loads(reader.communicate(timeout=60)[0].strip().splitlines()[-1])
    out["published"] = int(seconds * FPS)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--role", choices=("publish", "read"), help=argparse.SUPPRESS)
    p.add_argument("--best-effort", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "publish":
        return publish(args.seconds, args.size)
    if args.role == "read":
        return read(args.best_effort, args.seconds)
    from vasa_nodes.nodes.common import LARGE_SAMPLE_PROFILES

    domain = 100 + os.getpid() % 100
    print(f"{args.size}x{args.size} rgb8 ({args.size * args.size * 3 / 1e6:.2f} MB) at {FPS:g} fps for "
          f"{args.seconds:g} s, publisher and reader on this host")
    print(f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '(unset: SUBNET)')}")
    for profile in (None, str(LARGE_SAMPLE_PROFILES)):
        for best_effort in (False, True):
            r = run(profile, best_effort, args.seconds, args.size, domain)
            print(f"  publisher {'Fast DDS defaults' if profile is None else 'large-sample profile':<20} reader "
                  f"{'best effort' if best_effort else 'reliable   '}: "
                  f"{r['received']:>4}/{r['published']} frames, latency median {r['median_ms']} ms, "
                  f"p95 {r['p95_ms']} ms")


if __name__ == "__main__":
    main()
