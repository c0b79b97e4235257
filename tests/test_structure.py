"""The package's shape: imports go one way (no cycle, ``TYPE_CHECKING`` imports included) and resolve; modules stay small."""

from __future__ import annotations

import ast
import gc
import pathlib

import pytest

import desktop_widget

ROOT = pathlib.Path(desktop_widget.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(modules: dict[str, pathlib.Path], name: str) -> set[str]:
    """The package's modules that ``name`` imports: ``from . import``, ``from ._x import``, ``_lazy.module``."""
    path = modules[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
            if base in modules:
                found.add(base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & modules.keys()
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith(".")
        ):
            found.add(package + node.args[0].value)  # _lazy.module("._x", __package__)
    # A module reaches its own package's __init__ on import anyway: not an edge.
    return found - {name} - {p for p in found if name.startswith(p + ".")}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    edges = {name: _imports(modules, name) for name in modules}
    assert edges["desktop_widget"], "the walker found no import at all: it is broken"
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or [])


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_a_window_does_not_keep_its_desktop():
    pytest.importorskip("Xlib")
    from desktop_widget._errors import DesktopStopped
    from desktop_widget.control._windows import Window, XHandle

    class Owner:
        def with_x(self):
            raise AssertionError("not called")

    owner = Owner()
    window = Window(1, "t", "c", "i", None, (0, 0, 1, 1), False, _handle=XHandle(owner.with_x))
    del owner
    gc.collect()
    with pytest.raises(DesktopStopped, match="gone"):
        window.activate()


def test_no_module_over_500_lines():
    """A module should fit in one screen of thought: split one that grows past this."""
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_every_relative_import_names_a_module_of_the_package():
    """A merge of code written before the split into sub-packages must not keep a flat ``from . import _x``."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    missing = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                if base not in modules:
                    missing.append(f"{name}:{node.lineno} {base}")
                elif node.module is None:
                    missing += [
                        f"{name}:{node.lineno} {base}.{a.name}" for a in node.names if f"{base}.{a.name}" not in modules
                    ]
    assert missing == []


README = ROOT.parent / "README.md"


def _readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_names_every_part():
    """The "How it fits together" table names every module, sub-package and view file, so the docs cannot drift."""
    section = _readme_section("How it fits together")
    parts = [p.name for p in ROOT.rglob("*.py") if p.name != "__init__.py"] + ["__init__.py"]
    parts += [f"{p.name}/" for p in ROOT.iterdir() if p.is_dir() and p.name not in ("__pycache__", "icons")]
    parts += [p.name for p in (ROOT.parent / "js").iterdir() if p.suffix in (".js", ".mjs", ".css")]
    missing = sorted({name for name in parts if name not in section})
    assert missing == [], f"README.md, 'How it fits together', does not name: {missing}"


def test_readme_lists_every_test_file():
    section = _readme_section("Development")
    missing = sorted(p.name for p in (ROOT.parent / "tests").glob("test_*.py") if p.name not in section)
    assert missing == [], f"README.md, 'Development', does not list: {missing}"


def test_no_benchmark_file_over_500_lines():
    """The benchmarks follow the package's rule: each file fits in one screen of thought."""
    bench = ROOT.parent / "benchmarks"
    files = [*bench.glob("*.py"), *bench.glob("*.js")]
    long = {p.name: n for p in files if (n := len(p.read_text().splitlines())) > 500}
    assert files
    assert long == {}
