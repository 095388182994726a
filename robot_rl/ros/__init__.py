"""ROS 2 nodes and the ROS 2 gym env. Needs the `ros` extra (rclpy); see docs/ros2.md."""
