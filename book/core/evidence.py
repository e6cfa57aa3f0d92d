"""Committed full-mode evidence: `results/<chapter>/`.

Each chapter's last full run lives there: its executed notebook (`<chapter>.ipynb`, the page the
book shows), its ledger (`ledger.json`) and the data behind its training-based figures and tables
(`<name>.json`), every file stamped with its provenance (commit, date, device, versions, wall time,
the command that made it). Claims that need scale (converged accuracy, long sweeps) take their
verdict from these files, in quick and full mode alike: the quick run repeats the same code path
at small sizes as a smoke check, never as the verdict. Expensive sweeps are saved once and re-read;
rerunning them is an explicit choice (a chapter parameter, or `python -m book evidence NAME`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from book.core.registry import REPO_ROOT, get_chapter
from book.core.ledger import notebook_ledger  # noqa: F401  (evidence.notebook_ledger: the pages' ledger)
from book.core.provenance import collect

RESULTS_DIR = Path(os.environ.get("DETTMERS_BOOK_RESULTS") or REPO_ROOT / "results")


@dataclass(frozen=True)
class Evidence:
    chapter: str
    name: str
    path: Path
    data: Any
    provenance: dict[str, Any]

    @property
    def relpath(self) -> str:
        try:
            return str(self.path.relative_to(RESULTS_DIR.parent))
        except ValueError:
            return str(self.path)

    @property
    def label(self) -> str:
        p = self.provenance
        when = str(p.get("date", "undated"))[:10]
        return f"{self.relpath} ({p.get('mode', 'full')}, {p.get('device', '?')}, {when})"

    def as_ledger_evidence(self) -> dict[str, Any]:
        p = self.provenance
        return {
            "label": self.label,
            "path": self.relpath,
            "mode": p.get("mode", "full"),
            "device": p.get("device"),
            "device_name": p.get("device_name"),
            "date": p.get("date"),
            "commit": p.get("commit"),
        }


def path_of(chapter: str, name: str) -> Path:
    get_chapter(chapter)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"evidence name {name!r}: a plain file stem, e.g. 'lenet300'")
    return RESULTS_DIR / chapter / f"{name}.json"


def load(chapter: str, name: str) -> Evidence:
    """The committed evidence `results/<chapter>/<name>.json`, or a FileNotFoundError that says how
    to make it."""
    path = path_of(chapter, name)
    if not path.exists():
        raise FileNotFoundError(
            f"committed evidence {path} is missing: it comes with a clone of the repository (the "
            f"Colab install cell clones it); to make it anew run the chapter in full mode with its "
            f"sweeps rerun (see the chapter's parameters) or `python -m book evidence {chapter}`"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or "provenance" not in record or "data" not in record:
        raise ValueError(f"{path} is not an evidence file (needs 'provenance' and 'data')")
    return Evidence(chapter, name, path, record["data"], record["provenance"])


def exists(chapter: str, name: str) -> bool:
    return path_of(chapter, name).exists()


def save(
    chapter: str,
    name: str,
    data: Any,
    *,
    command: str,
    device: Any = "cpu",
    wall_s: float | None = None,
    mode: str = "full",
    note: str = "",
) -> Path:
    """Write `data` as committed evidence with its provenance (atomically: a killed run leaves the
    old file)."""
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', not {mode!r}")
    path = path_of(chapter, name)
    provenance = collect(device)
    provenance.update(
        {"mode": mode, "command": command, "wall_s": None if wall_s is None else round(wall_s, 1)}
    )
    if note:
        provenance["note"] = note
    write_atomic(
        path,
        json.dumps({"provenance": provenance, "data": data}, indent=1, ensure_ascii=False) + "\n",
    )
    return path


def page_notebook(chapter: str) -> Path | None:
    """The committed full-mode notebook of a chapter (what the book shows), if there is one."""
    path = RESULTS_DIR / chapter / f"{chapter}.ipynb"
    return path if path.exists() else None


MANIFEST = "MANIFEST.json"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a killed run or a full disk never leaves half a
    file under the real name (nor a temporary file behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# the cells a page may differ in from its notebook
SKIPPED_CELL_TAGS = ("injected-parameters", "install")


class EvidenceError(RuntimeError):
    """Stored evidence that is not consistent: with its notebook, its manifest or itself."""


def _shown(path: Path) -> str:
    for root in (RESULTS_DIR.parent, REPO_ROOT):
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            continue
    return str(path)


def read_notebook(path: str | os.PathLike) -> dict[str, Any]:
    """A notebook's JSON, or an EvidenceError naming the file when it is truncated or not a
    notebook."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise EvidenceError(
            f"{_shown(path)} is not UTF-8 text ({err.reason} at byte {err.start}): "
            f"the file is damaged"
        ) from None
    except ValueError as err:
        raise EvidenceError(
            f"{_shown(path)} is not a valid notebook (truncated or edited?): "
            f"invalid JSON at line {getattr(err, 'lineno', '?')}, column "
            f"{getattr(err, 'colno', '?')}"
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise EvidenceError(f"{_shown(path)} is not a notebook (no list of cells)")
    return nb


def digest(path: Path) -> str:
    """The sha256 a manifest lists for a stored file: of its bytes; for a notebook, of its JSON with
    sorted keys and the install cell left out (`python -m book sync-install` rewrites that
    cell in stored pages; nothing else may change)."""
    path = Path(path)
    if path.suffix != ".ipynb":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    nb = read_notebook(path)
    nb["cells"] = [  # the install cell: its place only (sync-install rewrites its source and tags)
        {"install cell": True} if "install" in ((c.get("metadata") or {}).get("tags") or []) else c
        for c in nb["cells"]
    ]
    canonical = json.dumps(nb, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _remedy(chapter: str) -> str:
    return f"remake it: python -m book evidence {chapter}"


def publish_run(
    chapter: str, executed_notebook: Path, ledger_json: Path | None = None, *, command: str = ""
) -> Path:
    """Store a successful full run as the chapter's evidence: its executed notebook, the ledger that
    notebook carries (`ledger.json`) and `MANIFEST.json` (sha256 of every stored file, the commit,
    the command). Refuses a quick run, a notebook without a finished ledger (an interrupted or
    failed run), and a run whose ledger file `ledger_json` is not the ledger its notebook carries
    (another process wrote it meanwhile): then nothing is stored and results/ is left as it was."""
    from book.core.ledger import LEDGER_METADATA_KEY

    executed_notebook = Path(executed_notebook)
    nb = read_notebook(executed_notebook)
    ledger = notebook_ledger(nb)
    if ledger is None:
        raise EvidenceError(
            f"{_shown(executed_notebook)} carries no finished ledger: not a complete run"
        )
    if ledger.get("mode") != "full":
        raise EvidenceError(
            f"{_shown(executed_notebook)} is a {ledger.get('mode')} run; evidence is a full run"
        )
    if ledger.get("chapter") != chapter:
        raise EvidenceError(
            f"{_shown(executed_notebook)} carries the ledger of chapter "
            f"{ledger.get('chapter')!r}, not {chapter!r}"
        )
    if ledger_json is not None and Path(ledger_json).exists():
        try:
            side = json.loads(Path(ledger_json).read_text(encoding="utf-8"))
        except ValueError:
            side = None
        if side != ledger:
            raise EvidenceError(
                f"{_shown(Path(ledger_json))} is not the ledger {_shown(executed_notebook)} "
                f"carries (its {LEDGER_METADATA_KEY!r} metadata): another process wrote it while "
                f"the chapter ran (a notebook run by hand?); nothing was stored: run `python -m "
                f"book evidence {chapter}` again with nobody else running the chapter"
            )
    folder = RESULTS_DIR / chapter
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "ledger.json", json.dumps(ledger, indent=1, ensure_ascii=False) + "\n")
    write_atomic(folder / f"{chapter}.ipynb", executed_notebook.read_text(encoding="utf-8"))
    write_manifest(chapter, command=command)
    return folder


def stored_files(chapter: str) -> list[Path]:
    """Every file stored in results/<chapter>/ (not the manifest, not hidden temporary files)."""
    folder = RESULTS_DIR / chapter
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    )


def write_manifest(chapter: str, *, command: str = "") -> Path:
    """results/<chapter>/MANIFEST.json: the sha256 of every stored file, the commit, the command."""
    from book.core.provenance import git_commit

    files = {p.name: digest(p) for p in stored_files(chapter)}
    record = {
        "chapter": chapter,
        **git_commit(),
        "command": command or f"python -m book evidence {chapter}",
        "files": files,
        "digest": "sha256 of each file (a notebook: of its JSON with sorted keys, "
        "the install cell left out)",
    }
    path = RESULTS_DIR / chapter / MANIFEST
    write_atomic(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return path


def _cells(nb: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(number, type, source) of a notebook's code and markdown cells, without the injected
    parameters and the install cell."""
    found = []
    for number, cell in enumerate(nb.get("cells", []), 1):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") not in ("code", "markdown") or any(
            t in tags for t in SKIPPED_CELL_TAGS
        ):
            continue
        source = cell.get("source", "")
        found.append(
            (number, cell["cell_type"], "".join(source) if isinstance(source, list) else source)
        )
    return found


def check_page(chapter: str) -> None:
    """Hold results/<chapter>/ to itself, its manifest and the chapter's notebook; an EvidenceError
    (one line: the file, what is wrong, the remedy) at the first problem. Nothing stored: fine."""
    from book.core.registry import get_chapter

    folder = RESULTS_DIR / chapter
    stored = stored_files(chapter)
    if not stored:
        return
    remedy = _remedy(chapter)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise EvidenceError(
            f"{_shown(manifest_path)} is missing: nothing vouches for the files in "
            f"{_shown(folder)}/; {remedy}"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise EvidenceError(
            f"{_shown(manifest_path)} is not a valid manifest (truncated or edited?); " f"{remedy}"
        ) from None
    for path in stored:
        if path.name not in listed:
            raise EvidenceError(
                f"{_shown(path)} is not in {MANIFEST} (added by hand, or written since the run "
                f"was stored?); {remedy}"
            )
        if digest(path) != listed[path.name]:
            raise EvidenceError(
                f"{_shown(path)} is not the file `python -m book evidence` stored (its sha256 "
                f"differs from {MANIFEST}: edited by hand?); {remedy}"
            )
    for name in listed:
        if not (folder / name).exists():
            raise EvidenceError(
                f"{_shown(folder / name)} is listed in {MANIFEST} but missing; {remedy}"
            )
    page = folder / f"{chapter}.ipynb"
    if not page.exists():
        return  # data files only (evidence.save), no page: the book shows the quick notebook
    nb = read_notebook(page)
    ledger = notebook_ledger(nb)
    ledger_path = folder / "ledger.json"
    if ledger is None:
        raise EvidenceError(f"{_shown(page)} carries no ledger; {remedy}")
    if not ledger_path.exists():
        raise EvidenceError(f"{_shown(ledger_path)} is missing; {remedy}")
    try:
        stored_ledger = json.loads(ledger_path.read_text(encoding="utf-8"))
    except ValueError:
        raise EvidenceError(
            f"{_shown(ledger_path)} is not valid JSON (truncated?); {remedy}"
        ) from None
    if stored_ledger != ledger:
        raise EvidenceError(
            f"{_shown(ledger_path)} is not the ledger {_shown(page)} carries; {remedy}"
        )
    if ledger.get("mode") != "full":
        raise EvidenceError(
            f"{_shown(page)} is a {ledger.get('mode')} run, not a full one; {remedy}"
        )
    notebook = get_chapter(chapter).notebook
    if notebook.exists():
        quick = read_notebook(notebook)
        _check_shared_verdicts(page, ledger, notebook, notebook_ledger(quick), remedy)
        mine, theirs = _cells(nb), _cells(quick)
        for a, b in zip(mine, theirs):
            if a[1:] != b[1:]:
                raise EvidenceError(
                    f"{_shown(page)} differs from {_shown(notebook)} in its {a[1]} cell "
                    f"{a[0]} (stale, or edited by hand); {remedy}"
                )
        if len(mine) != len(theirs):
            raise EvidenceError(
                f"{_shown(page)} has {len(mine)} cells, {_shown(notebook)} {len(theirs)} "
                f"(stale, or edited by hand); {remedy}"
            )


def _check_shared_verdicts(
    page: Path, full: dict[str, Any], notebook: Path, quick: dict[str, Any] | None, remedy: str
) -> None:
    """A claim whose verdict both runs take from the same committed evidence (results/...), and not
    from a timing, is decided by the same code on the same data: its verdict must agree."""
    if not quick:
        return
    rows = {r.get("id"): r for r in quick.get("claims", [])}
    for row in full.get("claims", []):
        other = rows.get(row.get("id"))
        source = (row.get("evidence") or {}).get("path")
        if not other or not source or row.get("timed") or other.get("timed"):
            continue
        if (other.get("evidence") or {}).get("path") == source and other.get("verdict") != row.get(
            "verdict"
        ):
            raise EvidenceError(
                f"{_shown(page)} says {row.get('id')} {row.get('verdict')}, {_shown(notebook)} "
                f"says {other.get('verdict')}, both from {source}: one of them is stale or "
                f"edited; {remedy} (and python -m book run {full.get('chapter')} --inplace)"
            )


def check_pages(chapters: list[str] | None = None) -> None:
    """`check_page` for every chapter (default: all that have stored evidence)."""
    from book.core.registry import CHAPTERS

    for name in chapters if chapters is not None else list(CHAPTERS):
        check_page(name)


__all__ = [
    "Evidence",
    "load",
    "save",
    "exists",
    "page_notebook",
    "publish_run",
    "write_manifest",
    "check_page",
    "check_pages",
    "read_notebook",
    "notebook_ledger",
    "EvidenceError",
    "MANIFEST",
    "RESULTS_DIR",
]
