"""The package's two layers, as the tree shows them: the machinery (book.core) imports no chapter and
no tool; a chapter's code (book.chapters.X) imports the machinery and itself, never the tools; each
notebook imports only the machinery and its own chapter's code (the registry names it). No import
cycles, and no private name imported across modules."""
import ast
import json
from functools import lru_cache
from pathlib import Path

import pytest

from book.core.registry import CHAPTERS, REPO_ROOT

BOOK = REPO_ROOT / "book"
# A chapter that builds on another's public result, declared here (the forecasts re-read the brain fit).
CHAPTER_DEPENDENCIES = {"predictions": {"book.chapters.brain"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(tree: ast.AST, current: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(module, names) for every import anywhere in the tree (function-level imports included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = current.split(".") if is_package else current.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            found.append((base, [a.name for a in node.names]))
    return found


@lru_cache(maxsize=None)
def package_modules() -> dict[str, list[tuple[str, list[str]]]]:
    out = {}
    for path in BOOK.rglob("*.py"):
        name = module_name(path)
        out[name] = imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
    return out


def test_the_machinery_imports_no_chapter_and_no_tool():
    bad = [(m, dep) for m, deps in package_modules().items() if m.startswith("book.core")
           for dep, _ in deps if dep.startswith(("book.chapters", "book.tools"))]
    assert not bad, f"book.core must not import chapters or tools: {bad}"


def test_chapter_code_imports_the_machinery_and_itself_only():
    bad = []
    for m, deps in package_modules().items():
        if not m.startswith("book.chapters."):
            continue
        own = ".".join(m.split(".")[:3])
        allowed = {own} | CHAPTER_DEPENDENCIES.get(own.split(".")[2], set())
        for dep, names in deps:
            if dep.startswith("book.tools") or (dep.startswith("book.chapters.") and
                                                 ".".join(dep.split(".")[:3]) not in allowed):
                bad.append((m, dep))
            if dep == "book.chapters" and any(f"book.chapters.{n}" not in allowed for n in names):
                bad.append((m, f"{dep}: {names}"))
    assert not bad, f"a chapter's code may import only book.core and its own package: {bad}"


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_a_notebook_imports_only_the_machinery_and_its_own_chapter(chapter):
    info = CHAPTERS[chapter]
    nb = json.loads(info.notebook.read_text(encoding="utf-8"))
    bad = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for dep, names in imports(tree, "__main__", False):
            if not dep.startswith("book"):
                continue
            targets = [f"{dep}.{n}" for n in names] if dep in ("book", "book.chapters", "book.core") else [dep]
            for target in targets:
                if target.startswith("book.tools") or (target.startswith("book.chapters.") and
                                                       not target.startswith(info.code)):
                    bad.append(target)
    assert not bad, f"{chapter}: imports {bad}; a notebook uses book.core and {info.code} only"


def test_no_private_name_is_imported_across_modules():
    bad = [(m, dep, n) for m, deps in package_modules().items() for dep, names in deps
           if dep.startswith("book") and dep != m for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, f"private names imported from another module: {bad}"


def test_no_import_cycle_among_the_package_modules():
    graph = {m: {d for d, _ in deps if d.startswith("book") and d != m} for m, deps in package_modules().items()}
    for m, deps in graph.items():  # `from pkg import mod` imports pkg.mod
        deps |= {f"{d}.{n}" for d, names in package_modules()[m] for n in names if f"{d}.{n}" in graph}
    # a package's __init__ re-exporting its modules is not a cycle with them
    edges = {m: {d for d in deps if d in graph and not m.startswith(d + ".") and not d.startswith(m + ".")}
             for m, deps in graph.items()}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(edges[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(edges):
        visit(node)
    assert not cycles, f"import cycles: {cycles[:3]}"
