"""ROS-free cores of vasa_nodes. Nothing here imports rclpy; the nodes and the CLI share them."""
