"""Topic and service names, relative to a robot's namespace (e.g. `/robot`): the one place they are
defined. A sim node, a real-robot bridge and the gym env all use these.

Published by the robot side                      type
  joint_states                                   sensor_msgs/JointState (arm joints)
  ee_pose                                        geometry_msgs/PoseStamped (base frame)
  ee_twist                                       geometry_msgs/TwistStamped (base frame)
  ee_wrench                                      geometry_msgs/WrenchStamped (external, at the EE)
  gripper_width                                  std_msgs/Float64 (m)
  cameras/<name>/image_raw                       sensor_msgs/Image (rgb8)
  cameras/<name>/image_raw/compressed            sensor_msgs/CompressedImage (jpeg)
  cameras/<name>/camera_info                     sensor_msgs/CameraInfo
  object_state                                   std_msgs/Float32MultiArray (sim, or an object tracker)
  reward, success                                std_msgs/Float32, std_msgs/Bool (sim, or a reward node)
  status                                         std_msgs/String (JSON: watchdog, e-stop, faults, rejections)
Subscribed by the robot side
  target_pose                                    geometry_msgs/PoseStamped: absolute EE target
  target_twist                                   geometry_msgs/TwistStamped: EE velocity (held until stale)
  gripper_command                                std_msgs/Float64: opening 0 (closed) .. 1 (open)
  estop                                          std_msgs/Bool: True latches the e-stop
  deadman                                        std_msgs/Bool: the hold-to-run button is held (a
                                                 profile with deadman_timeout_s moves only while it is)
Services of the robot side (std_srvs/Trigger)
  reset                                          start an episode (sim: new scene; real: go home)
  clear_estop                                    release a latched operator e-stop
  recover                                        the operator confirms recovery from the robot's own
                                                 safety stop (reflex, user stop, protective stop)
Human in the loop (teleop node)
  teleop/action                                  std_msgs/Float32MultiArray: the human's normalised action
  teleop/active                                  std_msgs/Bool: the human is driving
  teleop/event                                   std_msgs/String: takeover|success|failure|reset|pause
"""

JOINT_STATES = "joint_states"
EE_POSE = "ee_pose"
EE_TWIST = "ee_twist"
EE_WRENCH = "ee_wrench"
GRIPPER_WIDTH = "gripper_width"
OBJECT_STATE = "object_state"
REWARD = "reward"
SUCCESS = "success"
STATUS = "status"

TARGET_POSE = "target_pose"
TARGET_TWIST = "target_twist"
GRIPPER_COMMAND = "gripper_command"
ESTOP = "estop"
DEADMAN = "deadman"

RESET = "reset"
CLEAR_ESTOP = "clear_estop"
RECOVER = "recover"

TELEOP_ACTION = "teleop/action"
TELEOP_ACTIVE = "teleop/active"
TELEOP_EVENT = "teleop/event"


def camera_image(camera: str) -> str:
    return f"cameras/{camera}/image_raw"


def camera_compressed(camera: str) -> str:
    return f"cameras/{camera}/image_raw/compressed"


def camera_info(camera: str) -> str:
    return f"cameras/{camera}/camera_info"


def join(namespace: str, name: str) -> str:
    """`/robot` + `ee_pose` -> `/robot/ee_pose`; an empty namespace leaves the name relative."""
    namespace = namespace.strip("/")
    return f"/{namespace}/{name}" if namespace else name
