"""ROS 2 nodes, hardware drivers and the graph runner (the only place that imports rclpy)."""
