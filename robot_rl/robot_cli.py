"""`robot-rl` commands that run next to a robot: the simulated robot node, real arms' bridges, the
gripper adapter, cameras, teleop recording and the teleop node, profiles, and `up` (launch files)."""

from __future__ import annotations

import argparse


def _cmd_sim_robot(args: argparse.Namespace) -> int:
    from robot_rl.ros.sim_robot_node import main as run_node

    given = {"task": args.task, "cameras": args.cameras, "image_size": args.image_size,
             "control_hz": args.control_hz, "real_time_factor": args.real_time_factor,
             "lockstep": args.lockstep or None, "seed": args.seed, "reward": args.reward,
             "command_timeout_s": args.command_timeout_s, "standin": args.standin}
    run_node(["robot-rl", *args.ros_args], namespace=args.namespace, domain_id=args.domain_id,
             parameters={k: v for k, v in given.items() if v is not None})
    return 0


def _cmd_bridge(args: argparse.Namespace) -> int:
    from hardware.robots import load_profile
    from hardware.robots.bridges import main as run_bridge

    run_bridge(load_profile(args.profile), domain_id=args.domain_id, argv=["robot-rl", *args.ros_args])
    return 0


def _cmd_camera(args: argparse.Namespace) -> int:
    from hardware.cameras import CameraConfig
    from hardware.cameras.ros_node import main as run_camera
    from hardware.robots import load_profile

    namespace = args.namespace
    if args.profile is not None:
        profile = load_profile(args.profile)
        by_name = {c.name: c for c in profile.cameras}
        if args.camera not in by_name:
            raise ValueError(f"robot profile {profile.name!r} has cameras {sorted(by_name)}, not {args.camera!r}")
        config = by_name[args.camera]
        namespace = namespace or profile.namespace
    else:
        config = CameraConfig(name=args.camera, source=args.source, device=args.device, width=args.width,
                              height=args.height, fps=args.fps, crop=args.crop, resize=args.resize)
    run_camera(config, namespace=namespace or "robot", domain_id=args.domain_id, argv=["robot-rl", *args.ros_args])
    return 0


def _cmd_gripper(args: argparse.Namespace) -> int:
    from hardware.robots import load_profile
    from hardware.robots.gripper_action import main as run_gripper

    run_gripper(load_profile(args.profile), domain_id=args.domain_id, argv=["robot-rl", *args.ros_args])
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from hardware.robots.profile import PROFILES_DIR, load_profile

    for path in sorted(PROFILES_DIR.glob("*.yaml")):
        profile = load_profile(path)
        low, high = profile.safety.workspace_low, profile.safety.workspace_high
        print(f"{profile.name}: bridge={profile.bridge} namespace=/{profile.namespace} {profile.control_hz} Hz, "
              f"cameras {[c.name for c in profile.cameras]}, workspace {list(low)}..{list(high)} m, "
              f"max speed {profile.safety.max_linear_speed} m/s  ({path})")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from robot_rl.launcher import find_launch_file, parse, run

    overrides = {}
    for item in args.arguments:
        if ":=" not in item:
            raise ValueError(f"launch argument {item!r} must look like name:=value")
        name, value = item.split(":=", 1)
        overrides[name] = value
    composition = parse(find_launch_file(args.launch_file), overrides)
    if args.print:
        for executable in composition.executables:
            print(f"{executable.name}: {' '.join(executable.argv)}")
        return 0
    return run(composition)


def _cmd_teleop(args: argparse.Namespace) -> int:
    from robot_rl.ros.teleop_session import main as run

    return run(args.profile, args.device, args.episodes_dir, args.episodes, args.obs_mode, args.image_size,
               args.domain_id, args.action_history)


def _cmd_teleop_node(args: argparse.Namespace) -> int:
    from controllers.actions import ActionSpec
    from hardware.teleop import TeleopConfig, make_device
    from hardware.teleop.ros import run_teleop_node

    spec = ActionSpec(rotation=args.rotation, gripper=not args.no_gripper)
    device = make_device(args.device, TeleopConfig.for_action_spec(spec))
    run_teleop_node(device, namespace=args.namespace, rate_hz=args.rate_hz, domain_id=args.domain_id)
    return 0


def add_robot_parsers(sub) -> None:
    sim_robot = sub.add_parser(
        "sim-robot", help="run a simulated task as a ROS 2 robot (the topics a real arm's stack speaks)",
        description="A MuJoCo task behind ROS 2: joint states, end-effector pose/twist/wrench, cameras "
                    "(raw + JPEG, camera info), object state, reward and success out; target pose or twist, "
                    "gripper and e-stop in; reset and clear_estop services. Commands pass the robot-side "
                    "guard, safety filter and watchdog, as on hardware. Needs the `ros` extra. Options not "
                    "given keep the node's parameter defaults; --ros-args ... passes ROS arguments through.",
        epilog="examples:\n  robot-rl sim-robot --lockstep                     # for `robot-rl train --set robot.enabled=true`\n"
               "  robot-rl sim-robot --cameras front --real-time-factor 1\n"
               "  robot-rl sim-robot --ros-args -p control_hz:=20.0\n"
               "  robot-rl sim-robot --standin pick_cube --lockstep   # a 'real' robot for sim-to-real",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_robot.add_argument("--task", help="task id (default PickCube-v0; see `robot-rl tasks`)")
    sim_robot.add_argument("--namespace", default="robot", help="ROS 2 namespace of the robot's topics (default robot)")
    sim_robot.add_argument("--lockstep", action="store_true",
                           help="advance one control period per command (training as fast as the learner goes) "
                                "instead of on a real-time clock")
    sim_robot.add_argument("--cameras", nargs="*", metavar="NAME", help="cameras to publish (default front wrist; "
                           "none: give the flag alone)")
    sim_robot.add_argument("--image-size", type=int, help="rendered image side in pixels (default 128)")
    sim_robot.add_argument("--control-hz", type=float, help="control periods per simulated second (default 10)")
    sim_robot.add_argument("--real-time-factor", type=float, help="simulated seconds per wall second (default 1)")
    sim_robot.add_argument("--seed", type=int, help="seed of the scene sequence (default 0)")
    sim_robot.add_argument("--reward", choices=("sparse", "dense"), help="reward published (default sparse)")
    sim_robot.add_argument("--command-timeout-s", type=float, help="watchdog timeout (default 0.5)")
    sim_robot.add_argument("--standin", metavar="NAME_OR_YAML",
                           help="be a stand-in for a real robot: a fixed shift of dynamics, visuals, latency and "
                                "noise the learner is never told (sim/standins: pick_cube, peg_insertion)")
    sim_robot.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    sim_robot.set_defaults(func=_cmd_sim_robot, ros_args=[])

    for name, func, help_, description, example in (
        ("bridge", _cmd_bridge, "run a real arm's bridge (franky, franka, ur) from a robot profile",
         "The robot side of a real arm: maps our topics onto the robot (franky: libfranka directly; franka / ur: "
         "the controller's topics named in the profile), with the command guard, safety filter, watchdog, e-stop, "
         "wrench limit and the robot's own safety state in between; `reset` moves the arm home, `recover` resumes "
         "after the robot stopped itself (operator only). Needs the `ros` extra, and the `franka` extra or the "
         "arm's own ROS 2 driver. Stamps use the node's ROS clock (--ros-args -p use_sim_time:=true for "
         "simulated time).",
         "robot-rl bridge franka_fr3_franky\n  robot-rl bridge my_cell.yaml --ros-args --log-level debug"),
        ("gripper", _cmd_gripper, "run a gripper adapter: our opening topic -> a control_msgs GripperCommand action",
         "For a gripper behind a GripperCommand action (franka_gripper's gripper_action, a Robotiq on "
         "ros2_control's GripperActionController): sends the bridge's opening as goals and publishes the measured "
         "width. Configured by the profile's gripper_action block. The action type is built by "
         "scripts/build_ros_interfaces.sh (setup.sh does it with the `ros` extra).",
         "robot-rl gripper franka_fr3"),
    ):
        node = sub.add_parser(name, help=help_, description=description, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        node.add_argument("profile", help="profile name (`robot-rl profiles`) or YAML path")
        node.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
        node.set_defaults(func=func, ros_args=[])

    camera = sub.add_parser(
        "camera", help="publish a camera as ROS 2 images (raw, JPEG, camera info) after crop and resize",
        description="Publish one camera on a robot's namespace (cameras/<name>/image_raw ...). Take its "
                    "settings from a robot profile (--profile P --camera NAME) or from the options.")
    camera.add_argument("--profile", help="robot profile holding this camera's settings")
    camera.add_argument("--camera", default="front", help="camera name (default front)")
    camera.add_argument("--namespace", help="ROS 2 namespace (default: the profile's, else robot)")
    camera.add_argument("--source", choices=("opencv", "realsense", "pattern"), default="opencv")
    camera.add_argument("--device", default="0", help="OpenCV index/path/URL or RealSense serial (default 0)")
    camera.add_argument("--width", type=int, default=640)
    camera.add_argument("--height", type=int, default=480)
    camera.add_argument("--fps", type=float, default=30.0)
    camera.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"))
    camera.add_argument("--resize", type=int, nargs=2, metavar=("W", "H"))
    camera.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    camera.set_defaults(func=_cmd_camera, ros_args=[])

    teleop = sub.add_parser(
        "teleop", help="drive a ROS 2 robot with a teleop device and record the episodes (demos)",
        description="No policy: the device drives the robot (sim node or bridge) through the robot env and its "
                    "safety filter; every episode is saved to --episodes-dir. Buttons: success/failure label and "
                    "end the episode, reset ends it, pause holds the robot.")
    teleop.add_argument("--profile", default="sim_panda", help="robot profile (default sim_panda)")
    teleop.add_argument("--device", choices=("spacemouse", "gamepad", "keyboard"), default="keyboard")
    teleop.add_argument("--episodes-dir", required=True, metavar="DIR")
    teleop.add_argument("--episodes", type=int, help="stop after this many (default: until Ctrl-C)")
    teleop.add_argument("--obs-mode", choices=("state", "pixels"), default="pixels")
    teleop.add_argument("--image-size", type=int, default=128)
    teleop.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    teleop.add_argument("--action-history", type=int, default=0, metavar="N",
                        help="observe the last N commands sent, as a run with `action_history: N` does (default 0)")
    teleop.set_defaults(func=_cmd_teleop)

    teleop_node = sub.add_parser(
        "teleop-node", help="publish a teleop device on ROS 2 (for `robot-rl actor --teleop ros` elsewhere)",
        description="Publish a device's normalised action, whether the human is driving, and operator events "
                    "(teleop/action, teleop/active, teleop/event) on a robot's namespace.")
    teleop_node.add_argument("--device", choices=("spacemouse", "gamepad", "keyboard"), default="spacemouse")
    teleop_node.add_argument("--namespace", default="robot")
    teleop_node.add_argument("--rate-hz", type=float, default=50.0)
    teleop_node.add_argument("--rotation", action="store_true", help="include rotation axes in the action")
    teleop_node.add_argument("--no-gripper", action="store_true", help="no gripper entry in the action")
    teleop_node.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID, else 0)")
    teleop_node.set_defaults(func=_cmd_teleop_node)

    profiles = sub.add_parser("profiles", help="list the shipped robot profiles")
    profiles.set_defaults(func=_cmd_profiles)

    up = sub.add_parser(
        "up", help="run a launch file's processes (sim training, real robot, teleop) without `ros2 launch`",
        description="Start every process of a ROS 2 XML launch file from launch/ (or a path), with name:=value "
                    "arguments, and stop them together. The same files run with `ros2 launch` where ROS 2 is "
                    "installed.",
        epilog="examples:\n  robot-rl up sim_train\n  robot-rl up sim_train task:=PegInsertion-v0 steps:=20000\n"
               "  robot-rl up real_train profile:=franka_fr3 --print",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("launch_file", help="a name in launch/ (sim_train, sim_actors, real_train, teleop) or a path")
    up.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    up.add_argument("--print", action="store_true", help="print the commands instead of running them")
    up.set_defaults(func=_cmd_up)
