"""No text that the outputs do not support (issue 19): a ledger row's reasons agree with its verdict,
and a number a chapter's prose quotes is one its outputs (or its code, the post, the catalogue or the
data files) show."""
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from book.core.ledger import LEDGER_METADATA_KEY
from book.core.registry import CHAPTERS, DATA_FILES, REPO_ROOT

POSTS = REPO_ROOT.parent / "shared" / "posts"
PAGES = [(c.name, c.notebook) for c in CHAPTERS.values()] + [
    (c.name, REPO_ROOT / "results" / c.name / f"{c.name}.ipynb") for c in CHAPTERS.values()
    if (REPO_ROOT / "results" / c.name / f"{c.name}.ipynb").exists()]
FAILING_WORDS = re.compile(r"\b(differs|does not reproduce|outside the criterion|unexplained|not reproduced)\b", re.I)


def ledger_rows(page: Path) -> list[dict]:
    nb = json.loads(page.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            ledger = out.get("metadata", {}).get(LEDGER_METADATA_KEY)
            if ledger:
                return ledger["claims"]
    return []


@pytest.mark.parametrize("name,page", PAGES, ids=[f"{n}:{p.parent.name}" for n, p in PAGES])
def test_every_rows_reasons_agree_with_its_verdict(name, page):
    bad = []
    for row in ledger_rows(page):
        verdict, why, wrong = row["verdict"], row.get("why", ""), row.get("wrong", "")
        if verdict == "reproduced" and (wrong or FAILING_WORDS.search(why)):
            bad.append(f"{row['id']}: reproduced, but its reason reads as a failure: {wrong or why!r}")
        if verdict == "differs" and (not (wrong or why) or why.startswith("unexplained")):
            bad.append(f"{row['id']}: differs without saying what the post got wrong")
        if verdict == "undecided" and "cannot decide" not in why:
            bad.append(f"{row['id']}: undecided without saying the interval cannot decide")
    assert not bad, "\n".join(bad)


NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?(?=\s?%))")


@lru_cache(maxsize=None)
def outside_text() -> str:
    posts = " ".join(p.read_text(encoding="utf-8") for p in POSTS.glob("*.md")) if POSTS.exists() else ""
    data = " ".join(p.read_text(encoding="utf-8") for p in DATA_FILES.glob("*") if p.suffix in (".csv", ".txt"))
    return posts + (REPO_ROOT / "book" / "claims.md").read_text(encoding="utf-8") + data


def numbers_in(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]


def shown(value: str, candidates: list[float]) -> bool:
    """`value` (as the prose writes it) is a rounding of one of the candidates, as a number or a percentage."""
    decimals = len(value.split(".")[1]) if "." in value else 0
    target = float(value)
    return any(round(x, decimals) == target or round(100 * x, decimals) == target for x in candidates)


@pytest.mark.parametrize("name", sorted(CHAPTERS))
def test_numbers_quoted_in_a_chapters_prose_are_shown_by_its_outputs(name):
    nb = json.loads(CHAPTERS[name].notebook.read_text(encoding="utf-8"))
    generated = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        generated.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            generated.append("".join(out.get("text", "")))
            for kind, value in out.get("data", {}).items():
                if kind.startswith("text/"):
                    generated.append("".join(value) if isinstance(value, list) else value)
    code = REPO_ROOT.joinpath(*CHAPTERS[name].code.split("."))   # the chapter's own package or module
    sources = sorted(code.rglob("*.py")) if code.is_dir() else [code.with_suffix(".py")]
    generated += [p.read_text(encoding="utf-8") for p in sources]
    candidates = numbers_in(" ".join(generated) + outside_text())
    unsupported = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        prose = re.sub(r"\$[^$]*\$|\]\([^)]*\)|`[^`]*`", " ", "".join(cell["source"]))  # math, links, code
        unsupported += [v for v in NUMBER.findall(prose) if not shown(v, candidates)]
    assert not unsupported, (f"{name}: the prose quotes {unsupported}, which no output, code (notebook or "
                             "chapter module), post, catalogue or data file shows; print it from the "
                             "measurement or drop it")
