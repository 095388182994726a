"""The actor <-> learner channels: data/control (DEALER -> ROUTER) and weights (PUB -> SUB).

Exactly-once delivery of transition batches, across learner and actor restarts:

* The actor numbers its batches 1, 2, 3... (`seq`) and spools each one (to disk by default) BEFORE
  sending it; the next seq is persisted too, so a restarted actor continues the numbering.
* The learner accepts only `seq == received + 1` for that actor; anything <= received is a duplicate
  (acked again, never returned); anything beyond is a gap (dropped; the actor re-sends from
  received + 1). Every ack carries `seq` (highest contiguous received) and `committed`.
* `committed` is what the learner has made durable. By default (auto_commit=True) it equals
  `received`; a learner that checkpoints its replay buffer passes auto_commit=False and calls
  `commit(state)` after saving `state = endpoint.state_dict()` with the checkpoint. The actor
  deletes spooled batches only up to `committed`, so a learner crash loses nothing: on restart it
  loads the checkpoint (`load_state_dict`), its welcome tells the actor the committed seq, and the
  actor re-sends everything after it, in order.
* Actor crash: the new process finds the spooled batches, says hello with its resume point, and
  re-sends whatever the learner has not acknowledged; the learner's per-actor state drops the rest.

Nothing blocks forever: sends are non-blocking (un-sendable batches stay in the spool), receives
poll with timeouts, sockets linger at most briefly, and liveness is tracked on both sides.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import zmq

import robot_rl.transport.security as security
from robot_rl.transport.wire import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    decode,
    encode,
    encode_single,
)

log = logging.getLogger(__name__)

RESERVED_HEADER_KEYS = ("seq", "lost")


class TransportError(RuntimeError):
    """A channel cannot be set up or used (address in use, closed endpoint...)."""


class RefusedError(TransportError):
    """The learner refused this actor's hello (config mismatch...): restarting with the same
    settings will not help."""


def _configure(sock: zmq.Socket, max_message_bytes: int) -> None:
    """Options shared by every socket: never linger on close, refuse oversized frames, detect dead
    TCP peers with ZMTP heartbeats, reconnect quickly."""
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)


def _endpoint(sock: zmq.Socket) -> str:
    value = sock.getsockopt(zmq.LAST_ENDPOINT)
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class ActorStatus:
    """What the learner knows about one registered actor."""

    actor_id: str
    last_seen: float  # time.monotonic() of its last message
    registered_at: float
    received_seq: int  # highest contiguous batch seq received
    batches: int = 0  # batches accepted since it registered
    duplicates: int = 0  # batches dropped as already received


class LearnerEndpoint:
    """Learner side: ROUTER for data/control (bind_data), PUB for weights (bind_weights).

    Call `poll()` often (every training step): it answers hellos, acks and heartbeats itself and
    returns what the learner must act on. Endpoints that are not loopback need `keys_dir`.
    Not thread-safe: use an endpoint from one thread."""

    def __init__(self, bind_data: str, bind_weights: str, config_hash: str,
                 keys_dir: str | Path | None = None, *, auto_commit: bool = True,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, rcvhwm: int = 100) -> None:
        keys = security.require_security(bind_data, keys_dir, security.LEARNER)
        keys = security.require_security(bind_weights, keys_dir, security.LEARNER) or keys
        self.config_hash = config_hash
        self.auto_commit = auto_commit
        self.max_message_bytes = max_message_bytes
        self._seqs: dict[str, list[int]] = {}  # actor -> [received, committed]
        self._active: dict[str, ActorStatus] = {}
        self._weights_version = -1
        self._closed = False
        self._ctx = zmq.Context()
        self._auth = None
        self._data: zmq.Socket | None = None
        self._pub: zmq.Socket | None = None
        try:
            if keys is not None:
                self._auth = security.start_authenticator(self._ctx, keys)
            self._data = self._ctx.socket(zmq.ROUTER)
            _configure(self._data, max_message_bytes)
            self._data.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted actor takes its id back
            self._data.setsockopt(zmq.RCVHWM, rcvhwm)
            self._data.setsockopt(zmq.SNDHWM, 1000)
            self._pub = self._ctx.socket(zmq.PUB)
            _configure(self._pub, max_message_bytes)
            # Latest-only at the sender too: a slow subscriber's queue holds just the newest version
            # (a plain HWM would drop the NEWEST messages once full).
            self._pub.setsockopt(zmq.CONFLATE, 1)
            for sock, address, what in ((self._data, bind_data, "data"), (self._pub, bind_weights, "weights")):
                if keys is not None:
                    security.configure_server(sock, keys)
                try:
                    sock.bind(address)
                except zmq.ZMQError as e:
                    raise TransportError(f"cannot bind the {what} channel to {address!r}: {e} (another "
                                         "learner on that port? pick a free one)") from None
        except BaseException:
            self.close()
            raise
        self.data_endpoint = _endpoint(self._data)
        self.weights_endpoint = _endpoint(self._pub)

    # -- data / control ------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_messages: int = 256) -> list[tuple[str, Message]]:
        """Wait up to timeout_ms for actor messages, handle all that arrived (up to max_messages) and
        return the ones for the caller: accepted hellos, new transition batches (each exactly once),
        heartbeats, stats and byes, as (actor_id, message)."""
        sock = self._live(self._data)
        out: list[tuple[str, Message]] = []
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return out
        to_ack: dict[bytes, bool] = {}  # actor identity -> a gap was seen
        for _ in range(max_messages):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._handle(frames, out, to_ack)
        for identity, gap in to_ack.items():
            self._reply(identity, Message("ack", self._ack_header(identity.decode("utf-8", "replace"), gap)))
        return out

    def _handle(self, frames: list[Any], out: list[tuple[str, Message]], to_ack: dict[bytes, bool]) -> None:
        identity = frames[0].bytes
        actor_id = identity.decode("utf-8", "replace")
        try:
            msg = decode(frames[1:], self.max_message_bytes)
        except ProtocolError as e:
            log.warning("bad message from actor %r: %s", actor_id, e)
            self._error(identity, "protocol", str(e))
            return
        if msg.kind == "hello":
            if self._on_hello(identity, actor_id, msg):
                out.append((actor_id, msg))
            return
        status = self._active.get(actor_id)
        if status is None:
            if msg.kind != "bye":  # learner restarted or actor timed out: make it say hello again
                self._error(identity, "not_registered", f"actor {actor_id!r} must send hello first")
            return
        status.last_seen = time.monotonic()
        if msg.kind == "transitions":
            self._on_transitions(identity, status, msg, out, to_ack)
        elif msg.kind == "heartbeat":
            self._reply(identity, Message("heartbeat", self._ack_header(actor_id, False)))
            out.append((actor_id, msg))
        elif msg.kind == "stats":
            out.append((actor_id, msg))
        elif msg.kind == "bye":
            del self._active[actor_id]
            out.append((actor_id, msg))
        else:
            self._error(identity, "protocol", f"actors may not send {msg.kind!r} messages")

    def _on_hello(self, identity: bytes, actor_id: str, msg: Message) -> bool:
        h = msg.header
        if h.get("config_hash") != self.config_hash:
            reason = (f"config_hash mismatch: actor {actor_id!r} runs config {h.get('config_hash')!r} but "
                      f"the learner runs {self.config_hash!r}: start the actor with the learner's config")
            log.warning("refused actor %r: %s", actor_id, reason)
            self._error(identity, "refused", reason, hello_id=h.get("hello_id"))
            return False
        resume = h.get("resume_seq")
        if h.get("actor_id") != actor_id or type(resume) is not int or resume < 1:
            self._error(identity, "refused", f"hello from {actor_id!r} needs actor_id equal to its socket "
                        f"identity and an int resume_seq >= 1, got {h.get('actor_id')!r}, {resume!r}")
            return False
        seqs = self._seqs.get(actor_id)
        if seqs is None:  # first contact: start where the actor's spool starts
            seqs = self._seqs[actor_id] = [resume - 1, resume - 1]
        elif seqs[0] < resume - 1:
            log.warning("actor %r resumes at seq %d but the learner has only seq <= %d: batches %d..%d were "
                        "deleted by the actor after a commit this learner no longer has (restarted from an "
                        "older checkpoint?) and are lost", actor_id, resume, seqs[0], seqs[0] + 1, resume - 1)
            seqs[0] = seqs[1] = resume - 1
        now = time.monotonic()
        self._active[actor_id] = ActorStatus(actor_id, now, now, seqs[0])
        self._reply(identity, Message("welcome", {**self._ack_header(actor_id, False),
                                                  "hello_id": h.get("hello_id"),
                                                  "weights_version": self._weights_version}))
        return True

    def _on_transitions(self, identity: bytes, status: ActorStatus, msg: Message,
                        out: list[tuple[str, Message]], to_ack: dict[bytes, bool]) -> None:
        actor_id = status.actor_id
        seq = msg.header.get("seq")
        if type(seq) is not int or seq < 1:
            self._error(identity, "protocol", f"transitions header 'seq' must be an int >= 1, got {seq!r}")
            return
        seqs = self._seqs[actor_id]
        gap = to_ack.get(identity, False)
        if seq <= seqs[0]:
            status.duplicates += 1
        elif seq == seqs[0] + 1:
            seqs[0] = status.received_seq = seq
            if self.auto_commit:
                seqs[1] = seq
            if msg.header.get("lost"):
                log.error("actor %r reports batch seq %d lost from its spool", actor_id, seq)
            else:
                status.batches += 1
                out.append((actor_id, msg))
        else:
            gap = True
        to_ack[identity] = gap

    def _ack_header(self, actor_id: str, gap: bool) -> dict[str, Any]:
        received, committed = self._seqs[actor_id]
        return {"seq": received, "committed": committed, "gap": gap}

    def _reply(self, identity: bytes, msg: Message) -> None:
        try:  # ROUTER drops messages to gone or slow peers instead of blocking
            self._live(self._data).send_multipart([identity, *encode(msg)], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass

    def _error(self, identity: bytes, code: str, reason: str, **extra: Any) -> None:
        self._reply(identity, Message("error", {"code": code, "reason": reason, **extra}))

    def actors(self) -> dict[str, ActorStatus]:
        """Registered actors (said hello, no bye since), as copies."""
        return {a: replace(s) for a, s in self._active.items()}

    def silent_actors(self, timeout_s: float) -> list[str]:
        """Registered actors not heard from in timeout_s seconds (actors heartbeat every ~1 s)."""
        now = time.monotonic()
        return [a for a, s in self._active.items() if now - s.last_seen > timeout_s]

    def forget(self, actor_id: str) -> None:
        """Unregister an actor (e.g. a silent one); it must say hello again. Its seq state is kept."""
        self._active.pop(actor_id, None)

    # -- checkpointing ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Per-actor highest received seq: save it in the same checkpoint as the replay buffer."""
        return {"protocol": PROTOCOL_VERSION,
                "actors": {a: {"received_seq": s[0]} for a, s in self._seqs.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint: everything in it counts as received and committed."""
        actors = state.get("actors") if isinstance(state, dict) else None
        if not isinstance(actors, dict):
            raise TypeError("transport state must be {'actors': {actor_id: {'received_seq': int}}}, as "
                             "LearnerEndpoint.state_dict() returns")
        for actor_id, entry in actors.items():
            seq = entry.get("received_seq") if isinstance(entry, dict) else None
            if type(seq) is not int or seq < 0:
                raise ValueError(f"transport state for actor {actor_id!r}: 'received_seq' must be an "
                                 f"int >= 0, got {seq!r}")
            self._seqs[actor_id] = [seq, seq]
            if actor_id in self._active:
                self._active[actor_id].received_seq = seq

    def commit(self, state: dict[str, Any] | None = None) -> None:
        """Tell actors they may delete batches up to what `state` (a saved `state_dict()`; default:
        everything received) holds. Only needed with auto_commit=False; call it after the checkpoint
        holding that state is safely on disk."""
        actors = state["actors"] if state is not None else {a: {"received_seq": s[0]} for a, s in self._seqs.items()}
        for actor_id, entry in actors.items():
            seqs = self._seqs.get(actor_id)
            if seqs is not None:
                seqs[1] = max(seqs[1], min(seqs[0], int(entry["received_seq"])))

    # -- weights ---------------------------------------------------------------------------------

    def publish_weights(self, version: int, arrays: dict[str, np.ndarray], done: bool = False) -> None:
        """Broadcast a parameter set as one frame; subscribers keep only the newest they got.
        `done`: the run is over (actors stop)."""
        if type(version) is not int:
            raise TypeError(f"weights version must be an int, got {type(version).__name__}")
        msg = Message("weights", {"version": version, "config_hash": self.config_hash,
                                  "published_unix_s": time.time(), "done": bool(done)}, arrays)
        self._live(self._pub).send(encode_single(msg), zmq.NOBLOCK, copy=False)
        self._weights_version = version

    # -- lifetime --------------------------------------------------------------------------------

    def _live(self, sock: zmq.Socket | None) -> zmq.Socket:
        if self._closed or sock is None:
            raise TransportError("this LearnerEndpoint is closed: create a new one")
        return sock

    def close(self) -> None:
        """Close the sockets (dropping anything unsent) and the ZeroMQ context. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sock in (self._data, self._pub):
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
