"""The actor's end of the channels (robot_rl/transport/channels.py has the protocol): numbered,
spooled batches sent until the learner has committed them; the newest weights received in the
background of every `pump`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import zmq

import robot_rl.transport.security as security
from robot_rl.transport.channels import (
    RESERVED_HEADER_KEYS,
    RefusedError,
    TransportError,
    _configure,
)
from robot_rl.transport.spool import DiskSpool, MemorySpool, MissingBatch
from robot_rl.transport.wire import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    decode,
    decode_single,
    encode,
    wire_array,
)

log = logging.getLogger(__name__)


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
