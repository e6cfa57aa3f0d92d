"""Committed full-mode evidence: `results/<chapter>/`.

Each chapter's last full run lives there: its executed notebook (`<chapter>.ipynb`, the page the book
shows), its ledger (`ledger.json`) and the data behind its training-based figures and tables
(`<name>.json`), every file stamped with its provenance (commit, date, device, versions, wall time,
the command that made it). Claims that need scale (converged accuracy, long sweeps) take their
verdict from these files, in quick and full mode alike: the quick run repeats the same code path
at small sizes as a smoke check, never as the verdict. Expensive sweeps are saved once and re-read;
rerunning them is an explicit choice (a chapter parameter, or `python -m book evidence NAME`).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from book.core.registry import REPO_ROOT, get_chapter
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
        return {"label": self.label, "path": self.relpath, "mode": p.get("mode", "full"),
                "device": p.get("device"), "device_name": p.get("device_name"), "date": p.get("date"),
                "commit": p.get("commit")}


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
            f"committed evidence {path} is missing: it comes with a clone of the repository (the Colab "
            f"install cell clones it); to make it anew run the chapter in full mode with its sweeps "
            f"rerun (see the chapter's parameters) or `python -m book evidence {chapter}`")
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or "provenance" not in record or "data" not in record:
        raise ValueError(f"{path} is not an evidence file (needs 'provenance' and 'data')")
    return Evidence(chapter, name, path, record["data"], record["provenance"])


def exists(chapter: str, name: str) -> bool:
    return path_of(chapter, name).exists()


def save(chapter: str, name: str, data: Any, *, command: str, device: Any = "cpu", wall_s: float | None = None,
         mode: str = "full", note: str = "") -> Path:
    """Write `data` as committed evidence with its provenance (atomically: a killed run leaves the old file)."""
    from book.core.ledger import _write_atomic

    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', not {mode!r}")
    path = path_of(chapter, name)
    provenance = collect(device)
    provenance.update({"mode": mode, "command": command, "wall_s": None if wall_s is None else round(wall_s, 1)})
    if note:
        provenance["note"] = note
    _write_atomic(path, json.dumps({"provenance": provenance, "data": data}, indent=1, ensure_ascii=False) + "\n")
    return path


def page_notebook(chapter: str) -> Path | None:
    """The committed full-mode notebook of a chapter (what the book shows), if there is one."""
    path = RESULTS_DIR / chapter / f"{chapter}.ipynb"
    return path if path.exists() else None


def publish_run(chapter: str, executed_notebook: Path, ledger_json: Path) -> Path:
    """Store a successful full run as the chapter's evidence: its executed notebook and its ledger.
    Refuses a quick run or a notebook without a finished ledger (an interrupted or failed run)."""
    from book.core.ledger import _write_atomic, ledger_from_notebook

    ledger = ledger_from_notebook(executed_notebook)
    if ledger is None:
        raise RuntimeError(f"{executed_notebook} carries no finished ledger: not a complete run")
    if ledger.get("mode") != "full":
        raise RuntimeError(f"{executed_notebook} is a {ledger.get('mode')} run; evidence is a full run")
    folder = RESULTS_DIR / chapter
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / "ledger.json", Path(ledger_json).read_text(encoding="utf-8"))
    tmp = folder / f".{chapter}.ipynb.tmp"
    shutil.copyfile(executed_notebook, tmp)
    os.replace(tmp, folder / f"{chapter}.ipynb")
    return folder


__all__ = ["Evidence", "load", "save", "exists", "page_notebook", "publish_run", "RESULTS_DIR"]
