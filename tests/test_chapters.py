"""The chapter conventions, checked on every committed notebook; and the book's table of contents."""
import re

import nbformat
import pytest

from book.core.registry import CHAPTERS, REPO_ROOT, available_chapters
from book.tools.colab import chapter_install_source, install_cell_source, repository_url
from book.core.ledger import VERDICTS, claim_ids
from book.tools.params import notebook_parameters

NOTEBOOKS = available_chapters()


def _tagged(nb, tag):
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def _output_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            parts += [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_there_are_chapters():
    assert any(c.name == "conv" for c in NOTEBOOKS)


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=[c.name for c in NOTEBOOKS])
def test_chapter_follows_the_conventions(chapter):
    nb = nbformat.read(chapter.notebook, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert chapter.post_url in first.source, "the first cell links the post"

    install = _tagged(nb, "install")
    assert install and install[0].source == chapter_install_source(chapter, chapter.notebook), \
        "run `python -m book sync-install`"

    params = notebook_parameters(chapter.notebook)
    assert params["QUICK"] is True, "committed notebooks are the quick (CI) run"
    assert params["DEVICE"] == "auto" and isinstance(params["SEED"], int)

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[-1].source.strip() == "ledger.finish()", "the chapter ends with its ledger"
    assert all(c.get("execution_count") for c in code if c.source.strip()), "committed with executed outputs"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"committed outputs hold an error: {errors[0].get('ename')}"


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=[c.name for c in NOTEBOOKS])
def test_every_claim_shows_a_verdict_in_the_committed_outputs(chapter):
    text = _output_text(nbformat.read(chapter.notebook, as_version=4))
    ids = [cid for p in chapter.prefixes for cid in claim_ids(p)]
    missing = [cid for cid in ids
               if not re.search(re.escape(cid) + r"(?!\d)\s+[⟨‹]?(" + "|".join(VERDICTS) + ")", text)]
    assert not missing, f"no verdict shown for {missing}"


def _pages(chapter):
    from book.core.evidence import page_notebook

    return [p for p in (chapter.notebook, page_notebook(chapter.name)) if p]


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=[c.name for c in NOTEBOOKS])
def test_every_committed_ledger_is_complete_and_every_check_can_fail(chapter):
    """The ledger each committed page carries: every id, a `fails_if` on every measured verdict, and
    no verdict masked from nbval unless it is a timing's (check_interval)."""
    from book.core.ledger import ledger_from_notebook

    ids = [cid for p in chapter.prefixes for cid in claim_ids(p)]
    for page in _pages(chapter):
        ledger = ledger_from_notebook(page)
        assert ledger, f"{page} carries no finished ledger"
        assert [row["id"] for row in ledger["claims"]] == ids, f"{page}: ledger ids differ from claims.md"
        no_fail = [row["id"] for row in ledger["claims"]
                   if row["verdict"] not in ("cited", "needs-gpu", "needs-resource") and not row.get("fails_if")]
        assert not no_fail, f"{page}: no fails_if for {no_fail}"
        assert ledger.get("provenance", {}).get("versions"), f"{page}: ledger without provenance"


def test_the_toc_lists_exactly_the_chapters_present_in_book_order():
    toc = (REPO_ROOT / "_toc.yml").read_text()
    listed = re.findall(r"file:\s*notebooks/(\w+)", toc)
    assert listed == [c.name for c in NOTEBOOKS]
    assert "file: scoreboard" in toc


def test_the_landing_page_names_every_chapter_and_post():
    intro = (REPO_ROOT / "intro.md").read_text()
    for chapter in CHAPTERS.values():
        assert f"notebooks/{chapter.name}.ipynb" in intro and chapter.post_url in intro


def test_the_repository_url_lives_in_config():
    assert repository_url().startswith("https://")
    assert repository_url() in install_cell_source()


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=[c.name for c in NOTEBOOKS])
def test_every_chapter_has_committed_full_mode_evidence_with_provenance(chapter):
    """results/NAME/: the last full run's notebook (the page the book shows) and ledger, stamped with
    commit, date, device, versions, wall time and the command that made it."""
    import json

    from book.core.evidence import RESULTS_DIR
    from book.core.ledger import ledger_from_notebook

    folder = RESULTS_DIR / chapter.name
    ledger = json.loads((folder / "ledger.json").read_text(encoding="utf-8"))
    assert ledger["mode"] == "full" and ledger["chapter"] == chapter.name
    prov = ledger["provenance"]
    for key in ("commit", "date", "device", "device_name", "versions"):
        assert prov.get(key), f"{chapter.name}: provenance lacks {key}"
    assert prov["versions"].get("torch") and prov["versions"].get("python")
    command = ledger["command"].split()
    made_full = (f"run {chapter.name} --full" in ledger["command"]
                 or ("evidence" in command and chapter.name in command[command.index("evidence") + 1:]))
    assert ledger["wall_s"] > 0 and made_full, ledger["command"]
    page = ledger_from_notebook(folder / f"{chapter.name}.ipynb")
    assert page == ledger, f"{chapter.name}: the stored notebook and ledger.json are from different runs"
    unexplained = [r["id"] for r in ledger["claims"] if "unexplained" in (r.get("why") or "")]
    assert not unexplained, f"{chapter.name}: full-mode claims left unexplained: {unexplained}"


# Thin notebooks (issue 18): the code cells read like the post; the plumbing lives in the package.
MAX_CODE_LINE = 100
MAX_BOOK_CODE_LINES = 2000   # non-blank code-cell lines of all chapters (2,388 before the move)


def _code_lines(nb) -> list[str]:
    return [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines() if line.strip()]


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=[c.name for c in NOTEBOOKS])
def test_one_code_convention_in_every_chapter(chapter):
    nb = nbformat.read(chapter.notebook, as_version=4)
    lines = _code_lines(nb)
    long = [line for line in lines if len(line) > MAX_CODE_LINE]
    assert not long, f"{chapter.name}: {len(long)} code lines over {MAX_CODE_LINE} characters: {long[:2]}"
    source = "\n".join(lines)
    assert "S.quick" not in source, f"{chapter.name}: read the QUICK parameter, not S.quick"
    assert not re.search(r"^\s*_ = ledger\.", source, re.M), f"{chapter.name}: a ledger call is a statement"


def test_the_notebooks_are_thin():
    counts = {c.name: len(_code_lines(nbformat.read(c.notebook, as_version=4))) for c in NOTEBOOKS}
    assert sum(counts.values()) <= MAX_BOOK_CODE_LINES, counts
