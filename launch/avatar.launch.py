"""Start the vasa_nodes graph: audio_capture -> audio_encoder -> motion_generator -> face_renderer,
plus avatar_control and audio_player (sound in step with the images; and foxglove_bridge with
foxglove:=PORT), all configured from one YAML keyed by node name.

A node that dies is respawned after RESPAWN_DELAY_S (at most RESPAWN_MAX_RETRIES times);
one that exits with EXIT_STARTUP_ERROR (78: unreadable portrait, no face, bad parameter)
shuts the launch down, as no restart would fix it (vasa-avatar does the same).

    ros2 launch vasa_nodes avatar.launch.py portrait:=/path/face.jpg
    ros2 launch vasa_nodes avatar.launch.py portrait:=face.jpg audio_source:=speech.wav
    ros2 launch vasa_nodes avatar.launch.py portrait:=face.jpg audio_source:=mic namespace:=robot1
    ros2 launch vasa_nodes avatar.launch.py portrait:=face.jpg foxglove:=8765
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

NODES = ("audio_capture", "audio_encoder", "motion_generator", "avatar_control", "face_renderer", "audio_player")
EXIT_STARTUP_ERROR = 78  # vasa_nodes.nodes.common.EXIT_STARTUP_ERROR (not imported: launch files stay standalone)
RESPAWN_DELAY_S = 0.5
RESPAWN_MAX_RETRIES = 10


def _stop_on_startup_error(name):
    """A node's on_exit: shut the launch down if it could not start, or when respawn gives up on it;
    otherwise respawn takes over."""
    exits = 0

    def on_exit(event, context):
        nonlocal exits
        exits += 1
        if event.returncode == EXIT_STARTUP_ERROR:
            return Shutdown(reason=f"{name} could not start (exit code {event.returncode})")
        if exits > RESPAWN_MAX_RETRIES:
            return Shutdown(reason=f"{name} died {exits} times")
        return None
    return on_exit


def _nodes(context):
    config = LaunchConfiguration("config").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    audio_source = LaunchConfiguration("audio_source").perform(context)
    overrides = {
        "face_renderer": {"portrait": LaunchConfiguration("portrait").perform(context),
                          "size": int(LaunchConfiguration("size").perform(context))},
    }
    # audio_source: 'topic' or 'mic' selects that source; anything else is a file to play.
    if audio_source in ("topic", "mic"):
        overrides["audio_capture"] = {"source": audio_source}
    else:
        overrides["audio_capture"] = {"source": "file", "file": audio_source}
    names = NODES
    foxglove = LaunchConfiguration("foxglove").perform(context)
    if foxglove:
        names += ("foxglove_bridge",)
        overrides["foxglove_bridge"] = {"port": int(foxglove)}
    # sound: 'auto' plays the speech unless it comes from the microphone (which would hear it again).
    sound = LaunchConfiguration("sound").perform(context)
    if sound not in ("auto", "on", "off"):
        raise ValueError(f"launch argument sound must be auto, on or off, got {sound!r}")
    if sound != "auto" or audio_source == "mic":
        overrides["audio_player"] = {"play": sound == "on"}
    return [
        Node(package="vasa_nodes", executable=name, name=name, namespace=namespace, output="screen",
             parameters=[config, overrides.get(name, {})],
             ros_arguments=["--log-level", LaunchConfiguration("log_level").perform(context)],
             # A crashed node is respawned alone; one that cannot start stops the graph, as in vasa-avatar.
             respawn=True, respawn_delay=RESPAWN_DELAY_S, respawn_max_retries=RESPAWN_MAX_RETRIES,
             on_exit=_stop_on_startup_error(name))
        for name in names
    ]


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory("vasa_nodes"), "config", "avatar.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("portrait", description="portrait image to animate (JPEG, PNG, …); required"),
        DeclareLaunchArgument("audio_source", default_value="topic",
                              description="'topic' (AudioChunk on vasa/audio_in), 'mic', or an audio file to play"),
        DeclareLaunchArgument("config", default_value=default_config,
                              description="parameters YAML keyed by node name"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the nodes and their topics (empty: /vasa/...)"),
        DeclareLaunchArgument("size", default_value="512", description="output image size, pixels (64..2048)"),
        DeclareLaunchArgument("sound", default_value="auto",
                              description="play the speech on the sound device: auto (on, but off with "
                                          "audio_source mic), on or off; vasa/audio_out is published either way"),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level of all nodes"),
        DeclareLaunchArgument("foxglove", default_value="",
                              description="port of a Foxglove WebSocket live view (foxglove_bridge); empty: none"),
        OpaqueFunction(function=_nodes),
    ])
