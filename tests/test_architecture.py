"""The house rules of docs/ARCHITECTURE.md, read from the imports of src/trafl: no import
cycle between modules or packages, no import that runs up a floor, objectives see core only."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# floor 1, in order: a component may import core and the components before it
COMPONENTS = ["models", "sampling", "likelihood", "rewards", "tasks", "objectives", "evaluation"]
TENSORS_ONLY = {"objectives"}  # objectives see tensors, not models: core only
TOP_LEVEL = {"trafl", "trafl.__main__"}  # the only modules outside a floor's package


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "trafl").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every trafl module ``name`` imports, at any depth (lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("trafl") and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def floor(module: str) -> tuple[int, str]:
    """(floor, room): 0 core, 1 a component (room = its package), 2 run, 3 commands and
    integrations."""
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else ""
    if room == "core":
        return 0, room
    if room in COMPONENTS:
        return 1, room
    return {"run": (2, room), "commands": (3, room), "integrations": (3, room)}.get(
        room, (-1, room)
    )


def allowed(src: str, dst: str) -> bool:
    (f_src, r_src), (f_dst, r_dst) = floor(src), floor(dst)
    if dst in ("trafl",):
        return True  # the package's own docstring module
    if r_src == r_dst or f_dst < f_src and r_src not in TENSORS_ONLY:
        return True
    if f_src == f_dst == 1 and r_src not in TENSORS_ONLY:
        return COMPONENTS.index(r_dst) < COMPONENTS.index(r_src)
    return r_src in TENSORS_ONLY and r_dst == "core"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_the_imports():
    """Guards the checks below against reading nothing."""
    g = graph()
    assert "trafl.core.config_files" in g["trafl.commands.train"]
    assert "trafl.core.batch" in g["trafl.sampling.sampler"]
    assert len(g) > 80


def test_every_module_lives_on_a_floor():
    stray = [m for m in graph() if m not in TOP_LEVEL and floor(m)[0] < 0]
    assert not stray, f"modules outside core/, a component, run/ or commands/: {stray}"


def test_no_import_runs_up_a_floor_and_objectives_see_core_only():
    g = graph()
    bad = sorted(
        f"{src} -> {dst}"
        for src, dsts in g.items()
        if src not in TOP_LEVEL
        for dst in dsts
        if not allowed(src, dst)
    )
    assert not bad, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    assert cycles(graph()) == []


def test_no_import_cycles_between_packages():
    g = graph()
    packages: dict[str, set[str]] = {}
    for src, dsts in g.items():
        room = floor(src)[1]
        packages.setdefault(room, set()).update(floor(d)[1] for d in dsts if floor(d)[1] != room)
    assert cycles(packages) == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert not allowed("trafl.models.hf", "trafl.run.sharding")
    assert not allowed("trafl.objectives.trafl", "trafl.models.base")
    assert not allowed("trafl.sampling.sampler", "trafl.tasks.base")
    assert allowed("trafl.tasks.code", "trafl.rewards.sandbox")
    assert allowed("trafl.run.checkpoint", "trafl.models.loading")
