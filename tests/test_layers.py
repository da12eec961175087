"""The layers import one way (docs/architecture.md): every import statement of every module of
vidseek, inside functions too, is checked against the rules, and no two parts import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vidseek"

# part -> the parts of vidseek it must never import
FORBIDDEN = {
    "engine": {"index", "library", "export", "trainer", "cli", "bench", "synth", "serve"},
    "index": {"engine", "library", "export", "trainer", "cli", "bench", "synth", "serve"},
    "library": {"cli", "bench", "trainer", "synth", "serve"},
    "trainer": {"export", "library", "index", "cli", "bench", "serve"},
    "export": {"library", "index", "cli", "bench", "serve"},
    "serve": {"index", "trainer", "export", "cli", "bench", "synth"},  # library, and engine for QueryError and QUERY_SIDE
}
# the leaves every layer may use; they import only each other
LAYERS = {"engine", "index", "library", "trainer", "export", "serve", "cli", "bench"}
FORBIDDEN.update({leaf: LAYERS for leaf in ("synth", "spans", "evaluation", "errors", "atomic", "vocabulary")})
# the one allowed exception: a missing zero-shot bundle is exported on first use
ALLOWED = {("library/models.py", "export")}


def part_of(module: str) -> str:
    """'vidseek.engine.grounder' -> 'engine'; a top-level module ('vidseek.spans') is its own part."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) of every vidseek import in the file, at any depth of the tree;
    relative imports are resolved against ``package`` (default: the file's own)."""
    package = package or ".".join(("vidseek",) + path.relative_to(PACKAGE).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(node.lineno, module)]
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names
                      if (PACKAGE.parent / f"{module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                      or (PACKAGE.parent / f"{module}.{a.name}".replace(".", "/")).is_dir()]
    return [(line, m) for line, m in found if m == "vidseek" or m.startswith("vidseek.")]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef f():\n    from vidseek.index import catalog\n    from ..library import api\n")
    assert imports(probe, "vidseek.engine") == [(4, "vidseek.index"), (4, "vidseek.index.catalog"),
                                                (5, "vidseek.library"), (5, "vidseek.library.api")]


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_import_runs_up_or_across_the_layers(part):
    wrong = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for line, module in imports(path):
            target = part_of(module)
            if target in FORBIDDEN[part] and (rel, target) not in ALLOWED:
                wrong.append(f"vidseek/{rel}:{line} imports {module}")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_no_two_parts_import_each_other_in_a_circle():
    graph: dict[str, set[str]] = {}
    for path in modules():
        rel = path.relative_to(PACKAGE)
        source = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for _, module in imports(path):
            target = part_of(module)
            if target and target != source and target != "__init__" and (rel.as_posix(), target) not in ALLOWED:
                graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [node])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            assert cycle is None, "parts of vidseek import each other in a circle: " + " -> ".join(cycle)
