"""Transport: wire framing, exactly-once delivery across restarts, liveness, weights, CurveZMQ.

Real ZeroMQ sockets on loopback throughout (no mocks); timeouts are short so the file runs in seconds.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Callable

import numpy as np
import pytest
import zmq

from robot_rl.transport import (
    ActorEndpoint,
    LearnerEndpoint,
    Message,
    ProtocolError,
    RefusedError,
    SecurityError,
    SpoolError,
    decode,
    decode_single,
    encode,
    encode_single,
    generate_all,
    generate_keypair,
)
from robot_rl.transport.security import require_security
from robot_rl.transport.wire import DTYPES, MAX_HEADER_BYTES

CFG = "cfg-1234"
FAST = {"heartbeat_s": 0.1, "learner_timeout_s": 0.6, "hello_interval_s": 0.1}


def _free_port() -> int:
    with socket.socket() as sock:  # closed synchronously, unlike a ZeroMQ socket
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _addresses() -> tuple[str, str]:
    return f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"


def _batch(i: int) -> dict[str, np.ndarray]:
    return {"obs": np.full((2, 3), i, np.float32), "action": np.full(2, i, np.int16)}


def _run(actors: list[ActorEndpoint], learner: LearnerEndpoint | None, until: Callable[[], bool],
         timeout_s: float = 5.0) -> list[tuple[str, Message]]:
    """Pump the actors and poll the learner until `until()`; return everything the learner got."""
    got: list[tuple[str, Message]] = []
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        for actor in actors:
            actor.pump(2)
        if learner is not None:
            got += learner.poll(5)
    return got


def _seqs(got: list[tuple[str, Message]], actor_id: str = "a1") -> list[int]:
    return [m.header["seq"] for a, m in got if a == actor_id and m.kind == "transitions"]


# -- wire -------------------------------------------------------------------------------------------


def _arrays_of_every_kind() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for name in DTYPES:
        for shape in [(), (0,), (3, 0, 2), (5,), (2, 3, 4)]:
            arrays[f"{name}/{len(shape)}d/{'x'.join(map(str, shape))}"] = (rng.random(shape) * 100).astype(name)
    arrays["non_contiguous"] = np.arange(60, dtype=np.float32).reshape(6, 10)[::2, 1::3]
    arrays["fortran"] = np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4))
    arrays["big_endian"] = np.arange(5, dtype=">f8")
    return arrays


def test_every_dtype_and_shape_round_trips_through_real_sockets():
    arrays = _arrays_of_every_kind()
    msg = Message("transitions", {"seq": 3, "names": ["a", "b"], "x": 1.5, "np": np.float32(2.0)}, arrays)
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a.bind("inproc://wire")
        b.connect("inproc://wire")
        a.send_multipart(encode(msg), copy=False)
        multi = decode(b.recv_multipart(copy=False))  # views over zmq.Frame buffers
        a.send(encode_single(msg), copy=False)
        single = decode_single(b.recv(copy=False))
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()
    for got in (multi, single):
        assert got.kind == "transitions" and got.header == {"seq": 3, "names": ["a", "b"], "x": 1.5, "np": 2.0}
        assert list(got.arrays) == list(arrays)
        for name, want in arrays.items():
            assert got.arrays[name].shape == want.shape, name
            assert got.arrays[name].dtype.name == want.dtype.name, name
            np.testing.assert_array_equal(got.arrays[name], want, err_msg=name)
    # single-frame arrays sit at aligned offsets, so the views are aligned
    assert all(a.flags.aligned for a in single.arrays.values())


def _frames(msg: Message) -> list[bytes]:
    return [bytes(memoryview(f)) for f in encode(msg)]


def _with_header(frames: list[bytes], **changes: object) -> list[bytes]:
    doc = json.loads(frames[0])
    doc.update(changes)
    return [json.dumps(doc).encode(), *frames[1:]]


GOOD = Message("transitions", {"seq": 1}, {"obs": np.zeros((4, 3), np.float32)})


@pytest.mark.parametrize("corrupt, match", [
    (lambda f: _with_header(f, v=99), "protocol version 99"),
    (lambda f: _with_header(f, arrays=[["obs", "object", [4, 3]]]), "'obs' has dtype 'object'"),
    (lambda f: _with_header(f, arrays=[["obs", "float32", [4, -3]]]), "'obs' has shape"),
    (lambda f: _with_header(f, kind="exec"), "kind 'exec' is unknown"),
    (lambda f: [f[0], f[1][:-4]], "'obs' should be 48 bytes .* has 44: truncated"),
    (lambda f: f[:1], "has 1 frames but its header announces 1 arrays"),
    (lambda f: [*f, b"extra"], "has 3 frames"),
    (lambda f: [b"{not json", *f[1:]], "not valid JSON"),
    (lambda f: [b" " * (MAX_HEADER_BYTES + 1), *f[1:]], "over MAX_HEADER_BYTES"),
    (lambda f: [], "empty message"),
])
def test_corrupt_multipart_messages_raise_protocol_error(corrupt, match):
    with pytest.raises(ProtocolError, match=match):
        decode(corrupt(_frames(GOOD)))


def test_oversized_and_corrupt_single_frames_raise_protocol_error():
    with pytest.raises(ProtocolError, match="over the limit of 100"):
        decode(_frames(GOOD), max_message_bytes=100)
    frame = bytes(encode_single(GOOD))
    with pytest.raises(ProtocolError, match="over the limit of 100"):
        decode_single(frame, max_message_bytes=100)
    with pytest.raises(ProtocolError, match="'obs' .* runs past the end .* truncated"):
        decode_single(frame[:-1])
    with pytest.raises(ProtocolError, match="trailing bytes"):
        decode_single(frame + b"\0")
    with pytest.raises(ProtocolError, match="claims .* truncated"):
        decode_single(frame[:10])
    huge = _with_header(_frames(GOOD), arrays=[["obs", "float64", [2**20, 2**20]]])
    with pytest.raises(ProtocolError, match="'obs' .* over the message limit"):
        decode(huge)  # rejected from the header alone, before any allocation


def test_encode_rejects_what_the_wire_cannot_carry():
    with pytest.raises(ProtocolError, match="array 'bad' has dtype object"):
        encode(Message("transitions", {}, {"bad": np.array([{}, None], dtype=object)}))
    with pytest.raises(ProtocolError, match="header field 'img' .* not JSON-able"):
        encode(Message("stats", {"img": np.zeros(3)}))
    with pytest.raises(ProtocolError, match="kind 'nope' is unknown"):
        encode(Message("nope"))


# -- data channel -----------------------------------------------------------------------------------


def test_hello_with_wrong_config_hash_is_refused_with_a_clear_error(tmp_path):
    data, weights = _addresses()
    with LearnerEndpoint(data, weights, CFG) as learner, \
            ActorEndpoint("a1", data, weights, "other-config", tmp_path, **FAST) as actor:
        with pytest.raises(RefusedError, match="config_hash mismatch.*'other-config'.*'cfg-1234'"):
            for _ in range(200):
                actor.pump(5)
                assert learner.poll(5) == []
        assert learner.actors() == {} and not actor.connected


def test_transitions_are_acked_and_a_duplicate_seq_is_counted_once():
    data, weights = _addresses()
    with LearnerEndpoint(data, weights, CFG) as learner:
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, b"raw")
        dealer.connect(data)
        try:
            def request(msg: Message) -> tuple[list[tuple[str, Message]], Message]:
                dealer.send_multipart(encode(msg))
                got = learner.poll(2000)
                assert dealer.poll(2000), "no reply from the learner"
                return got, decode(dealer.recv_multipart())

            got, welcome = request(Message("hello", {"actor_id": "raw", "config_hash": CFG, "hello_id": 1,
                                                     "resume_seq": 1}))
            assert welcome.kind == "welcome" and welcome.header["seq"] == 0 and [m.kind for _, m in got] == ["hello"]
            replies = []
            received = []
            for seq in (1, 1, 2, 2, 1):
                got, reply = request(Message("transitions", {"seq": seq}, _batch(seq)))
                received += got
                replies.append((reply.kind, reply.header["seq"]))
            assert [m.header["seq"] for _, m in received] == [1, 2]
            np.testing.assert_array_equal(received[1][1].arrays["obs"], _batch(2)["obs"])
            assert replies == [("ack", 1), ("ack", 1), ("ack", 2), ("ack", 2), ("ack", 2)]
            assert learner.actors()["raw"].duplicates == 3
            # a gap (seq 4 before 3) is not accepted: the ack says where to resume
            got, reply = request(Message("transitions", {"seq": 4}, _batch(4)))
            assert got == [] and reply.header == {"seq": 2, "committed": 2, "gap": True}
        finally:
            dealer.close(linger=0)
            ctx.term()


def test_learner_down_actor_spools_without_blocking_then_everything_arrives_once_in_order(tmp_path):
    data, weights = _addresses()
    with ActorEndpoint("a1", data, weights, CFG, tmp_path / "spool", **FAST) as actor:
        for i in range(1, 6):
            start = time.perf_counter()
            assert actor.send_transitions(_batch(i), {"episode": i}) == i
            actor.pump(0)
            assert time.perf_counter() - start < 0.5
        assert not actor.connected and actor.pending == 5
        assert len(list((tmp_path / "spool").glob("*.npz"))) == 5

        with LearnerEndpoint(data, weights, CFG) as learner:
            got = _run([actor], learner, lambda: actor.pending == 0)
            got += _run([actor], learner, lambda: False, timeout_s=0.3)  # nothing more may arrive
        assert _seqs(got) == [1, 2, 3, 4, 5]
        for _, m in got:
            if m.kind == "transitions":
                np.testing.assert_array_equal(m.arrays["obs"], _batch(m.header["seq"])["obs"])
                assert m.header["episode"] == m.header["seq"]
        assert not list((tmp_path / "spool").glob("*.npz"))


def test_learner_restart_from_checkpoint_loses_and_duplicates_nothing(tmp_path):
    """auto_commit=False: the actor keeps batches until a checkpoint holding them is committed, so a
    learner that crashes and restarts from that checkpoint gets the rest again, exactly once."""
    data, weights = _addresses()
    with ActorEndpoint("a1", data, weights, CFG, tmp_path, **FAST) as actor:
        learner = LearnerEndpoint(data, weights, CFG, auto_commit=False)
        for i in range(1, 4):
            actor.send_transitions(_batch(i))
        first = _run([actor], learner, lambda: actor.acked_seq == 3)
        checkpoint = json.loads(json.dumps(learner.state_dict()))  # what a checkpoint would hold
        learner.commit(checkpoint)
        for i in range(4, 6):
            actor.send_transitions(_batch(i))
        first += _run([actor], learner, lambda: actor.acked_seq == 5 and actor.pending == 2)
        assert _seqs(first) == [1, 2, 3, 4, 5]
        learner.close()  # crash: 4 and 5 were received but never checkpointed

        actor.send_transitions(_batch(6))  # while the learner is down
        with LearnerEndpoint(data, weights, CFG, auto_commit=False) as learner:
            learner.load_state_dict(checkpoint)
            second = _run([actor], learner, lambda: actor.acked_seq == 6)
            second += _run([actor], learner, lambda: False, timeout_s=0.3)
            assert _seqs(second) == [4, 5, 6]
            learner.commit()
            _run([actor], learner, lambda: actor.pending == 0)
            assert actor.pending == 0


def test_actor_crash_resends_unacked_batches_and_never_duplicates(tmp_path):
    data, weights = _addresses()
    with LearnerEndpoint(data, weights, CFG) as learner:
        actor = ActorEndpoint("a1", data, weights, CFG, tmp_path, window=1, **FAST)
        for i in range(1, 4):
            actor.send_transitions(_batch(i))
        got = _run([actor], learner, lambda: actor.acked_seq == 3 and actor.pending == 0)
        for i in range(4, 7):  # no pump, no learner poll: 4 is in flight, 5 and 6 only spooled (window=1)
            actor.send_transitions(_batch(i))
        actor.close()  # "crash": acks never processed
        assert sorted(int(p.stem) for p in tmp_path.glob("*.npz")) == [4, 5, 6]

        actor = ActorEndpoint("a1", data, weights, CFG, tmp_path, **FAST)
        assert actor.next_seq == 7
        assert actor.send_transitions(_batch(7)) == 7
        got += _run([actor], learner, lambda: actor.acked_seq == 7 and actor.pending == 0)
        got += _run([actor], learner, lambda: False, timeout_s=0.3)
        actor.close()
        assert _seqs(got) == [1, 2, 3, 4, 5, 6, 7]

        # everything acked: the numbering still continues after a restart (state.json)
        with ActorEndpoint("a1", data, weights, CFG, tmp_path, **FAST) as actor:
            assert actor.next_seq == 8 and actor.pending == 0
    with pytest.raises(SpoolError, match="belongs to actor 'a1', not 'a2'"):
        ActorEndpoint("a2", data, weights, CFG, tmp_path)


def test_silent_actor_is_noticed_and_a_live_one_is_not():
    data, weights = _addresses()
    with LearnerEndpoint(data, weights, CFG) as learner, \
            ActorEndpoint("quiet", data, weights, CFG, None, **FAST) as quiet, \
            ActorEndpoint("alive", data, weights, CFG, None, **FAST) as alive:
        _run([quiet, alive], learner, lambda: quiet.connected and alive.connected)
        assert set(learner.actors()) == {"quiet", "alive"}
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # only "alive" keeps pumping (heartbeats)
            alive.pump(5)
            learner.poll(5)
        assert learner.silent_actors(timeout_s=0.4) == ["quiet"]
        # the actor notices the silent learner too, and keeps working without it
        deadline = time.monotonic() + FAST["learner_timeout_s"] + 0.2
        while time.monotonic() < deadline:
            alive.pump(10)
        assert not alive.connected
        alive.send_transitions(_batch(1))


def test_weights_are_latest_only():
    data, weights = _addresses()
    with LearnerEndpoint(data, weights, CFG) as learner, \
            ActorEndpoint("a1", data, weights, CFG, None, **FAST) as actor:
        assert actor.latest_weights() is None
        latest = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # PUB/SUB slow joiner: publish until the subscription is up
            for version in range(1, 6):
                learner.publish_weights(version, {"w": np.full(1000, version, np.float32)})
            latest = actor.latest_weights(timeout_ms=100)
            if latest is not None and latest[0] == 5:
                break
        assert latest is not None and latest[0] == 5
        np.testing.assert_array_equal(latest[1]["w"], np.full(1000, 5, np.float32))
        assert actor.latest_weights() is not None and actor.latest_weights()[0] == 5  # no older version


# -- security ---------------------------------------------------------------------------------------


def test_non_loopback_endpoints_without_keys_raise_a_clear_error(tmp_path):
    with pytest.raises(SecurityError, match="robot-rl keys --out DIR"):
        LearnerEndpoint("tcp://0.0.0.0:5555", "tcp://127.0.0.1:5556", CFG)
    with pytest.raises(SecurityError, match="robot-rl keys --out DIR"):
        ActorEndpoint("a1", "tcp://10.0.0.5:5555", "tcp://10.0.0.5:5556", CFG, None)
    with pytest.raises(SecurityError, match="learner.key_secret is missing"):
        require_security("tcp://0.0.0.0:5555", tmp_path)
    for endpoint in ("tcp://127.0.0.1:5555", "tcp://localhost:1", "ipc:///tmp/x", "inproc://x"):
        assert require_security(endpoint, None) is None


def test_curve_authenticated_actor_talks_and_an_unknown_key_gets_nothing_through(tmp_path):
    paths = generate_all(tmp_path / "keys")
    assert paths["learner_secret"].stat().st_mode & 0o777 == 0o600
    assert paths["actor_secret"].stat().st_mode & 0o777 == 0o600
    rogue_keys = tmp_path / "rogue"
    generate_keypair(rogue_keys, "actor")  # a valid key, but not in the learner's authorized/ dir
    shutil.copy(paths["learner_public"], rogue_keys)
    data, weights = _addresses()
    with LearnerEndpoint(data, weights, CFG, keys_dir=tmp_path / "keys") as learner, \
            ActorEndpoint("good", data, weights, CFG, None, keys_dir=tmp_path / "keys", **FAST) as good, \
            ActorEndpoint("rogue", data, weights, CFG, None, keys_dir=rogue_keys, **FAST) as rogue:
        good.send_transitions(_batch(1))
        rogue.send_transitions(_batch(1))
        got = _run([good, rogue], learner, lambda: good.acked_seq == 1)
        got += _run([good, rogue], learner, lambda: False, timeout_s=0.5)
        assert _seqs(got, "good") == [1]
        assert {a for a, _ in got} == {"good"} and set(learner.actors()) == {"good"}
        assert not rogue.connected and rogue.acked_seq == 0 and rogue.pending == 1
        deadline = time.monotonic() + 3
        while good.latest_weights(timeout_ms=20) is None and time.monotonic() < deadline:
            learner.publish_weights(1, {"w": np.ones(3, np.float32)})
        assert good.latest_weights() is not None and rogue.latest_weights(timeout_ms=50) is None


def test_a_corrupt_spool_file_is_reported_lost_instead_of_stalling_the_stream(tmp_path):
    data, weights = _addresses()
    with ActorEndpoint("a1", data, weights, CFG, tmp_path, **FAST) as actor:  # no learner yet
        for i in range(1, 4):
            actor.send_transitions(_batch(i))
    (tmp_path / f"{2:012d}.npz").write_bytes(b"not a zip file")
    with LearnerEndpoint(data, weights, CFG) as learner, \
            ActorEndpoint("a1", data, weights, CFG, tmp_path, **FAST) as actor:
        got = _run([actor], learner, lambda: actor.acked_seq == 3 and actor.pending == 0)
    assert _seqs(got) == [1, 3]
    assert (tmp_path / f"{2:012d}.corrupt").exists()
