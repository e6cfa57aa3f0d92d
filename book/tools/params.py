"""Command-line parameters (`-p NAME VALUE`), checked against each chapter's `parameters` cell and
the registry's declaration of it (type, range) before any kernel starts."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Sequence

from book.core.registry import Chapter, available_chapters, get_chapter, parameter_error
from book.tools.paths import shown


class UsageError(ValueError):
    """Bad command-line input, reported before anything runs."""


def parse_value(text: str, name: str = "") -> Any:
    """A command-line parameter value: a Python literal when it is one (5, 0.1, True, 'x'), else a
    string. A value that is not UTF-8 (undecodable bytes in argv) is refused, naming the parameter.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        raise UsageError(
            f"the value of -p {name or '?'} is not UTF-8 text ({raw!r}): " f"give it in UTF-8"
        ) from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Name -> default value of the cell tagged `parameters` (None for a computed default)."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (
        ValueError,
        KeyError,
        AttributeError,
        UnicodeDecodeError,
    ) as err:  # NotJSONError is a ValueError
        raise UsageError(
            f"{shown(path)} is not a valid notebook (truncated or edited by hand?): "
            f"{str(err).splitlines()[0][:120]}"
        ) from None
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise UsageError(f"{path.name} has no cell tagged 'parameters'")
    params: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                params[node.targets[0].id] = None  # computed default: the registry says its type
    return params


def _same_kind(default: Any, value: Any) -> bool:
    """For a parameter the registry does not declare: the default's type (any, for None)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def resolve(
    names: Sequence[str], raw_params: Sequence[tuple[str, str]], quick: bool | None
) -> tuple[list[Chapter], dict[str, dict[str, Any]]]:
    """Check chapter names and parameters before anything runs; returns the chapters and, for each,
    the parameters papermill should inject (only the ones that chapter declares)."""
    chapters = [get_chapter(n) for n in names] if names else available_chapters()
    if not chapters:
        raise UsageError("no chapter notebooks found in notebooks/")
    for c in chapters:
        if not c.notebook.exists():
            raise UsageError(f"chapter {c.name!r} has no notebook yet ({shown(c.notebook)})")
    declared = {c.name: notebook_parameters(c.notebook) for c in chapters}
    given: dict[str, Any] = {}
    for name, text in raw_params:
        parse_value(name, "NAME")  # the name, too, must be text
        if name == "QUICK":
            raise UsageError("set QUICK with --quick or --full, not -p")
        if name in given:
            raise UsageError(f"parameter {name} is given twice (-p {name} ...): give it once")
        given[name] = parse_value(text, name)
    if quick is not None:
        given["QUICK"] = quick
    per_chapter: dict[str, dict[str, Any]] = {c.name: {} for c in chapters}
    for name, value in given.items():
        owners = [c for c in chapters if name in declared[c.name]]
        if not owners:
            known = sorted({p for d in declared.values() for p in d})
            raise UsageError(
                f"unknown parameter {name!r} for {', '.join(c.name for c in chapters)}; "
                f"known: {', '.join(known)}"
            )
        for c in owners:
            default = declared[c.name][name]
            if name not in c.parameters and not _same_kind(default, value):
                raise UsageError(
                    f"parameter {name} of chapter {c.name!r} takes "
                    f"{type(default).__name__} (default {default!r}), not {value!r}"
                )
            per_chapter[c.name][name] = value
    for c in chapters:  # each value given, against the registry's declaration (type, range)
        run_quick = per_chapter[c.name].get("QUICK", declared[c.name].get("QUICK", True))
        for name, value in per_chapter[c.name].items():
            problem = parameter_error(c, name, value, quick=run_quick)
            if problem:
                raise UsageError(problem)
    _check_extras(chapters, explicit=bool(names))
    return chapters, per_chapter


def _check_extras(chapters: Sequence[Chapter], explicit: bool) -> None:
    """Refuse chapters whose optional dependencies are missing, with the pip command, before any
    runs."""
    from book.core.session import extras_message

    problems = [m for m in (extras_message(c) for c in chapters) if m]
    if problems:
        lacking = [c.name for c in chapters if extras_message(c)]
        rest = [c.name for c in chapters if c.name not in lacking]
        hint = (
            ""
            if explicit or not rest
            else f"; or run the others: python -m book run {' '.join(rest)}"
        )
        raise UsageError("; ".join(problems) + hint)


__all__ = ["UsageError", "parse_value", "notebook_parameters", "resolve"]
