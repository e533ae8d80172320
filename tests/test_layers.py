"""The import direction of DESIGN.md holds: no module imports a layer above its own.

    cli, serve  →  eval  →  assistant (the composition root)
      →  dialogue, learn, policy, knowledge, agent, train, interop, transformer, monitor,
         media, recommend
      →  engine, store  →  evidence, config, errors

Packages of one layer may import each other, but not in a circle. Every import
counts, also one deferred into a function. ``dialoop/__init__.py`` (the public API)
and ``__main__`` sit outside the layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import dialoop

SRC = Path(dialoop.__file__).parent
LAYERS = [
    {"cli", "serve"},
    {"eval"},
    {"assistant"},
    {"dialogue", "learn", "policy", "knowledge", "agent", "train", "interop", "transformer",
     "monitor", "media", "recommend"},
    {"engine", "store"},
    {"evidence", "config", "errors"},
]
OUTSIDE = {"__init__", "__main__", "__version__"}


def _part(module: str) -> str:
    """``dialoop.dialogue.manager`` → ``dialogue``; ``dialoop.errors`` → ``errors``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _layer(part: str) -> int:
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"dialoop.{part} is in no layer: add it to LAYERS and DESIGN.md")


def _imports() -> list[tuple[str, str, int]]:
    """(importing part, imported part, line) for every import of dialoop in the package."""
    found = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = _part(".".join(rel.parts))
        if here in OUTSIDE and len(rel.parts) == 2:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                         if node.module == "dialoop"]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("dialoop.") and _part(name) not in OUTSIDE:
                    found.append((here, _part(name), node.lineno))
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted({f"dialoop.{a} imports dialoop.{b} (line {line})"
                     for a, b, line in _imports() if _layer(b) < _layer(a)})
    assert upward == []


def test_packages_of_one_layer_import_each_other_without_a_circle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in _imports():
        if a != b and _layer(a) == _layer(b):
            graph[a].add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt})
                   for nxt in graph[start] - seen)

    circles = sorted(f"{a} → {b} → … → {a}" for a in list(graph) for b in graph[a]
                     if reaches(b, a, {b}))
    assert circles == []


def test_the_check_sees_the_imports_it_judges() -> None:
    pairs = {(a, b) for a, b, _ in _imports()}
    assert ("assistant", "dialogue") in pairs and ("serve", "assistant") in pairs
    assert ("dialogue", "evidence") in pairs  # a module-level import of a bottom layer
    assert ("cli", "eval") in pairs  # one deferred into a function
