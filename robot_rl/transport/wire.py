"""Message framing for the actor/learner transport: a JSON header plus raw array bytes, never pickle.

A `Message` travels either as ZeroMQ multipart frames (`encode`/`decode`: frame 0 is the JSON header,
then one frame per array, sent and received zero-copy) or as ONE frame (`encode_single`/
`decode_single`), which the weights channel needs because ZMQ_CONFLATE drops multipart messages.
Everything a peer sends is validated before any array is built, so a corrupt or hostile message is a
`ProtocolError` naming what is wrong, never a crash deep inside numpy or a huge allocation.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_ARRAYS = 256
KINDS = frozenset({"hello", "welcome", "transitions", "ack", "heartbeat", "weights", "stats", "bye", "error"})
# Little-endian on the wire; bool and the 1-byte types have no byte order.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32",
                 "float16", "float32", "float64")
}
ALIGN = 64  # array offsets inside a single-frame message, so np.frombuffer views are aligned
_LEN = struct.Struct("<I")  # single frame: u32 header length, header, then padded array bytes

Frame = bytes | bytearray | memoryview | np.ndarray


class ProtocolError(ValueError):
    """A message that does not follow the wire format (or one that cannot be put on the wire)."""


@dataclass
class Message:
    """One transport message. `header` holds JSON-able values only; bulk data goes in `arrays`.

    Arrays decoded from the wire are views over the received buffer (no copy): copy them if they
    must outlive a later message or be resized."""

    kind: str
    header: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):  # np.float32(1.5) etc. are common in stats
        return value.item()
    raise TypeError(type(value).__name__)


def wire_array(name: object, value: object) -> np.ndarray:
    """The array as it goes on the wire: whitelisted dtype, little-endian, C-contiguous (copied only
    when it is not already)."""
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"array name {name!r} must be a non-empty string")
    arr = np.asarray(value)
    wire = DTYPES.get(arr.dtype.name)
    if wire is None:
        raise ProtocolError(f"array {name!r} has dtype {arr.dtype}, which the wire does not carry: "
                            f"convert it to one of {sorted(DTYPES)} (e.g. .astype(np.float32))")
    if arr.dtype != wire:
        arr = arr.astype(wire)  # big-endian input: swap once here
    # Not np.ascontiguousarray: it would turn a 0-d array into shape (1,).
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _header_bytes(msg: Message, arrays: dict[str, np.ndarray]) -> bytes:
    if not isinstance(msg.kind, str) or msg.kind not in KINDS:
        raise ProtocolError(f"message kind {msg.kind!r} is unknown: use one of {sorted(KINDS)}")
    if not isinstance(msg.header, dict):
        raise ProtocolError(f"message header must be a dict, not {type(msg.header).__name__}")
    if len(arrays) > MAX_ARRAYS:
        raise ProtocolError(f"message has {len(arrays)} arrays; at most {MAX_ARRAYS} are allowed")
    doc = {"v": PROTOCOL_VERSION, "kind": msg.kind, "header": msg.header,
           "arrays": [[name, a.dtype.name, list(a.shape)] for name, a in arrays.items()]}
    try:
        text = json.dumps(doc, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as e:
        for key, value in msg.header.items():
            try:
                json.dumps(value, default=_json_default)
            except (TypeError, ValueError):
                raise ProtocolError(f"header field {key!r} ({type(value).__name__}) is not JSON-able: "
                                    "put arrays in Message.arrays and keep the header to numbers, "
                                    "strings, bools, lists and dicts") from None
        raise ProtocolError(f"header is not JSON-able: {e}") from None
    data = text.encode()
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header is {len(data)} bytes, over MAX_HEADER_BYTES={MAX_HEADER_BYTES}: "
                            "move bulk data from the header into arrays")
    return data


def encode(msg: Message) -> list[Frame]:
    """Multipart frames for `socket.send_multipart(frames, copy=False)`: the JSON header, then each
    array's own buffer (no copy unless it had to be made contiguous or little-endian). The arrays
    must not be modified until ZeroMQ has sent them."""
    arrays = {name: wire_array(name, value) for name, value in msg.arrays.items()}
    total = sum(a.nbytes for a in arrays.values())
    if total > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message arrays total {total} bytes, over MAX_MESSAGE_BYTES="
                            f"{MAX_MESSAGE_BYTES}: send smaller batches")
    frames: list[Frame] = [_header_bytes(msg, arrays)]
    # A flat uint8 view: any contiguous shape (0-d and zero-size included) exports as a plain buffer.
    frames.extend(a.reshape(-1).view(np.uint8) for a in arrays.values())
    return frames


def _parse_header(raw: memoryview) -> tuple[str, dict, list[tuple[str, np.dtype, tuple[int, ...]]]]:
    """Validate a JSON header; return (kind, header, [(name, dtype, shape)])."""
    if raw.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header is {raw.nbytes} bytes, over MAX_HEADER_BYTES={MAX_HEADER_BYTES}")
    try:
        doc = json.loads(bytes(raw))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"header is not valid JSON ({e}): the peer is not speaking this protocol")
    if not isinstance(doc, dict):
        raise ProtocolError(f"header must be a JSON object, got {type(doc).__name__}")
    version = doc.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r} is not supported (this side speaks "
                            f"{PROTOCOL_VERSION}): run the same robot_rl version on actor and learner")
    kind, header, specs = doc.get("kind"), doc.get("header"), doc.get("arrays")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ProtocolError(f"message kind {kind!r} is unknown (known: {sorted(KINDS)})")
    if not isinstance(header, dict):
        raise ProtocolError(f"'header' must be a JSON object, got {type(header).__name__}")
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError(f"'arrays' must be a list of at most {MAX_ARRAYS} [name, dtype, shape]")
    out: list[tuple[str, np.dtype, tuple[int, ...]]] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and spec[0]):
            raise ProtocolError(f"array spec #{i} must be [name, dtype, shape], got {spec!r}")
        name, dtype_name, shape = spec
        if name in names:
            raise ProtocolError(f"array {name!r} appears twice in the header")
        names.add(name)
        dtype = DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None:
            raise ProtocolError(f"array {name!r} has dtype {dtype_name!r}, which is not allowed "
                                f"(allowed: {sorted(DTYPES)})")
        if not (isinstance(shape, list) and len(shape) <= 32
                and all(type(d) is int and 0 <= d <= MAX_MESSAGE_BYTES for d in shape)):
            raise ProtocolError(f"array {name!r} has shape {shape!r}: need a list of at most 32 "
                                "non-negative ints")
        out.append((name, dtype, tuple(shape)))
    return kind, header, out


def _nbytes(name: str, dtype: np.dtype, shape: tuple[int, ...], max_bytes: int) -> int:
    n = math.prod(shape) * dtype.itemsize
    if n > max_bytes:
        raise ProtocolError(f"array {name!r} of shape {shape} {dtype.name} is {n} bytes, over the "
                            f"message limit of {max_bytes}")
    return n


def decode(frames: Sequence[object], max_message_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Rebuild a Message from multipart frames (bytes, or zmq.Frame from `recv_multipart(copy=False)`,
    in which case the arrays are views over the received buffers)."""
    if not frames:
        raise ProtocolError("empty message: expected a header frame")
    views = [memoryview(f).cast("B") for f in frames]  # type: ignore[arg-type]
    kind, header, specs = _parse_header(views[0])
    if len(views) != 1 + len(specs):
        raise ProtocolError(f"{kind!r} message has {len(views)} frames but its header announces "
                            f"{len(specs)} arrays (+1 header frame)")
    total = sum(v.nbytes for v in views)
    if total > max_message_bytes:
        raise ProtocolError(f"{kind!r} message is {total} bytes, over the limit of {max_message_bytes}")
    arrays: dict[str, np.ndarray] = {}
    for (name, dtype, shape), view in zip(specs, views[1:]):
        expected = _nbytes(name, dtype, shape, max_message_bytes)
        if view.nbytes != expected:
            raise ProtocolError(f"array {name!r} should be {expected} bytes (shape {shape}, "
                                f"{dtype.name}) but its frame has {view.nbytes}: truncated or corrupt")
        arrays[name] = np.frombuffer(view, dtype=dtype).reshape(shape)
    return Message(kind, header, arrays)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def encode_single(msg: Message) -> bytearray:
    """One frame: u32 little-endian header length, the JSON header, then each array's bytes at the
    next multiple of ALIGN bytes. Costs one copy of the arrays (the price of a single frame)."""
    arrays = {name: wire_array(name, value) for name, value in msg.arrays.items()}
    head = _header_bytes(msg, arrays)
    offset = _LEN.size + len(head)
    offsets = []
    for a in arrays.values():
        offset = _align(offset)
        offsets.append(offset)
        offset += a.nbytes
    if offset > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message is {offset} bytes, over MAX_MESSAGE_BYTES={MAX_MESSAGE_BYTES}")
    out = bytearray(offset)  # zero-filled, so padding is deterministic
    _LEN.pack_into(out, 0, len(head))
    out[_LEN.size:_LEN.size + len(head)] = head
    buf = np.frombuffer(out, dtype=np.uint8)
    for start, a in zip(offsets, arrays.values()):
        buf[start:start + a.nbytes] = a.reshape(-1).view(np.uint8)
    return out


def decode_single(data: object, max_message_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Inverse of `encode_single`; arrays are views into `data` (zero-copy)."""
    view = memoryview(data).cast("B")  # type: ignore[arg-type]
    if view.nbytes > max_message_bytes:
        raise ProtocolError(f"message is {view.nbytes} bytes, over the limit of {max_message_bytes}")
    if view.nbytes < _LEN.size:
        raise ProtocolError(f"single-frame message is {view.nbytes} bytes: too short for its length field")
    (head_len,) = _LEN.unpack_from(view, 0)
    if _LEN.size + head_len > view.nbytes:
        raise ProtocolError(f"single-frame header claims {head_len} bytes but only "
                            f"{view.nbytes - _LEN.size} follow: truncated")
    kind, header, specs = _parse_header(view[_LEN.size:_LEN.size + head_len])
    offset = _LEN.size + head_len
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape in specs:
        offset = _align(offset)
        n = _nbytes(name, dtype, shape, max_message_bytes)
        if offset + n > view.nbytes:
            raise ProtocolError(f"array {name!r} (shape {shape}, {dtype.name}) runs past the end of "
                                f"the {view.nbytes}-byte frame: truncated")
        arrays[name] = np.frombuffer(view, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)
        offset += n
    if offset != view.nbytes:
        raise ProtocolError(f"{kind!r} message has {view.nbytes - offset} unexpected trailing bytes")
    return Message(kind, header, arrays)
