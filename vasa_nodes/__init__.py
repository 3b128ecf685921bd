"""vasa_nodes: one portrait + speech audio -> a talking face, as ROS 2 nodes and an offline command.

Layout:
  core/   ROS-free algorithms (audio, features, motion, portrait, renderer, video, pipeline)
  nodes/  thin rclpy adapters, one per executable
  cli/    the offline `vasa-generate` and the graph starter `vasa-avatar`
  msg/    generated ROS 2 message types (built by CMake/rosidl, not in the source tree)
"""

__version__ = "0.1.0"
