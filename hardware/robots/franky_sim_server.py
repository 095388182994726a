"""franky-sim as a stand-alone Franka to rehearse on: a MuJoCo FR3 serving libfranka's network protocol on
loopback, so the franky bridge (and everything above it) runs exactly as against a real arm.

    python -m hardware.robots.franky_sim_server            # prints "READY <hostname>", runs until SIGTERM
    kill -USR1 <pid>                                         # the arm stops itself with a Cartesian reflex

franky-sim simulates no reflexes of its own; SIGUSR1 makes its server behave as libfranka's does after
one (the motion is aborted with "reflex", the robot mode reads Reflex with the error flags set, and the
robot's automatic error recovery clears it), so the bridge's fault handling and the operator's
recovery can be rehearsed without hardware.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

CARTESIAN_REFLEX = 7  # index of cartesian_reflex in libfranka's 41 error flags


def _install_reflex_support():
    """Teach franky-sim's robot server the robot state and recovery of a reflex (it has none)."""
    from franky_sim.franka_robot_protocol import AutomaticErrorRecoveryCommand, AutomaticErrorRecoveryStatus
    from franky_sim.franka_robot_protocol import RobotMode as SimRobotMode
    from franky_sim.franka_robot_server import FrankaRobotServer

    plain_state = FrankaRobotServer.robot_state.fget

    def state(server):
        st = plain_state(server)
        fault = getattr(server, "_injected_fault", None)
        if not fault:
            return st
        flags = tuple(i in fault for i in range(41))
        return st.replace(robot_mode=SimRobotMode.kReflex, errors=flags, reflex_reason=flags)

    def recover(command, server):
        server._injected_fault = None
        command.reply(AutomaticErrorRecoveryStatus.kSuccess)

    FrankaRobotServer.robot_state = property(state)
    AutomaticErrorRecoveryCommand.handle = recover


def inject_reflex(sim, robot_server, errors=(CARTESIAN_REFLEX,)) -> threading.Event:
    """At the next physics step (in the sim thread): abort the running motion with a reflex and hold."""
    from franky_sim.franka_robot_protocol import MoveStatus, RobotCommand
    from franky_sim.franka_server import BaseCommand

    done = threading.Event()

    def step(_sim):
        if done.is_set():
            return
        motion = robot_server.current_motion_id
        robot_server._injected_fault = set(errors)
        robot_server.stop_motion(send_preemption_signal=False)
        if motion:
            BaseCommand.send_response(robot_server._tcp_socket, RobotCommand.kMove, motion, MoveStatus.kReflexAborted)
            robot_server.reset_current_motion_id()
        done.set()

    sim.register_pre_step_callback(step)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (about)")
    args = parser.parse_args(argv)
    from franky_sim import SimulationServer
    from franky_sim.mujoco_simulator import MujocoSimulator

    _install_reflex_support()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with MujocoSimulator(enable_visualization=False) as sim:
        robot = sim.add_robot()
        with SimulationServer(sim) as server:
            # franky-sim sleeps out each 1 ms step; its sleeps overshoot by ~10 %, so aim 10 % faster.
            server.run_async(0.9 / args.speed)
            signal.signal(signal.SIGUSR1, lambda *_: inject_reflex(sim, server.robot_servers[0]))
            print(f"READY {robot.hostname}", flush=True)
            parent = os.getppid()
            while not stop.wait(0.2):
                if os.getppid() != parent:  # whoever started us is gone: do not run on as an orphan
                    break
    sys.exit(0)


if __name__ == "__main__":
    main()
