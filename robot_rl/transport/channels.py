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

from robot_rl.transport import security
from robot_rl.transport.spool import DiskSpool, MemorySpool, MissingBatch
from robot_rl.transport.wire import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    decode,
    decode_single,
    encode,
    encode_single,
    wire_array,
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


class ActorEndpoint:
    """Actor side: DEALER (identity = actor_id) for data/control, SUB (conflated) for weights.

    `send_transitions()` spools and, when the learner is there, sends; call `pump()` often (every
    control step or so) to process acks, heartbeat, notice a silent learner and re-send after it
    returns. Neither ever blocks longer than the timeout it is given (plus one spool write).
    spool_dir=None keeps un-acknowledged batches in RAM instead of on disk: lost if this process dies.
    actor_id must be unique among the learner's actors (a second actor with the same id takes the
    connection over) and stable across restarts of the same robot (it keys the dedup state).
    Not thread-safe: use an endpoint from one thread.
    """

    def __init__(self, actor_id: str, connect_data: str, connect_weights: str, config_hash: str,
                 spool_dir: str | Path | None, keys_dir: str | Path | None = None, *,
                 key_name: str = security.ACTOR, heartbeat_s: float = 1.0, learner_timeout_s: float = 5.0,
                 hello_interval_s: float = 1.0, window: int = 8,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        raw_id = actor_id.encode() if isinstance(actor_id, str) else b""
        if not 1 <= len(raw_id) <= 255 or raw_id[0] == 0:
            raise ValueError(f"actor_id must be a non-empty string of at most 255 UTF-8 bytes, not starting "
                             f"with NUL, got {actor_id!r}")
        if window < 1:
            raise ValueError(f"window (batches in flight) must be >= 1, got {window}")
        keys = security.require_security(connect_data, keys_dir, security.ACTOR, key_name)
        keys = security.require_security(connect_weights, keys_dir, security.ACTOR, key_name) or keys
        self.actor_id = actor_id
        self.config_hash = config_hash
        self.heartbeat_s = heartbeat_s
        self.learner_timeout_s = learner_timeout_s
        self.hello_interval_s = hello_interval_s
        self.window = window
        self.max_message_bytes = max_message_bytes
        self._spool = DiskSpool(spool_dir, actor_id) if spool_dir is not None else MemorySpool()
        pending = self._spool.seqs()
        self._next_seq = self._spool.next_seq
        self._acked = (pending[0] if pending else self._next_seq) - 1  # what we know the learner has
        self._send_next = self._acked + 1
        self._welcomed = False
        self._refused: str | None = None
        self._hello_id = 0
        self._next_hello_at = 0.0
        self._last_reply = self._last_heartbeat = self._last_progress = 0.0
        self._latest_weights: tuple[int, dict[str, np.ndarray]] | None = None
        self.weights_header: dict[str, Any] = {}  # header of the latest weights (version, published_unix_s)
        self._closed = False
        if pending:
            log.info("actor %r: %d spooled batches from a previous run (seq %d..%d) will be re-sent",
                     actor_id, len(pending), pending[0], pending[-1])
        self._ctx = zmq.Context()
        self._data: zmq.Socket | None = None
        self._sub: zmq.Socket | None = None
        try:
            self._data = self._ctx.socket(zmq.DEALER)
            _configure(self._data, max_message_bytes)
            self._data.setsockopt(zmq.ROUTING_ID, raw_id)
            self._data.setsockopt(zmq.IMMEDIATE, 1)  # no queueing towards a learner that is not there
            self._data.setsockopt(zmq.SNDHWM, window + 8)
            self._data.setsockopt(zmq.RCVHWM, 1000)
            self._sub = self._ctx.socket(zmq.SUB)
            _configure(self._sub, max_message_bytes)
            self._sub.setsockopt(zmq.CONFLATE, 1)  # keep only the newest weights (single-frame messages)
            self._sub.setsockopt(zmq.SUBSCRIBE, b"")
            for sock, address in ((self._data, connect_data), (self._sub, connect_weights)):
                if keys is not None:
                    security.configure_client(sock, keys, key_name)
                try:
                    sock.connect(address)
                except zmq.ZMQError as e:
                    raise TransportError(f"cannot connect to {address!r}: {e}") from None
        except BaseException:
            self.close()
            raise

    # -- state -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The learner welcomed us and has answered within learner_timeout_s."""
        return self._welcomed and time.monotonic() - self._last_reply <= self.learner_timeout_s

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def acked_seq(self) -> int:
        """Highest seq the learner has confirmed receiving (all before it too)."""
        return self._acked

    @property
    def pending(self) -> int:
        """Batches still spooled (not yet committed by the learner)."""
        return len(self._spool.seqs())

    @property
    def unacked(self) -> int:
        return self._next_seq - 1 - self._acked

    # -- sending ---------------------------------------------------------------------------------

    def send_transitions(self, arrays: dict[str, np.ndarray], header: dict[str, Any] | None = None) -> int:
        """Spool a batch and send it if the learner is there and the window allows; return its seq.

        The arrays are sent zero-copy: do not modify them afterwards (np.stack etc. make fresh ones)."""
        self._check_open()
        header = dict(header or {})
        for key in RESERVED_HEADER_KEYS:
            if key in header:
                raise ValueError(f"header key {key!r} is reserved by the transport: rename it")
        wire = {name: wire_array(name, a) for name, a in arrays.items()}
        seq = self._next_seq
        encode(Message("transitions", {**header, "seq": seq}, wire))  # header/size errors now, not later
        self._spool.put(seq, header, wire)
        self._next_seq = seq + 1
        self._step()
        return seq

    def send_stats(self, stats: dict[str, Any]) -> bool:
        """Best-effort stats to the learner (not spooled): False when it could not be sent now."""
        self._check_open()
        return self._welcomed and self._send(Message("stats", dict(stats)))

    def pump(self, timeout_ms: int = 0) -> None:
        """Process learner replies and timers for up to timeout_ms. Raises RefusedError if the learner
        refused our hello (batches stay spooled)."""
        self._check_open()
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._step()
            if self._refused is not None:
                raise RefusedError(f"learner refused actor {self.actor_id!r}: {self._refused}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._data.poll(max(1, int(1000 * min(remaining, 0.05))), zmq.POLLIN)  # type: ignore[union-attr]

    def _step(self) -> None:
        self._receive()
        now = time.monotonic()
        if self._welcomed and now - self._last_reply > self.learner_timeout_s:
            log.warning("actor %r: learner silent for %.1f s: spooling until it answers again",
                        self.actor_id, now - self._last_reply)
            self._welcomed = False
            self._next_hello_at = now
        if not self._welcomed:
            if self._refused is None and now >= self._next_hello_at:
                self._hello_id += 1
                pending = self._spool.seqs()
                if self._send(Message("hello", {"protocol": PROTOCOL_VERSION, "actor_id": self.actor_id,
                                                "config_hash": self.config_hash, "hello_id": self._hello_id,
                                                "resume_seq": pending[0] if pending else self._next_seq})):
                    self._next_hello_at = now + self.hello_interval_s
            return
        if now - self._last_heartbeat >= self.heartbeat_s and self._send(
                Message("heartbeat", {"next_seq": self._next_seq})):
            self._last_heartbeat = now
        if self._send_next - 1 > self._acked and now - self._last_progress > self.learner_timeout_s:
            log.warning("actor %r: no ack progress for %.1f s: re-sending from seq %d",
                        self.actor_id, now - self._last_progress, self._acked + 1)
            self._rewind(self._acked + 1, now)
        self._flush()

    def _rewind(self, seq: int, now: float) -> None:
        self._send_next = seq
        self._last_progress = now

    def _flush(self) -> None:
        """Send spooled batches in seq order while the window and ZeroMQ's queue allow."""
        while self._send_next < self._next_seq and self._send_next <= self._acked + self.window:
            seq = self._send_next
            if seq == self._acked + 1:
                self._last_progress = time.monotonic()  # nothing was in flight: the ack clock starts now
            try:
                header, arrays = self._spool.get(seq)
                msg = Message("transitions", {**header, "seq": seq}, arrays)
            except MissingBatch:  # tell the learner, so it does not wait for it forever
                log.error("actor %r: spooled batch seq %d is missing: reporting it lost", self.actor_id, seq)
                msg = Message("transitions", {"seq": seq, "lost": True})
            if not self._send(msg):
                return
            self._send_next = seq + 1

    def _send(self, msg: Message) -> bool:
        try:
            self._data.send_multipart(encode(msg), zmq.NOBLOCK, copy=False)  # type: ignore[union-attr]
            return True
        except zmq.Again:  # not connected (IMMEDIATE) or queue full: try again on a later step
            return False

    # -- receiving -------------------------------------------------------------------------------

    def _receive(self) -> None:
        while True:
            try:
                frames = self._data.recv_multipart(zmq.NOBLOCK, copy=False)  # type: ignore[union-attr]
            except zmq.Again:
                return
            try:
                msg = decode(frames, self.max_message_bytes)
            except ProtocolError as e:
                log.warning("actor %r: bad message from the learner: %s", self.actor_id, e)
                continue
            now = time.monotonic()
            self._last_reply = now
            try:
                if msg.kind == "welcome":
                    self._on_welcome(msg.header, now)
                elif msg.kind in ("ack", "heartbeat") and self._welcomed:
                    self._on_ack(msg.header, now)
                elif msg.kind == "error":
                    self._on_error(msg.header, now)
            except (KeyError, TypeError, ValueError) as e:
                log.warning("actor %r: malformed %r from the learner (%s): ignored", self.actor_id, msg.kind, e)

    def _on_welcome(self, h: dict[str, Any], now: float) -> None:
        if h.get("hello_id") != self._hello_id:
            return  # answer to an older hello: the newest one's answer follows
        acked, committed = int(h["seq"]), int(h["committed"])
        if acked >= self._next_seq:
            log.warning("actor %r: the learner already has seq <= %d but this actor's spool is at %d (spool_dir "
                        "reset?): continuing at %d", self.actor_id, acked, self._next_seq, acked + 1)
            self._next_seq = acked + 1
            self._spool.set_next_seq(self._next_seq)
        self._welcomed = True
        self._refused = None
        self._last_heartbeat = now
        self._acked = acked
        self._spool.drop_through(committed)
        self._rewind(acked + 1, now)  # re-send everything not acknowledged, in order
        log.info("actor %r: connected; learner has seq <= %d, %d batches to send",
                 self.actor_id, acked, self._next_seq - 1 - acked)

    def _on_ack(self, h: dict[str, Any], now: float) -> None:
        seq, committed = int(h["seq"]), int(h["committed"])
        if seq > self._acked:
            self._acked = seq
            self._last_progress = now
            self._send_next = max(self._send_next, seq + 1)
        elif h.get("gap") and self._send_next > seq + 1 and now - self._last_progress > 0.2:
            self._rewind(seq + 1, now)  # something in between was lost (connection dropped)
        self._spool.drop_through(min(committed, self._acked))

    def _on_error(self, h: dict[str, Any], now: float) -> None:
        code, reason = h.get("code"), str(h.get("reason"))
        if code == "not_registered":
            if self._welcomed:  # learner restarted or forgot us: hello again, now
                self._welcomed = False
                self._next_hello_at = now
        elif code == "refused":
            if h.get("hello_id") in (None, self._hello_id):
                self._welcomed = False
                self._refused = reason
        else:
            log.warning("actor %r: learner reports %s: %s", self.actor_id, code, reason)

    # -- weights ---------------------------------------------------------------------------------

    def latest_weights(self, timeout_ms: int = 0) -> tuple[int, dict[str, np.ndarray]] | None:
        """(version, arrays) of the newest weights received so far, or None if none yet. Waits up to
        timeout_ms only when nothing new has arrived. The arrays are read-only-by-convention views."""
        self._check_open()
        sub = self._sub
        assert sub is not None
        if timeout_ms > 0:
            sub.poll(timeout_ms, zmq.POLLIN)
        while True:
            try:
                frame = sub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return self._latest_weights
            try:
                msg = decode_single(frame, self.max_message_bytes)
            except ProtocolError as e:
                log.warning("actor %r: bad weights message: %s", self.actor_id, e)
                continue
            version = msg.header.get("version")
            if msg.kind != "weights" or type(version) is not int:
                log.warning("actor %r: ignoring %r message without an int version on the weights channel",
                            self.actor_id, msg.kind)
            elif msg.header.get("config_hash") != self.config_hash:
                log.warning("actor %r: ignoring weights for config %r (ours is %r)", self.actor_id,
                            msg.header.get("config_hash"), self.config_hash)
            else:
                self._latest_weights = (version, msg.arrays)
                self.weights_header = msg.header

    # -- lifetime --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("this ActorEndpoint is closed: create a new one")

    def close(self) -> None:
        """Say bye (best effort, 100 ms at most) and close. Spooled batches stay on disk. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._data is not None:
            if self._welcomed:
                self._send(Message("bye", {}))
            self._data.close(linger=100)
        if self._sub is not None:
            self._sub.close(linger=0)
        self._ctx.term()
        self._spool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
