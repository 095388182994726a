"""robot_rl: learners, data, distribution, ROS 2 nodes and the `robot-rl` CLI."""
