"""The ledger: every claim of a post, checked in code, with an honest verdict.

A chapter makes one `Ledger`, records each of its claim ids exactly once, and ends with
`ledger.finish()`, which refuses an incomplete ledger, writes it as JSON and displays the table.

Verdicts (see claims.md):
- ``reproduced``: measured, and within the stated tolerance of the post's value;
- ``differs``: measured, outside tolerance (the chapter says why, and so does the row's note);
- ``needs-gpu``: this run had no GPU; the same code checks it on one;
- ``cited``: a fact no code can re-derive, with its source.

`check` and `check_that` compute the verdict from the measurement; a chapter cannot declare a
measured claim reproduced by hand. Values are rounded to a few significant digits so that the
committed table is stable under nbval; values marked ``volatile`` (timings) are shown between
⟨ ⟩, which the nbval sanitizer masks.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

VERDICTS = ("reproduced", "differs", "needs-gpu", "cited")
TIMED_LEGEND = ("⟨ ⟩ marks what depends on the run (timings on this machine): "
                "those values and verdicts may change from run to run.")
CLAIMS_FILE = Path(__file__).with_name("claims.md")
_CLAIM_LINE = re.compile(r"^- ([a-z0-9]+-\d+) (.*)$", re.M)


@lru_cache(maxsize=None)
def load_claims(path: str | None = None) -> dict[str, str]:
    """Claim id -> claim text, from claims.md (the package's copy unless `path` is given)."""
    text = Path(path or CLAIMS_FILE).read_text(encoding="utf-8")
    return {cid: claim.strip() for cid, claim in _CLAIM_LINE.findall(text)}


def claim_ids(prefix: str) -> list[str]:
    """The ids of claims.md that belong to one prefix (e.g. 'conv'), in file order."""
    return [cid for cid in load_claims() if cid.rsplit("-", 1)[0] == prefix]


def round_sig(value: Any, sig: int = 4) -> Any:
    """Round numbers (also inside lists/tuples) to `sig` significant digits; leave the rest."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [round_sig(v, sig) for v in value]
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if isinstance(value, int) or (x.is_integer() and abs(x) < 1e15 and not isinstance(value, float)):
        return int(x)
    if x == 0:
        return 0.0
    digits = sig - int(math.floor(math.log10(abs(x)))) - 1
    rounded = round(x, digits)
    return float(f"{rounded:.{sig}g}")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Entry:
    id: str
    verdict: str
    claim: str
    post: Any = None
    measured: Any = None
    tolerance: str = ""
    note: str = ""
    source: str = ""
    mode: str = "quick"
    device: str = "cpu"
    volatile: bool = False

    def _mask(self, text: str) -> str:
        # A timed claim's measurement, verdict and note can change between runs: shown between ⟨ ⟩,
        # which the nbval sanitizer masks, so the rest of the table is still compared exactly.
        return f"⟨{text}⟩" if self.volatile else text

    def measured_text(self) -> str:
        return self._mask(_fmt(self.measured))

    def verdict_text(self) -> str:
        return self._mask(self.verdict)

    def note_text(self) -> str:
        note = "; ".join(t for t in (self.note, f"source: {self.source}" if self.source else "") if t)
        return self._mask(note)

    def __repr__(self) -> str:
        """One line, verdict first: what a chapter shows right where it checks a claim."""
        parts = [f"post: {_fmt(self.post)}"]
        if self.measured is not None or self.volatile:
            parts.append(f"measured: {self.measured_text()}")
        if self.tolerance:
            parts.append(f"criterion: {self.tolerance}")
        if self.source:
            parts.append(f"source: {self.source}")
        return f"{self.id} {self.verdict_text()} — " + " | ".join(parts) + (
            f"\n  {self._mask(self.note)}" if self.note or self.volatile else "")


def _within(post: Any, measured: Any, tol: float, rel_tol: float) -> bool:
    if isinstance(post, (list, tuple)) or isinstance(measured, (list, tuple)):
        if not (isinstance(post, (list, tuple)) and isinstance(measured, (list, tuple))):
            raise TypeError("post and measured must both be sequences, or both numbers")
        if len(post) != len(measured):
            raise ValueError(f"post has {len(post)} values, measured {len(measured)}")
        return all(_within(p, m, tol, rel_tol) for p, m in zip(post, measured))
    p, m = float(post), float(measured)
    if not (math.isfinite(p) and math.isfinite(m)):
        return False
    return abs(m - p) <= max(tol, rel_tol * abs(p))


@dataclass
class Ledger:
    """One chapter's ledger. `chapter` is the chapter name (see book.chapters)."""

    chapter: str
    quick: bool = True
    device: Any = "cpu"
    entries: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .chapters import get_chapter

        self._chapter = get_chapter(self.chapter)
        self.device = str(self.device)
        self._expected = [cid for p in self._chapter.prefixes for cid in claim_ids(p)]

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    # -- recording -------------------------------------------------------------------------
    def _add(self, cid: str, verdict: str, **kw: Any) -> Entry:
        claims = load_claims()
        if cid not in claims:
            raise KeyError(f"{cid!r} is not a claim id in claims.md")
        if cid not in self._expected:
            raise KeyError(f"{cid!r} belongs to another chapter, not {self.chapter!r}")
        if cid in self.entries:
            raise ValueError(f"{cid} is already recorded in this ledger")
        assert verdict in VERDICTS
        for key in ("post", "measured"):
            kw[key] = round_sig(kw.get(key))
        entry = Entry(id=cid, verdict=verdict, claim=claims[cid], mode=self.mode,
                      device=self.device, **kw)
        self.entries[cid] = entry
        return entry

    def check(self, cid: str, *, post: Any, measured: Any, tol: float = 0.0,
              rel_tol: float = 0.0, why: str = "", note: str = "", volatile: bool = False) -> Entry:
        """A numeric claim: reproduced iff every measured value is within max(tol, rel_tol·|post|)
        of the post's. `why` explains a difference (shown only when the verdict is `differs`)."""
        if tol < 0 or rel_tol < 0:
            raise ValueError("tolerances must be non-negative")
        ok = _within(post, measured, tol, rel_tol)
        tolerance = (f"±{_fmt(round_sig(tol))}" if tol else "") + (
            f"{' or ' if tol else ''}±{_fmt(round_sig(rel_tol * 100))}%" if rel_tol else "")
        return self._record_outcome(cid, ok, post=post, measured=measured,
                                    tolerance=tolerance or "exact", why=why, note=note,
                                    volatile=volatile)

    def check_that(self, cid: str, holds: bool, *, post: Any, measured: Any, criterion: str,
                   why: str = "", note: str = "", volatile: bool = False) -> Entry:
        """A qualitative claim, decided by a criterion computed from measurements
        (`holds` must come from the measurement, e.g. ``err < 1e-9``)."""
        if not isinstance(holds, bool):
            holds = bool(holds)  # numpy bools
        return self._record_outcome(cid, holds, post=post, measured=measured, tolerance=criterion,
                                    why=why, note=note, volatile=volatile)

    def _record_outcome(self, cid, ok, *, why, note, **kw) -> Entry:
        if not ok and not why:
            warnings.warn(f"{cid} differs from the post and no `why` explains it", stacklevel=3)
            why = "unexplained: see the chapter"
        text = note if ok else "; ".join(t for t in (why, note) if t)
        return self._add(cid, "reproduced" if ok else "differs", note=text, **kw)

    def cited(self, cid: str, *, post: Any, source: str, note: str = "") -> Entry:
        """A fact the post quotes that code cannot re-derive; `source` says where it comes from."""
        if not source:
            raise ValueError("a cited claim needs its source")
        return self._add(cid, "cited", post=post, source=source, note=note)

    def needs_gpu(self, cid: str, *, post: Any, reason: str, measured: Any = None) -> Entry:
        """A claim only a GPU can check; this run had none. Call only when no GPU is present."""
        if self.device.startswith("cuda"):
            raise RuntimeError(f"{cid}: this run has a GPU ({self.device}); measure it instead")
        return self._add(cid, "needs-gpu", post=post, measured=measured, note=reason)

    # -- output ---------------------------------------------------------------------------
    def missing(self) -> list[str]:
        return [cid for cid in self._expected if cid not in self.entries]

    def counts(self) -> dict[str, int]:
        return {v: sum(e.verdict == v for e in self.entries.values()) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "title": self._chapter.title,
            "post_url": self._chapter.post_url,
            "mode": self.mode,
            "device": self.device,
            "counts": self.counts(),
            "claims": [asdict(self.entries[cid]) for cid in self._expected if cid in self.entries],
        }

    def finish(self, directory: str | os.PathLike | None = None) -> "Ledger":
        """Refuse an incomplete ledger, write `<chapter>.json` and return self (displays as a table).

        The directory is `directory`, else $BOOK_LEDGER_DIR, else `_build/ledgers` of the repository
        (or of the working directory, when the package is installed elsewhere, e.g. on Colab)."""
        missing = self.missing()
        if missing:
            raise RuntimeError(f"ledger {self.chapter!r} leaves claims unrecorded: {', '.join(missing)}")
        out = Path(directory or os.environ.get("BOOK_LEDGER_DIR") or _default_ledger_dir())
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.chapter}.json").write_text(
            json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return self

    # -- display ---------------------------------------------------------------------------
    _COLUMNS = ("id", "verdict", "post", "measured", "criterion", "note")

    def _rows(self) -> list[list[str]]:
        return [[e.id, e.verdict_text(), _fmt(e.post), e.measured_text(), e.tolerance, e.note_text()]
                for e in self.entries.values()]

    def _counts_text(self) -> str:
        fixed = [e.verdict for e in self.entries.values() if not e.volatile]
        timed = [e.verdict for e in self.entries.values() if e.volatile]
        text = ", ".join(f"{fixed.count(v)} {v}" for v in VERDICTS)
        if timed:
            text += "; timed claims: ⟨" + ", ".join(f"{timed.count(v)} {v}" for v in VERDICTS if v in timed) + "⟩"
        return text

    def __repr__(self) -> str:
        rows = self._rows()
        head = f"Ledger of chapter {self.chapter!r} — mode {self.mode}, device {self.device}; {self._counts_text()}"
        lines = [head]
        for entry, r in zip(self.entries.values(), rows):  # id and verdict first: each row reads on its own
            # a masked verdict carries its padding inside ⟨ ⟩, so the row's width never depends on it
            verdict = f"⟨{entry.verdict:<10}⟩" if entry.volatile else f"{entry.verdict:<12}"
            fields = [f"post: {r[2]}"] + [f"{k}: {v}" for k, v in (("measured", r[3]), ("criterion", r[4])) if v]
            lines.append(f"{r[0]:<9} {verdict} " + "  |  ".join(fields) + (f"\n{'':<22} {r[5]}" if r[5] else ""))
        if any(e.volatile for e in self.entries.values()):
            lines.append(TIMED_LEGEND)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"reproduced": "#1a7f37", "differs": "#b35900", "needs-gpu": "#6639ba", "cited": "#0969da"}
        head = "".join(f"<th>{c}</th>" for c in self._COLUMNS)
        body = []
        for entry, r in zip(self.entries.values(), self._rows()):
            cells = [html.escape(x) for x in r]
            colour = "#6e7781" if entry.volatile else colours[entry.verdict]  # a timed verdict may change
            cells[1] = f'<b style="color:{colour}">{cells[1]}</b>'
            body.append("<tr>" + "".join(
                f'<td style="text-align:left{"; white-space:nowrap" if i < 2 else ""}">{c}</td>'
                for i, c in enumerate(cells)) + "</tr>")
        counts = html.escape(self._counts_text())
        return (f"<p><b>Ledger</b> — mode <code>{self.mode}</code>, device <code>{html.escape(self.device)}"
                f"</code>: {counts}</p><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
                "</tbody></table>"
                + (f"<p><small>{html.escape(TIMED_LEGEND)}</small></p>"
                   if any(e.volatile for e in self.entries.values()) else ""))


def _default_ledger_dir() -> Path:
    from .chapters import REPO_ROOT

    root = REPO_ROOT if (REPO_ROOT / "_toc.yml").exists() else Path.cwd()
    return root / "_build" / "ledgers"


def read_ledgers(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """Every `<chapter>.json` in `directory`, in book order."""
    from .chapters import CHAPTERS

    directory = Path(directory)
    found = []
    for name in CHAPTERS:
        path = directory / f"{name}.json"
        if path.exists():
            found.append(json.loads(path.read_text(encoding="utf-8")))
    return found


__all__ = ["Ledger", "Entry", "VERDICTS", "load_claims", "claim_ids", "round_sig", "read_ledgers"]