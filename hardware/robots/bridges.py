"""The bridge kinds a robot profile can name (`bridge: franky`), and `robot-rl bridge`'s entry point.
A new kind of driver is a `RobotBridge` subclass in its own module plus one line in BRIDGES; each
module is imported only when its kind runs (franky's needs the `franka` extra)."""

from __future__ import annotations

import importlib

from hardware.robots.profile import RobotProfile

BRIDGES = {
    "franka": "hardware.robots.bridge:FrankaBridge",  # a franka_ros2 equilibrium-pose impedance controller
    "franky": "hardware.robots.franky_bridge:FrankyBridge",  # libfranka through franky, in this process
    "ur": "hardware.robots.ur_bridge:URBridge",  # Universal Robots' ROS 2 driver + MoveIt Servo
}


def bridge_class(kind: str):
    """The RobotBridge subclass for a profile's `bridge` kind."""
    if kind not in BRIDGES:
        raise ValueError(f"bridge {kind!r}: `robot-rl bridge` runs {', '.join(sorted(BRIDGES))} "
                         "(a 'sim' profile runs `robot-rl sim-robot`)")
    module, _, name = BRIDGES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def _hold_where_it_is(node) -> None:
    if node.measured is not None and node.filter.started:  # the last word to the controller: hold where the arm is
        node.command_controller(*node.measured, True, node.ros_time())


def main(profile: RobotProfile, *, domain_id: int | None = None, argv: list[str] | None = None) -> None:
    from hardware.ros.runtime import run_node

    try:
        cls = bridge_class(profile.bridge)
    except ValueError as err:
        raise ValueError(f"robot profile {profile.name!r}: {err}") from None
    run_node(lambda context: cls(profile, context=context), argv=argv, domain_id=domain_id,
             before_destroy=_hold_where_it_is)
