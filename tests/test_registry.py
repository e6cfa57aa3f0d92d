"""book.core.registry: each chapter's notebook, code and parameters. Every parameter of every
notebook's `parameters` cell is declared (its type, also where the default is None, and the values
that can work), its default satisfies the declaration, and a value that cannot work is refused by
the runner before any kernel starts (issue 20), naming the parameter and the chapter."""

import importlib

import pytest

from book.core import registry
from book.core.registry import (
    CHAPTERS,
    available_chapters,
    check_parameter_value,
    get_chapter,
    parameter_error,
)
from book.core.session import missing_extras
from book.tools.params import UsageError, notebook_parameters, resolve


def test_the_registry_names_each_chapters_code_and_notebook():
    for chapter in CHAPTERS.values():
        importlib.util.find_spec(chapter.code) or pytest.fail(f"{chapter.code} does not exist")
        assert chapter.notebook.name == f"{chapter.name}.ipynb"
    with pytest.raises(ValueError, match="known chapters: dp, mp"):
        get_chapter("convolution")


@pytest.mark.parametrize("chapter", available_chapters(), ids=lambda c: c.name)
def test_every_notebook_parameter_is_declared_and_its_default_fits(chapter):
    defaults = notebook_parameters(chapter.notebook)
    assert set(defaults) == set(
        chapter.parameters
    ), f"{chapter.name}: the parameters cell and the registry disagree"
    for name, default in defaults.items():
        assert parameter_error(chapter, name, default, quick=defaults.get("QUICK", True)) == "", (
            name,
            default,
        )


def test_a_none_default_has_a_declared_type():
    """The issue's case: `-p SENTENCES_PER_POST abc` failed in the kernel, not before it."""
    for chapter in available_chapters():
        for name, default in notebook_parameters(chapter.notebook).items():
            if default is None:
                assert (
                    type(None) in chapter.parameters[name].kinds()
                    and len(chapter.parameters[name].kinds()) > 1
                )


# (chapter, parameter, a value that cannot work, what the refusal says)
REFUSED = [
    ("dp", "WORKERS", 1000, "larger than allowed here"),
    ("dp", "WORKERS", 1, "at least 2"),
    ("dp", "WORKERS", 2.0, "takes int"),
    ("mp", "WORKERS", 3, "one of 2, 4"),
    ("mp", "WORKERS", 1000, "one of 2, 4"),
    ("brain", "BOOT_BLOCK", 0, "at least 1"),
    ("brain", "BOOT_BLOCK", -4, "at least 1"),
    ("predictions", "BOOT_BLOCK", 0, "at least 1"),
    ("predictions", "AS_OF", "yesterday", "AS_OF"),
    ("predictions", "AS_OF", 2026, "takes str"),
    ("int8", "SENTENCES_PER_POST", "abc", "takes int or None"),
    ("int8", "SENTENCES_PER_POST", 0, "at least 1"),
    ("int8", "THRESHOLD", 0, "above 0"),
    ("int8", "THRESHOLD", float("nan"), "finite"),
    ("int8", "FAMILY", "", "FAMILY must list model names"),
    ("int8", "FAMILY", "facebook/opt-125m,,x", "FAMILY must list model names"),
    ("sparse", "RERUN_SWEEPS", "yes", "takes bool"),
    ("sparse", "CIFAR_EPOCHS", 0, "at least 1"),
    ("sparse", "CIFAR_ROOT", "", "CIFAR_ROOT must name a folder"),
    ("conv", "SEED", -1, "SEED=-1"),
    ("gpu", "DEVICE", "meta", "DEVICE='meta'"),
    ("conv", "QUICK", "False", "takes bool"),
]


@pytest.mark.parametrize("chapter,name,value,says", REFUSED, ids=lambda x: str(x))
def test_a_value_that_cannot_work_is_refused(chapter, name, value, says):
    problem = parameter_error(chapter, name, value, quick=True)
    assert says in problem and name in problem, problem
    with pytest.raises(ValueError, match=name):
        check_parameter_value(chapter, name, value, quick=True)


ACCEPTED = [
    ("dp", "WORKERS", 2),
    ("dp", "WORKERS", 4),
    ("mp", "WORKERS", 4),
    ("brain", "BOOT_BLOCK", 1),
    ("int8", "SENTENCES_PER_POST", None),
    ("int8", "SENTENCES_PER_POST", 12),
    ("int8", "THRESHOLD", 6),
    ("int8", "FAMILY", "facebook/opt-125m"),
    ("predictions", "AS_OF", "2025-06"),
    ("sparse", "RERUN_SWEEPS", False),
    ("conv", "SEED", 2**32 - 1),
]


@pytest.mark.parametrize("chapter,name,value", ACCEPTED, ids=lambda x: str(x))
def test_a_value_that_can_work_is_accepted(chapter, name, value):
    assert parameter_error(chapter, name, value, quick=True) == ""


def test_a_full_only_parameter_needs_full_mode():
    assert "needs full mode" in parameter_error("sparse", "RERUN_SWEEPS", True, quick=True)
    assert parameter_error("sparse", "RERUN_SWEEPS", True, quick=False) == ""


def test_checks_in_a_chapters_code_are_left_to_it_inside_the_kernel():
    """The machinery runs no chapter code (book.start in a kernel): the chapter checks itself
    there."""
    assert parameter_error("dp", "WORKERS", 1000, chapter_checks=False) == ""
    assert "at least 2" in parameter_error("dp", "WORKERS", 1, chapter_checks=False)
    assert registry.CHAPTERS["dp"].parameters["WORKERS"].check.startswith("book.chapters.")


# (r[2] == r[2]: not the NaN, which no -p literal gives)
@pytest.mark.parametrize(
    "chapter,name,value,says",
    [r for r in REFUSED if r[1] != "QUICK" and r[2] == r[2]],
    ids=lambda x: str(x),
)
def test_the_runner_refuses_it_before_any_kernel(chapter, name, value, says):
    if missing_extras(chapter):
        pytest.skip(f"{chapter}'s optional dependencies are not installed")
    with pytest.raises(UsageError, match=name) as err:
        resolve([chapter], [(name, repr(value))], quick=None)
    assert says in str(err.value)


def test_the_runner_refuses_rerun_sweeps_in_quick_mode():
    with pytest.raises(UsageError, match="needs full mode"):
        resolve(["sparse"], [("RERUN_SWEEPS", "True")], quick=True)
    _, per_chapter = resolve(["sparse"], [("RERUN_SWEEPS", "True")], quick=False)
    assert per_chapter["sparse"] == {"RERUN_SWEEPS": True, "QUICK": False}
