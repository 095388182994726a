"""`robot-rl up`: run a ROS 2 launch file's composition without `ros2 launch`, for pip-only installs.

The files in launch/ are ordinary ROS 2 XML launch files (`ros2 launch launch/sim_train.launch.xml`
works with a full ROS 2 install). This reads the subset they use:
    <arg name="..." default="..." description="..."/>      overridable as name:=value
    <set_env name="..." value="..."/>                      for every process
    <executable cmd="..." name="..." output="screen" on_exit="shutdown"/>
with `$(var name)` substitution, starts every executable (a `robot-rl ...` command runs with this
Python), prefixes their output with their names, and stops them all (SIGINT, then SIGTERM, then
SIGKILL) on Ctrl-C, when an `on_exit="shutdown"` process ends, or when any process fails.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

LAUNCH_DIR = Path(__file__).resolve().parent.parent / "launch"
_VAR = re.compile(r"\$\(var ([A-Za-z_][A-Za-z0-9_]*)\)")
SUPPORTED = ("arg", "set_env", "executable")


@dataclass
class Executable:
    name: str
    argv: list[str]
    shutdown_on_exit: bool


@dataclass
class Composition:
    path: Path
    args: dict[str, tuple[str | None, str]]  # name: (default, description)
    env: dict[str, str]
    executables: list[Executable]


def find_launch_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = LAUNCH_DIR / (name_or_path if name_or_path.endswith(".launch.xml") else f"{name_or_path}.launch.xml")
    if shipped.exists():
        return shipped
    names = sorted(p.name[: -len(".launch.xml")] for p in LAUNCH_DIR.glob("*.launch.xml"))
    raise ValueError(f"launch file {name_or_path!r} not found: give a path or one of {names}")


def parse(path: Path, overrides: dict[str, str] | None = None) -> Composition:
    """The composition with `overrides` (name: value) applied; errors name the file and the element."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not valid XML: {err}") from err
    if root.tag != "launch":
        raise ValueError(f"{path}: the root element must be <launch>, got <{root.tag}>")
    overrides = dict(overrides or {})
    args: dict[str, tuple[str | None, str]] = {}
    values: dict[str, str] = {}
    env: dict[str, str] = {}
    executables: list[Executable] = []

    def substitute(text: str, where: str) -> str:
        def one(match):
            name = match.group(1)
            if name not in values:
                raise ValueError(f"{path}: {where} uses $(var {name}), which no <arg> before it declares")
            return values[name]
        return _VAR.sub(one, text)

    for element in root:
        if element.tag not in SUPPORTED:
            raise ValueError(f"{path}: <{element.tag}> is not supported by `robot-rl up` (only {SUPPORTED})")
        if element.tag == "arg":
            name = element.get("name")
            if not name:
                raise ValueError(f"{path}: an <arg> has no name")
            default = element.get("default")
            args[name] = (default, element.get("description", ""))
            if name in overrides:
                values[name] = overrides.pop(name)
            elif default is not None:
                values[name] = substitute(default, f"<arg name={name!r}>")
            else:
                raise ValueError(f"{path}: argument {name!r} is required: add {name}:=VALUE")
        elif element.tag == "set_env":
            env[element.get("name", "")] = substitute(element.get("value", ""), "<set_env>")
        else:
            name = element.get("name") or f"process{len(executables)}"
            cmd = element.get("cmd")
            if not cmd:
                raise ValueError(f"{path}: <executable name={name!r}> has no cmd")
            argv = shlex.split(substitute(cmd, f"<executable name={name!r}>"))
            executables.append(Executable(name, argv, element.get("on_exit") == "shutdown"))
    if overrides:
        raise ValueError(f"{path}: unknown argument(s) {sorted(overrides)}; it takes {sorted(args)}")
    return Composition(path, args, env, executables)


def _command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "robot_rl.cli", *argv[1:]] if argv and argv[0] == "robot-rl" else argv


def _pump(name: str, stream, width: int) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"[{name:<{width}}] {line}")
        sys.stdout.flush()


def run(composition: Composition, stop_grace_s: float = 10.0) -> int:
    env = {**os.environ, **composition.env, "PYTHONUNBUFFERED": "1"}
    width = max((len(e.name) for e in composition.executables), default=1)
    processes: list[tuple[Executable, subprocess.Popen]] = []
    pumps = []
    try:
        for executable in composition.executables:
            process = subprocess.Popen(_command(executable.argv), env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, start_new_session=True)
            processes.append((executable, process))
            pump = threading.Thread(target=_pump, args=(executable.name, process.stdout, width), daemon=True)
            pump.start()
            pumps.append(pump)
        while True:
            for executable, process in processes:
                rc = process.poll()
                if rc is None:
                    continue
                if rc != 0 or executable.shutdown_on_exit:
                    print(f"[up] {executable.name} exited with {rc}: stopping the others", flush=True)
                    return rc
            if all(p.poll() is not None for _, p in processes):
                return 0
            time.sleep(0.1)
    except KeyboardInterrupt:
        return 130
    finally:
        for sig, wait in ((signal.SIGINT, stop_grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            alive = [p for _, p in processes if p.poll() is None]
            if not alive:
                break
            for p in alive:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        for pump in pumps:
            pump.join(timeout=1.0)
