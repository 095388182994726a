"""Actor <-> learner transport over ZeroMQ: framing (wire), CurveZMQ (security), spool, channels."""

from robot_rl.transport.actor_endpoint import ActorEndpoint
from robot_rl.transport.channels import (
    ActorStatus,
    LearnerEndpoint,
    RefusedError,
    TransportError,
)
from robot_rl.transport.security import SecurityError, generate_all, generate_keypair, require_security
from robot_rl.transport.spool import SpoolError
from robot_rl.transport.wire import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    decode,
    decode_single,
    encode,
    encode_single,
)

__all__ = [
    "MAX_MESSAGE_BYTES", "PROTOCOL_VERSION", "ActorEndpoint", "ActorStatus", "LearnerEndpoint", "Message",
    "ProtocolError", "RefusedError", "SecurityError", "SpoolError", "TransportError", "decode",
    "decode_single", "encode", "encode_single", "generate_all", "generate_keypair", "require_security",
]
