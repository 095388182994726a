"""Control laws, action conversion and the safety filter shared by simulators and real robots.

Pure numpy: nothing here imports MuJoCo, ROS 2 or any other part of robot_rl.
"""

from controllers.actions import ActionSpec, EndEffectorCommand, action_to_command
from controllers.impedance import (
    ArmState,
    CartesianImpedanceLaw,
    ImpedanceGains,
    Linearization,
)
from controllers.safety import SafetyFilter, SafetyLimits, SafetyStatus

__all__ = [
    "ActionSpec",
    "ArmState",
    "CartesianImpedanceLaw",
    "EndEffectorCommand",
    "ImpedanceGains",
    "Linearization",
    "SafetyFilter",
    "SafetyLimits",
    "SafetyStatus",
    "action_to_command",
]
