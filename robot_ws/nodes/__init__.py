"""The ROS 2 nodes of tether's graph; `tether.robot_ws.graph` composes them."""
