"""CurveZMQ for the transport: key files, the loopback-or-keys policy, and socket configuration.

Policy: traffic that stays on this machine (tcp://127.0.0.1, tcp://localhost, tcp://[::1], ipc://,
inproc://) may run in the clear; anything that can leave it needs keys, because the data channel
carries robot observations and the weights channel carries the policy that drives the robot.

Key layout made by `generate_all(out_dir)` (zmq.auth certificate files):

    out_dir/learner.key             learner public key   (actors need it: copy to every robot)
    out_dir/learner.key_secret      learner secret key   (learner machine only, mode 0600)
    out_dir/actor.key               actor public key
    out_dir/actor.key_secret        actor secret key     (robot machines only, mode 0600)
    out_dir/authorized/actor.key    public keys the learner accepts: one file per allowed actor
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

LEARNER = "learner"
ACTOR = "actor"
AUTHORIZED_DIR = "authorized"
ZAP_DOMAIN = b"robot_rl"
_KEYS_HINT = ("run `robot-rl keys --out DIR` once and pass `--keys DIR` (keys_dir=DIR in Python) to the "
              "learner and every actor")


class SecurityError(RuntimeError):
    """Keys are missing or unusable for an endpoint that needs them."""


def is_loopback(endpoint: str) -> bool:
    """True for endpoints whose traffic cannot leave this machine."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False  # pgm://, ws:// ... : treat as remote
    address = endpoint[len("tcp://"):].split(";")[-1]  # "src;dst" connect syntax: the peer is dst
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a hostname, an interface name or "*": may be reachable from outside
        return False


def generate_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write `name.key` (public) and `name.key_secret` (secret, mode 0600) into `directory`.
    The secret is created in a private temp dir and moved in, so it is never readable by others."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:  # mode 0700
        public, secret = (Path(p) for p in zmq.auth.create_certificates(tmp, name))
        os.chmod(secret, 0o600)
        os.chmod(public, 0o644)
        os.replace(secret, directory / secret.name)
        os.replace(public, directory / public.name)
    return directory / f"{name}.key", directory / f"{name}.key_secret"


def generate_all(out_dir: str | Path) -> dict[str, Path]:
    """Create the learner and actor keypairs and authorize the actor (backs `robot-rl keys --out DIR`).
    Returns the paths by role: learner_public, learner_secret, actor_public, actor_secret, authorized."""
    out_dir = Path(out_dir)
    learner_public, learner_secret = generate_keypair(out_dir, LEARNER)
    actor_public, actor_secret = generate_keypair(out_dir, ACTOR)
    authorized = out_dir / AUTHORIZED_DIR
    authorized.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(actor_public, authorized / actor_public.name)
    return {"learner_public": learner_public, "learner_secret": learner_secret,
            "actor_public": actor_public, "actor_secret": actor_secret, "authorized": authorized}


def load_keys(keys_dir: str | Path, name: str) -> tuple[bytes, bytes]:
    """(public, secret) from `keys_dir/name.key_secret`."""
    path = Path(keys_dir) / f"{name}.key_secret"
    if not path.is_file():
        raise SecurityError(f"secret key {path} is missing: {_KEYS_HINT}")
    public, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise SecurityError(f"{path} holds no secret-key: regenerate it ({_KEYS_HINT})")
    return public, secret


def load_public_key(keys_dir: str | Path, name: str) -> bytes:
    """The public key in `keys_dir/name.key`."""
    path = Path(keys_dir) / f"{name}.key"
    if not path.is_file():
        raise SecurityError(f"public key {path} is missing: {_KEYS_HINT}")
    public, _ = zmq.auth.load_certificate(path)
    return public


def require_security(endpoint: str, keys_dir: str | Path | None, role: str = LEARNER,
                     key_name: str = ACTOR) -> Path | None:
    """The keys directory to secure `endpoint` with, or None when it may run in the clear.

    Keys given: always used (also on loopback), after checking the files this `role` needs exist.
    No keys: fine on loopback, a SecurityError on any other endpoint."""
    if keys_dir is None:
        if is_loopback(endpoint):
            return None
        raise SecurityError(f"endpoint {endpoint!r} is reachable from other machines and needs "
                            f"CurveZMQ keys, but keys_dir is None: {_KEYS_HINT} (or bind to "
                            "tcp://127.0.0.1 for a single-machine run)")
    keys_dir = Path(keys_dir)
    if not keys_dir.is_dir():
        raise SecurityError(f"keys_dir {keys_dir} does not exist: {_KEYS_HINT}")
    if role == LEARNER:
        load_keys(keys_dir, LEARNER)
        authorized = keys_dir / AUTHORIZED_DIR
        if not authorized.is_dir() or not any(authorized.glob("*.key")):
            raise SecurityError(f"{authorized} holds no actor public keys (*.key), so no actor could "
                                f"connect: copy each actor's .key file there ({_KEYS_HINT})")
    elif role == ACTOR:
        load_keys(keys_dir, key_name)
        load_public_key(keys_dir, LEARNER)
    else:
        raise ValueError(f"role must be {LEARNER!r} or {ACTOR!r}, got {role!r}")
    return keys_dir


def start_authenticator(context: zmq.Context, keys_dir: str | Path) -> ThreadAuthenticator:
    """ZAP handler for `context` accepting only clients whose public key is in keys_dir/authorized.
    Without it libzmq would accept any Curve client. Stop it before terminating the context."""
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain=ZAP_DOMAIN.decode(), location=str(Path(keys_dir) / AUTHORIZED_DIR))
    return auth


def configure_server(socket: zmq.Socket, keys_dir: str | Path) -> None:
    """Make `socket` a Curve server with the learner's keys (call before bind)."""
    public, secret = load_keys(keys_dir, LEARNER)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_server = True
    socket.zap_domain = ZAP_DOMAIN


def configure_client(socket: zmq.Socket, keys_dir: str | Path, key_name: str = ACTOR) -> None:
    """Make `socket` a Curve client with the actor's keys, trusting the learner's key (before connect)."""
    public, secret = load_keys(keys_dir, key_name)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_serverkey = load_public_key(keys_dir, LEARNER)
