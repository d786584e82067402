"""The layout keeps the architecture: the rules core imports nothing outside itself, rules import
the state and never the engine, and no module of the core imports one that imports it back."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "src" / "tokenmall" / "core"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The tokenmall modules a module imports when it runs (not those it names only for type
    checking, under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("tokenmall.")}


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in CORE.rglob("*.py")}
    return {
        name: {target for target in imports_of(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def test_the_core_imports_nothing_outside_it() -> None:
    for path in CORE.rglob("*.py"):
        outside = {m for m in imports_of(path) if not m.startswith("tokenmall.core")}
        assert not outside, f"{module_name(path)} imports {outside}"


def test_rules_import_the_state_not_the_engine() -> None:
    graph = core_graph()
    for name, targets in graph.items():
        if name.startswith("tokenmall.core.rules"):
            assert "tokenmall.core.engine" not in targets, name


def test_no_import_cycle_in_the_core() -> None:
    edges = core_graph()  # packages too: importing one runs its __init__'s imports
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for target in sorted(edges.get(name, ())):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(edges):
        visit(name)
    assert len(done) >= 15  # the walk saw the core
