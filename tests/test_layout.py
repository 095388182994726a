"""The code's shape, checked: dependencies flow one way (controllers <- sim, hardware <- robot_rl), no
import cycles (any import, top-level or inside a function), no module over 450 lines, and the training
loop short enough to read top to bottom."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controllers", "sim", "hardware", "robot_rl")
ALLOWED = {"controllers": set(), "sim": {"controllers"}, "hardware": {"controllers"},
           "robot_rl": {"controllers", "sim", "hardware"}}


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (the most specific one an import names)."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    targets.add(resolve(f"{node.module}.{alias.name}"))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def test_dependencies_flow_one_way():
    graph = _imports(_modules())
    wrong = sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets
                   if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]])
    assert not wrong, wrong


def test_no_import_cycles():
    graph = _imports(_modules())
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_no_module_is_over_450_lines_and_the_loop_reads_in_one_sitting():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > 450}
    assert not long, long
    assert len((ROOT / "robot_rl" / "train.py").read_text().splitlines()) <= 350
