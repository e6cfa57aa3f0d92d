"""The package as pip (and the Colab install) sees it: every subpackage and data file ships."""
import tomllib

from setuptools import find_packages

from book.core.registry import REPO_ROOT


def test_every_subpackage_is_packaged():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    on_disk = {str(p.parent.relative_to(REPO_ROOT)).replace("/", ".") for p in (REPO_ROOT / "book").rglob("__init__.py")}
    assert on_disk <= set(find_packages(where=str(REPO_ROOT), include=include)), "a subpackage of book/ would not ship"


def test_the_data_files_ship():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["book"]
    assert "claims.md" in patterns and "data_files/*" in patterns
    nested = [p for p in (REPO_ROOT / "book" / "data_files").rglob("*") if p.is_file() and p.parent.name != "data_files"]
    assert not nested, f"data_files/* does not reach into subfolders: {nested}"
