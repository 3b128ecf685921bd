"""motion_generator: AudioFeatures + AvatarControl -> FaceMotion (/vasa/face_motion), one per video frame.

While speech streams in, each feature frame becomes a motion frame stamped on the audio's
clock: with the diffusion model (default) once the next frame's audio is in (look-ahead;
that frame as AudioFeatures carries it ahead of time), with the rules at once. Between streams a timer keeps producing idle frames (blinks, head
sway, gaze shifts, mouth closed) on the node's clock, so the face never freezes.
"""

from __future__ import annotations

import sys

from rclpy.node import Node

from vasa_nodes.core.acoustic_opening import DEFAULT_WEIGHT as DEFAULT_ACOUSTIC_OPENING, load_opening_model
from vasa_nodes.core.lip_seal import load_lip_seal
from vasa_nodes.core.motion import Controls, RuleBasedMotionGenerator
from vasa_nodes.core.motion_model import DEFAULT_MODEL, DiffusionMotionGenerator, Guidance, MotionModel
from vasa_nodes.msg import AudioFeatures, AvatarControl, FaceMotion

from .common import (CONTROL_QOS, STREAM_QOS, TOPIC_CONTROL, TOPIC_FEATURES, TOPIC_MOTION, StartupError,
                     ahead_from_msg, controls_from_msg, describe, features_from_msg, motion_to_msg, run_node, to_ns)

NAME = "motion_generator"


class MotionGeneratorNode(Node):
    def __init__(self):
        super().__init__(NAME)
        self.fps = self.declare_parameter(
            "fps", 25, describe("motion frames per second (video rate)", read_only=True, int_range=(10, 100))).value
        seed = self.declare_parameter(
            "seed", 0, describe("seed of the non-verbal motion (blinks, sway, gaze shifts)", read_only=True)).value
        self.idle = self.declare_parameter(
            "idle_motion", True, describe("publish idle frames between speech streams")).value
        self.period_ns = int(round(1e9 / self.fps))
        model = self.declare_parameter(
            "model", "", describe("motion model: path to an ONNX motion model, empty for the shipped one, or "
                                  "'rules' for the rule-based generator", read_only=True)).value
        steps = self.declare_parameter(
            "sampling_steps", MotionModel.DEFAULT_STEPS,
            describe("diffusion sampling steps per frame", read_only=True, int_range=(1, 50))).value
        threads = self.declare_parameter(
            "threads", 1, describe("ONNX Runtime threads of the motion model (0: one per core); one costs less "
                                   "CPU per frame and leaves the other cores to the renderer", read_only=True,
                                   int_range=(0, 64))).value
        guidance = Guidance(
            audio=self.declare_parameter("guidance_audio", Guidance.audio, describe(
                "classifier-free guidance scale of the audio (1: none)", read_only=True,
                float_range=(0.0, 5.0))).value,
            controls=self.declare_parameter("guidance_controls", Guidance.controls, describe(
                "classifier-free guidance scale of gaze, distance and emotion (1: none)", read_only=True,
                float_range=(0.0, 5.0))).value)
        lookahead = self.declare_parameter(
            "lookahead_frames", 1, describe("audio frames the diffusion model waits for past each frame (latency "
                                            "vs. lip anticipation)", read_only=True, int_range=(0, 5))).value
        lip_seal = self.declare_parameter(
            "lip_seal_model", "", describe("lip-seal detector (lips shut for /p b m/): path to an ONNX detector, "
                                           "empty for the shipped one, or 'none'", read_only=True)).value
        opening = self.declare_parameter(
            "acoustic_opening", DEFAULT_ACOUSTIC_OPENING, describe(
                "how far the lip aperture follows the mouth opening heard in the sound (0: the motion model's "
                "own)", read_only=True, float_range=(0.0, 1.0))).value
        opening_model = self.declare_parameter(
            "opening_model", "", describe("where the mouth opening is heard: path to an ONNX mouth-opening model, "
                                          "empty for the shipped one, or 'band' for the 2-4 kHz band's level",
                                          read_only=True)).value
        if model == "rules":
            self.generator = RuleBasedMotionGenerator(float(self.fps), seed=seed, controls=Controls())
        else:
            try:
                motion_model = MotionModel(model or DEFAULT_MODEL, steps=steps, guidance=guidance, threads=threads)
            except ValueError as exc:  # MotionModelError included
                raise StartupError(NAME, str(exc)) from None
            if abs(motion_model.info.fps - self.fps) > 1e-3:
                raise StartupError(NAME, f"the motion model runs at {motion_model.info.fps:g} fps, not {self.fps}")
            try:
                seal = load_lip_seal(lip_seal)
                heard = load_opening_model(opening_model)
                self.generator = DiffusionMotionGenerator(motion_model, seed=seed, controls=Controls(),
                                                          lookahead_frames=lookahead, lip_seal=seal,
                                                          acoustic_opening=opening, opening_model=heard)
            except ValueError as exc:  # LipSealError, OpeningModelError, MotionModelError
                raise StartupError(NAME, str(exc)) from None
            self.get_logger().info(f"diffusion motion model on {motion_model.provider} ({threads or 'one per core'} "
                                   f"thread{'s' if threads != 1 else ''}), {steps} steps, lip seal "
                                   f"{'off' if seal is None else 'on'}, acoustic opening {opening:g} "
                                   f"({'2-4 kHz band' if heard is None else 'mouth-opening model'})")
        self._stream_base = 0  # generator frame index of the current stream's frame 0
        self.pub = self.create_publisher(FaceMotion, TOPIC_MOTION, STREAM_QOS)
        self.create_subscription(AudioFeatures, TOPIC_FEATURES, self._on_features, STREAM_QOS)
        self.create_subscription(AvatarControl, TOPIC_CONTROL, self._on_control, CONTROL_QOS)
        self.stream_timeout_s = self.declare_parameter(
            "stream_timeout_s", 1.0, describe("resume idle motion when features stop arriving for this many "
                                              "seconds without end_of_stream", float_range=(0.1, 10.0))).value
        self.idle_delay_ns = int(1e9 * self.declare_parameter(
            "idle_delay_s", 0.2, describe("idle frames are stamped this far in the past: speech frames arrive "
                                          "that late anyway (a frame, the model's look-ahead frame, the feature "
                                          "look-ahead, a chunk, and some slack for a loaded machine), so the "
                                          "idle and speech frames of a stream start do not overlap",
                                          float_range=(0.0, 1.0))).value)
        self._streaming = False
        self._last_features_ns = 0
        self._next_idle_ns: int | None = None
        self.create_timer(1.0 / self.fps, self._on_timer)

    def _on_control(self, msg: AvatarControl) -> None:
        try:
            self.generator.set_controls(controls_from_msg(msg))
        except ValueError as exc:
            self.get_logger().error(f"ignored AvatarControl: {exc}")
            return
        self.get_logger().info(f"controls: emotion={msg.emotion or 'neutral'} ({msg.emotion_intensity:.2f}), "
                               f"gaze={'on' if msg.gaze_enabled else 'free'}, "
                               f"distance={'on' if msg.distance_enabled else 'free'}")

    def _on_features(self, msg: AudioFeatures) -> None:
        try:
            frames = features_from_msg(msg)
            ahead = ahead_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(f"ignored AudioFeatures: {exc}")
            return
        if abs(msg.frame_rate - self.fps) > 1e-3:
            self.get_logger().error(f"ignored AudioFeatures at {msg.frame_rate} fps; this node runs at {self.fps} fps",
                                    throttle_duration_sec=5.0)
            return
        if not self._streaming:  # a new stream: its frame 0 is the generator's next frame
            self._stream_base = self.generator.frames_received - int(msg.frame_offset)
            self._stream_t0_ns = to_ns(msg.header.stamp) - int(msg.frame_offset) * self.period_ns
        self._streaming = not msg.end_of_stream
        self._last_features_ns = self.get_clock().now().nanoseconds
        motion = self.generator.push(frames, ahead)
        if msg.end_of_stream:
            motion += self.generator.finish()
        self._publish(motion)

    def _publish(self, motion) -> None:
        for m in motion:
            stamp = self._stream_t0_ns + (m.frame_index - self._stream_base) * self.period_ns
            self.pub.publish(motion_to_msg(m, self.fps, stamp))
            self._next_idle_ns = stamp + self.period_ns

    def _on_timer(self) -> None:
        now = self.get_clock().now().nanoseconds
        if self._streaming and now - self._last_features_ns > self.stream_timeout_s * 1e9:
            self.get_logger().warning("audio features stopped without end_of_stream; idling")
            self._streaming = False
            self._publish(self.generator.finish())
        if self._streaming or not self.idle:
            return
        now -= self.idle_delay_ns
        if self._next_idle_ns is None or self._next_idle_ns < now - 5 * self.period_ns:
            self._next_idle_ns = now  # (re)start the idle clock after a pause or at start-up
        # Catch up to the present, never run ahead of it.
        while self._next_idle_ns <= now:
            self.pub.publish(motion_to_msg(self.generator.idle(), self.fps, self._next_idle_ns))
            self._next_idle_ns += self.period_ns


def main(args: list[str] | None = None) -> int:
    return run_node(MotionGeneratorNode, args)


if __name__ == "__main__":
    sys.exit(main())
