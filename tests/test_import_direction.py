"""The package's imports run one way: formats and the machine at the bottom, the job on top.

Read from the source with ``ast`` (imports inside functions included), so that a module moved
into the wrong part, or a convenient import across parts, fails here instead of growing a cycle.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "snakesweep"

#: Which parts each part may import (itself always). The top level (``cli``,
#: ``config_check``, ``snakemake_glue``, ``__init__``) may import every part.
ALLOWED = {
    "store": set(),
    "cluster": {"store"},
    "search": {"store", "cluster"},
    "session": {"store", "cluster", "search"},
    "report": {"store", "cluster", "search"},
    "job": {"store", "cluster", "search", "session", "report", "top"},
}
TOP_LEVEL = {"cli", "config_check", "snakemake_glue", "__init__"}


def part_of(module: str) -> str:
    """``snakesweep.job.launch`` -> ``job``; a top-level module or the package itself -> ``top``."""
    parts = module.split(".")
    if (
        len(parts) == 1
        or parts[1] in TOP_LEVEL
        or parts[1] in {"__version__", "EXIT_CONTINUE", "EXIT_PRUNED"}
    ):
        return "top"
    return parts[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every ``snakesweep`` module that ``path`` imports, with its line number."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = (
        module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    )
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "snakesweep"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "snakesweep":
                continue
            # `from snakesweep.store import contract` imports the module snakesweep.store.contract
            for alias in node.names:
                candidate = f"{name}.{alias.name}"
                sub = PACKAGE.parent / Path(*candidate.split("."))
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                found.append((node.lineno, candidate if is_module else name))
    return found


def wrong_way_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        importer = "top" if len(rel.parts) == 1 else rel.parts[0]
        if importer == "top":
            continue
        for line, name in imported_modules(path):
            target = part_of(name)
            if target != importer and target not in ALLOWED[importer]:
                problems.append(f"{rel}:{line} ({importer}) imports {name} ({target})")
    return problems


def test_every_module_lives_in_a_part_or_is_top_level():
    stray = [p.name for p in PACKAGE.glob("*.py") if p.stem not in TOP_LEVEL]
    assert stray == []
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(ALLOWED)


def test_imports_run_one_way():
    assert wrong_way_imports() == []


def test_the_checker_sees_a_wrong_way_import(tmp_path, monkeypatch):
    """The rule is not vacuous: an import of the job from the store is reported."""
    fake = tmp_path / "snakesweep"
    for part in ALLOWED:
        (fake / part).mkdir(parents=True)
        (fake / part / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "job" / "launch.py").write_text("")
    (fake / "store" / "contract.py").write_text(
        "def f():\n    from snakesweep.job import launch\n    from ..job.launch import x\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert wrong_way_imports() == [
        "store/contract.py:2 (store) imports snakesweep.job.launch (job)",
        "store/contract.py:3 (store) imports snakesweep.job.launch (job)",
    ]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_says_what_it_is_for(part):
    assert ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text()))
