"""The ledger: every claim of a post, checked in code, with an honest verdict.

A chapter makes one `Ledger`, records each of its claim ids exactly once, and ends with
`ledger.finish()`, which refuses an incomplete ledger, writes it as JSON (with the run's provenance)
and displays the table; the displayed output carries the same JSON in its metadata, so the rendered
book, its scoreboard and its status page all read one truth: the notebook that is shown.

Verdicts of claims (see claims.md; README and the scoreboard legend say the same):
- ``reproduced``: measured, and within the stated criterion of the post's value;
- ``differs``: measured, outside it (the row's `why` and the chapter say why);
- ``undecided``: a timed (noisy) claim whose confidence interval straddles the criterion's edge:
  this run could not tell, and says so instead of flipping a coin;
- ``needs-gpu``: this run had no GPU; the same code checks it on one;
- ``needs-resource``: something other than a GPU was missing (named: e.g. model weights offline);
- ``cited``: a fact no code can re-derive, with its source.
Verdicts of forecasts (pred-* ids): ``came-true``, ``partly``, ``not-yet-due``, ``wrong``, each
judged on a stated date against dated evidence and a criterion fixed before looking.

`check`, `check_that`, `check_interval` and `forecast` compute the verdict from the measurement; a
chapter cannot declare a claim reproduced by hand. Each takes `fails_if`: what would have made it
come out the other way. Values are rounded to a few significant digits so the committed table is
stable under nbval; run-dependent numbers (``volatile``) and timed verdicts are shown between ⟨ ⟩,
which the nbval sanitizer masks, and nothing else is.

A verdict's evidence is this run, unless the check names committed full-mode evidence
(`book.core.evidence.load`): then the row says which file, mode, device and date stand behind it.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from book.core.verdicts import CLAIM_VERDICTS, COLOURS as VERDICT_COLOURS, FORECAST_VERDICTS  # noqa: E402
from book.core.verdicts import MEANINGS as VERDICT_MEANINGS, NAMES as VERDICTS, TIMED_COLOUR  # noqa: E402

TIMED_LEGEND = ("⟨ ⟩ marks what depends on the run (timings on this machine): those numbers, and the "
                "verdicts of timed claims, may change from run to run; ‹ › marks numbers that depend on "
                "the machine's float kernels (compared exactly under the book's numerics profile, masked "
                "on a GPU or another CPU architecture); everything else is compared exactly when the "
                "chapter is re-executed.")
CLAIMS_FILE = Path(__file__).resolve().parent.parent / "claims.md"   # book/claims.md, the catalogue
_CLAIM_LINE = re.compile(r"^- ([a-z0-9]+-\d+) (.*)$", re.M)


@lru_cache(maxsize=None)
def load_claims(path: str | None = None) -> dict[str, str]:
    """Claim id -> claim text, from claims.md (the package's copy unless `path` is given)."""
    text = Path(path or CLAIMS_FILE).read_text(encoding="utf-8")
    return {cid: claim.strip() for cid, claim in _CLAIM_LINE.findall(text)}


_UNSET: Any = object()   # "not given here": take the claim's text from the catalogue
_SPEC_LINE = re.compile(r"^  - (post|criterion|fails if|scale|needs): (.*)$")


@lru_cache(maxsize=None)
def load_specs(path: str | None = None) -> dict[str, dict[str, Any]]:
    """Claim id -> the static text of its check, from the sub-bullets under the claim in claims.md:
    `post:` (the post's value; a Python literal such as 0.75 or [3, 4] is read as that value),
    `criterion:` (the sentence turned into a test), `fails if:`, `scale:`. A chapter cell then passes
    only what it measured."""
    import ast

    specs: dict[str, dict[str, Any]] = {}
    current = None
    for line in Path(path or CLAIMS_FILE).read_text(encoding="utf-8").splitlines():
        head = _CLAIM_LINE.match(line)
        if head:
            current = head.group(1)
            continue
        sub = _SPEC_LINE.match(line)
        if sub and current:
            key, value = sub.group(1).replace(" ", "_"), sub.group(2).strip()
            if key == "post":
                try:
                    value = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    pass
            specs.setdefault(current, {})[key] = value
        elif line.strip() and not line.startswith("  "):
            current = None
    return specs


def _size_of_error(post: Any, measured: Any) -> str:
    """'says P, measured M (P is X % above)': the size of a numeric claim's error, for `wrong`."""
    try:
        p, m = float(post), float(measured)
    except (TypeError, ValueError):
        return f"says {value_text(round_sig(post))}, measured {value_text(round_sig(measured))}"
    if m == 0:
        return f"says {value_text(round_sig(p))}, measured 0"
    rel = (p - m) / abs(m) * 100
    return (f"says {value_text(round_sig(p))}, measured {value_text(round_sig(m))}: the post's number is "
            f"{abs(rel):.3g} % {'above' if rel > 0 else 'below'} the measured one")


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


def value_text(value: Any) -> str:
    """A value as every ledger table shows it (numbers to 4 significant digits): the notebook's
    table, the rendered page, the scoreboard and the dispute links."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def mask_run(text: str, masked: bool) -> str:
    """What depends on the run is shown between ⟨ ⟩, which the nbval sanitizer masks, so the rest of
    the table is still compared exactly. Never across lines."""
    return f"⟨{text}⟩" if masked and text else text


@dataclass
class Entry:
    id: str
    verdict: str
    claim: str
    post: Any = None
    measured: Any = None
    criterion: str = ""    # the post's sentence turned into a test
    note: str = ""
    why: str = ""          # why the verdict came out as it did: passed, differs, or cannot decide
    wrong: str = ""        # differs only: what the post got wrong, and by how much (one line)
    fails_if: str = ""     # what would have made the verdict come out the other way
    source: str = ""
    resource: str = ""     # needs-resource: what was missing
    judged: str = ""       # forecasts: the date judged and the date the forecast falls due
    due: str = ""
    mode: str = "quick"
    device: str = "cpu"
    evidence: dict = field(default_factory=dict)  # empty: this run; else a committed file's label and provenance
    volatile: bool = False  # the measured number depends on the run (masked for nbval)
    float_path: bool = False  # the measured number's last bits depend on the float kernels (‹ ›)
    on_device: bool = False   # a GPU run measures what a CPU run cannot ('needs: gpu'): the whole row is ‹ ›
    timed: bool = False     # the verdict itself depends on the run (a timing's interval): masked too

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Entry":
        """The entry a stored ledger row (ledger.json) holds; older files named the criterion
        `tolerance`."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in row.items() if k in names}
        kw.setdefault("criterion", value_text(row.get("tolerance")))
        for key in ("id", "verdict", "claim"):
            kw.setdefault(key, "")
        return cls(**kw)

    def _mask(self, text: str, masked: bool) -> str:
        return mask_run(text, masked)

    def _device(self, text: str, marks: bool = True) -> str:
        return f"‹{text}›" if marks and self.on_device and text and not text.startswith("‹") else text

    # `device_marks=False`: for readers (the rendered page, the scoreboard), without the ‹ › that tell
    # nbval's device comparison which numbers a GPU or another CPU may change.
    def measured_text(self, device_marks: bool = True) -> str:
        if self.measured is None and not (self.volatile or self.timed):
            return ""
        text = self._mask(value_text(self.measured), self.volatile or self.timed)
        marked = device_marks and self.float_path and text and not (self.volatile or self.timed)
        return f"‹{text}›" if marked else self._device(text, device_marks)

    def criterion_text(self, device_marks: bool = True) -> str:
        return self._device(self.criterion, device_marks)

    def verdict_text(self, device_marks: bool = True) -> str:
        text = self.verdict + (f": {self.resource}" if self.resource else "")
        if device_marks and (self.verdict == "needs-gpu" or self.on_device):
            return f"‹{text}›"   # a GPU run measures it: the device comparison masks it
        return self._mask(text, self.timed)

    def evidence_text(self) -> str:
        return self.evidence.get("label", "") if self.evidence else f"this run ({self.mode}, ‹{self.device}›)"

    def note_text(self) -> str:
        parts = [self.note] if self.note else []
        if self.timed:  # a timed row's reason follows its masked verdict, so its shape never varies
            parts.append(self._mask(self.why + (f" — the post: {self.wrong}" if self.wrong else ""), True))
        elif self.verdict == "differs":
            if self.why and self.why != self.wrong:
                parts.append(self.why)
            if self.wrong:
                parts.append(f"the post {self.wrong}" if self.wrong.startswith("says") else f"the post: {self.wrong}")
        elif self.verdict == "undecided" and self.why:
            parts.append(self.why)
        if self.source:
            parts.append(f"source: {self.source}")
        if self.judged:
            parts.append(f"judged {self.judged}, due {self.due}")
        return self._device("; ".join(parts))

    def _ipython_display_(self) -> None:
        """A recorded row shows nothing by itself: a cell that ends with a ledger call prints no
        return value (the ledger table at the chapter's end shows every row; `print(entry)` shows one)."""

    def __repr__(self) -> str:
        """Verdict first: what `print(entry)` shows right where a chapter checks a claim."""
        parts = [f"post: {value_text(self.post)}"]
        if self.measured_text():
            parts.append(f"measured: {self.measured_text()}")
        if self.criterion:
            parts.append(f"criterion: {self.criterion_text()}")
        lines = [f"{self.id} {self.verdict_text()} — " + " | ".join(parts)]
        if self.note_text():
            lines.append(f"  {self.note_text()}")
        if self.evidence:
            lines.append(f"  evidence: {self.evidence_text()}")
        if self.fails_if:
            lines.append(f"  would fail if: {self.fails_if}")
        return "\n".join(lines)


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


_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


@dataclass
class Ledger:
    """One chapter's ledger. `chapter` is the chapter name (see book.core.registry)."""

    chapter: str
    quick: bool = True
    device: Any = "cpu"
    entries: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import time

        from book.core.registry import get_chapter

        self._chapter = get_chapter(self.chapter)
        self.device = str(self.device)
        self._expected = [cid for p in self._chapter.prefixes for cid in claim_ids(p)]
        self._started = time.perf_counter()
        self._finished: dict[str, Any] | None = None
        from book.core.provenance import git_commit

        self._commit_at_start = git_commit().get("commit")  # the code the run started from

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
        is_forecast = cid.startswith("pred-")
        if verdict not in (FORECAST_VERDICTS if is_forecast else CLAIM_VERDICTS):
            raise ValueError(f"{cid}: {verdict!r} is not a verdict for a {'forecast' if is_forecast else 'claim'}")
        for key in ("post", "measured"):
            kw[key] = round_sig(kw.get(key))
        evidence = kw.pop("evidence", None)
        kw.setdefault("on_device", verdict == "needs-gpu" or load_specs().get(cid, {}).get("needs") == "gpu")
        entry = Entry(id=cid, verdict=verdict, claim=claims[cid], mode=self.mode, device=self.device,
                      evidence=_evidence_dict(evidence), **kw)
        self.entries[cid] = entry
        return entry

    @staticmethod
    def _need_fails_if(cid: str, fails_if: str) -> None:
        if not fails_if:
            warnings.warn(f"{cid}: say what would have made this check fail (fails_if=...)", stacklevel=4)

    def _spec(self, cid: str, key: str, given: Any) -> Any:
        """A claim's static text from the catalogue (book/claims.md sub-bullets) unless given here."""
        if given is not _UNSET and given is not None and given != "":
            return given
        value = load_specs().get(cid, {}).get(key)
        if value is None:
            if given is _UNSET:
                raise TypeError(f"{cid}: pass {key}= or give the claim a '{key.replace('_', ' ')}:' line in "
                                "book/claims.md")
            return given
        return value

    def check(self, cid: str, *, measured: Any, post: Any = _UNSET, tol: float = 0.0, rel_tol: float = 0.0,
              why: str = "", wrong: str = "", note: str = "", fails_if: str = "", evidence: Any = None,
              volatile: bool = False, float_path: bool = False) -> Entry:
        """A numeric claim: reproduced iff every measured value is within max(tol, rel_tol·|post|)
        of the post's. On `differs`, `wrong` says what the post got wrong (default: its number
        against the measured one, with the relative error)."""
        if tol < 0 or rel_tol < 0:
            raise ValueError("tolerances must be non-negative")
        post = self._spec(cid, "post", post)
        ok = _within(post, measured, tol, rel_tol)
        criterion = (f"±{value_text(round_sig(tol))}" if tol else "") + (
            f"{' or ' if tol else ''}±{value_text(round_sig(rel_tol * 100))}%" if rel_tol else "")
        if not ok and not wrong:
            wrong = _size_of_error(post, measured)
        return self._record_outcome(cid, ok, post=post, measured=measured, criterion=criterion or "exact",
                                    why=why, wrong=wrong, note=note, fails_if=fails_if, evidence=evidence,
                                    volatile=volatile, float_path=float_path)

    def check_that(self, cid: str, holds: bool, *, measured: Any, post: Any = _UNSET, criterion: str = "",
                   why: str = "", wrong: str = "", note: str = "", fails_if: str = "", evidence: Any = None,
                   volatile: bool = False, float_path: bool = False) -> Entry:
        """A qualitative claim, decided by a criterion computed from measurements
        (`holds` must come from the measurement, e.g. ``err < 1e-9``)."""
        return self._record_outcome(cid, bool(holds), post=self._spec(cid, "post", post), measured=measured,
                                    criterion=self._spec(cid, "criterion", criterion or _UNSET), why=why,
                                    wrong=wrong, note=note, fails_if=fails_if, evidence=evidence,
                                    volatile=volatile, float_path=float_path)

    def check_interval(self, cid: str, *, estimate: float, interval: tuple[float, float],
                       accept: tuple[float, float], post: Any = _UNSET, criterion: str = "", fails_if: str = "",
                       why: str = "", wrong: str = "", note: str = "", unit: str = "", evidence: Any = None,
                       timed: bool = True, float_path: bool = False) -> Entry:
        """A noisy claim decided by an interval: `interval` is the confidence interval of the measured
        quantity (repeated interleaved timing trials, or seeds), `accept` the range the post's claim
        allows (±inf for a one-sided claim). reproduced iff the interval lies inside `accept`, differs
        iff it lies wholly outside, undecided otherwise (for every interval, timings and seeds alike).
        For a timing (`timed`, the default) the numbers and the verdict are masked for nbval, the
        criterion and the note are not (so the note must not depend on the outcome: `why`/`wrong` do).
        An interval over seeds or committed evidence is deterministic: pass ``timed=False``."""
        post = self._spec(cid, "post", post)
        criterion = self._spec(cid, "criterion", criterion or _UNSET)
        lo, hi = (float(v) for v in interval)
        a_lo, a_hi = (float(v) for v in accept)
        if not (lo <= float(estimate) <= hi) or a_lo > a_hi:
            raise ValueError(f"{cid}: need interval lo <= estimate <= hi and accept lo <= hi")
        if a_lo <= lo and hi <= a_hi:
            verdict = "reproduced"
        elif hi < a_lo or lo > a_hi:
            verdict = "differs"
        else:
            verdict = "undecided"
        fails_if = self._spec(cid, "fails_if", fails_if)
        self._need_fails_if(cid, fails_if)
        shown = f"{value_text(round_sig(estimate, 3))}{unit} [{value_text(round_sig(lo, 3))}, {value_text(round_sig(hi, 3))}]"
        if verdict == "differs" and not (wrong or why):
            warnings.warn(f"{cid} differs from the post and no `wrong` says what the post got wrong", stacklevel=2)
            why = "unexplained: see the chapter"
        if verdict == "differs" and not wrong:
            side = "above" if lo > a_hi else "below"
            edge = a_hi if lo > a_hi else a_lo
            wrong = f"the whole interval {shown} lies {side} the accepted {value_text(round_sig(edge, 3))}{unit}"
        why = {"reproduced": f"the whole interval {shown} lies inside the criterion",
               "undecided": "the interval straddles the criterion's edge: this run cannot decide between "
                            "reproduced and differs"}.get(verdict, why or wrong)
        return self._add(cid, verdict, post=post, measured=shown, criterion=criterion, note=note,
                         why=why, wrong=wrong if verdict == "differs" else "", fails_if=fails_if,
                         evidence=evidence, timed=bool(timed), float_path=float_path and not timed)

    def _record_outcome(self, cid, ok, *, why, wrong, fails_if, **kw) -> Entry:
        fails_if = self._spec(cid, "fails_if", fails_if)
        self._need_fails_if(cid, fails_if)
        if ok:
            # the JSON says why a row passed when it passed, never a reason for failing
            why = f"measured {value_text(round_sig(kw.get('measured')))} meets the criterion: {kw.get('criterion')}"
            wrong = ""
        elif not (wrong or why):
            warnings.warn(f"{cid} differs from the post and no `wrong` says what the post got wrong", stacklevel=3)
            why = "unexplained: see the chapter"
        return self._add(cid, "reproduced" if ok else "differs", why=why or wrong, wrong=wrong,
                         fails_if=fails_if, **kw)

    def cited(self, cid: str, *, source: str, post: Any = _UNSET, note: str = "") -> Entry:
        """A fact the post quotes that code cannot re-derive; `source` says where it comes from."""
        if not source:
            raise ValueError("a cited claim needs its source")
        return self._add(cid, "cited", post=self._spec(cid, "post", post), source=source, note=note)

    def needs_gpu(self, cid: str, *, reason: str, post: Any = _UNSET, measured: Any = None,
                  context: Any = None, volatile: bool = False, float_path: bool = False) -> Entry:
        """A claim only a GPU can check; this run had none. Call only when no GPU is present.
        `context` (or `measured`): a small-scale number shown beside it, never the verdict."""
        if self.device.startswith("cuda"):
            raise RuntimeError(f"{cid}: this run has a GPU ({self.device}); measure it instead")
        return self._add(cid, "needs-gpu", post=self._spec(cid, "post", post),
                         measured=context if context is not None else measured, note=reason, volatile=volatile,
                         float_path=float_path)

    def needs_resource(self, cid: str, *, resource: str, reason: str, post: Any = _UNSET, measured: Any = None,
                       context: Any = None, volatile: bool = False, float_path: bool = False) -> Entry:
        """A claim this run could not check for want of `resource` (say what: weights, a data set, a
        scale such as 'a ≥ 6.7 B model'). `context` (or `measured`): the small-scale number, shown
        beside the verdict, never as it."""
        if not resource or not reason:
            raise ValueError(f"{cid}: name the missing resource and why it is missing")
        return self._add(cid, "needs-resource", post=self._spec(cid, "post", post),
                         measured=context if context is not None else measured, resource=resource, note=reason,
                         volatile=volatile, float_path=float_path)

    def forecast(self, cid: str, outcome: str, *, post: Any, judged: str, due: str, criterion: str,
                 sources: str, fails_if: str = "", measured: Any = None, note: str = "",
                 evidence: Any = None) -> Entry:
        """A forecast (pred-* id), judged on `judged` against dated evidence; `outcome` is computed
        by the chapter from that evidence and `criterion`, which was fixed before looking."""
        if outcome not in FORECAST_VERDICTS:
            raise ValueError(f"{cid}: forecast outcome must be one of {FORECAST_VERDICTS}, not {outcome!r}")
        for name, date in (("judged", judged), ("due", due)):
            if not (isinstance(date, str) and _DATE.match(date)):
                raise ValueError(f"{cid}: {name} must be an ISO date (YYYY-MM or YYYY-MM-DD), not {date!r}")
        if not sources:
            raise ValueError(f"{cid}: a forecast's verdict needs its sources")
        self._need_fails_if(cid, fails_if)
        return self._add(cid, outcome, post=post, measured=measured, criterion=criterion, note=note,
                         source=sources, judged=judged, due=due, fails_if=fails_if, evidence=evidence)

    # -- output ---------------------------------------------------------------------------
    def missing(self) -> list[str]:
        return [cid for cid in self._expected if cid not in self.entries]

    def ordered(self) -> list[Entry]:
        """The recorded entries in claims.md order, whatever order the chapter checked them in."""
        return [self.entries[cid] for cid in self._expected if cid in self.entries]

    def counts(self) -> dict[str, int]:
        return {v: sum(e.verdict == v for e in self.entries.values()) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        data = {
            "chapter": self.chapter,
            "title": self._chapter.title,
            "post_url": self._chapter.post_url,
            "mode": self.mode,
            "device": self.device,
            "counts": self.counts(),
            "claims": [asdict(e) for e in self.ordered()],
        }
        if self._finished:
            data.update(self._finished)
        return data

    def finish(self, directory: str | os.PathLike | None = None) -> "Ledger":
        """Refuse an incomplete ledger, stamp it with the run's provenance, write `<chapter>.json`
        and return self (displays as a table, with the JSON in the output's metadata).

        The directory is `directory`, else $BOOK_LEDGER_DIR, else `_build/ledgers` of the repository
        (or of the working directory, when the package is installed elsewhere, e.g. on Colab)."""
        import time

        from book.core.provenance import collect

        missing = self.missing()
        if missing:
            raise RuntimeError(f"ledger {self.chapter!r} leaves claims unrecorded: {', '.join(missing)}")
        provenance = collect(self.device)
        if self._commit_at_start != provenance.get("commit"):
            provenance["commit_at_start"] = self._commit_at_start  # HEAD moved while the chapter ran
        self._finished = {"provenance": provenance,
                          "wall_s": round(time.perf_counter() - self._started, 1),
                          "command": os.environ.get("BOOK_RUN_COMMAND", "notebook run by hand")}
        self._finished["against_committed"] = self.compare_with_committed()
        out = Path(directory or os.environ.get("BOOK_LEDGER_DIR") or _default_ledger_dir())
        _write_atomic(out / f"{self.chapter}.json", json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        return self

    def committed(self) -> dict[str, Any] | None:
        """The committed run of this chapter in this run's mode: the quick notebook in notebooks/, or
        the full-mode page in results/ (the ledgers they carry in their metadata)."""
        from book.core.registry import REPO_ROOT

        page = (self._chapter.notebook if self.quick
                else REPO_ROOT / "results" / self.chapter / f"{self.chapter}.ipynb")
        try:
            return ledger_from_notebook(page) if page.exists() else None
        except (OSError, ValueError):
            return None

    def compare_with_committed(self) -> str:
        """Whether this run reproduced the book: every deterministic row (verdicts of untimed claims,
        numbers not marked as depending on the run) against the committed run of the same mode."""
        committed = self.committed()
        if not committed:
            return f"no committed {self.mode} run of this chapter to compare with"
        rows = {r["id"]: r for r in committed.get("claims", [])}
        changed = []
        for e in self.ordered():
            old = rows.get(e.id)
            if old is None:
                changed.append(f"{e.id} (not in the committed run)")
            elif not e.timed and old.get("verdict") != e.verdict:
                changed.append(f"{e.id} (verdict {old.get('verdict')} → {e.verdict})")
            elif not (e.timed or e.volatile) and value_text(old.get("measured")) != value_text(e.measured):
                changed.append(f"{e.id} (measured {value_text(old.get('measured'))} → {value_text(e.measured)})")
        made = committed.get("provenance", {})
        when = f"commit {str(made.get('commit', '?'))[:7]}, {str(made.get('date', '?'))[:10]}"
        if not changed:
            return f"identical to the committed {self.mode} run ({when}) in every deterministic row"
        return f"differs from the committed {self.mode} run ({when}) in: " + "; ".join(changed)

    # -- display ---------------------------------------------------------------------------
    _COLUMNS = ("id", "verdict", "post", "measured", "criterion", "evidence", "note")

    def _rows(self) -> list[list[str]]:
        return [[e.id, e.verdict_text(), value_text(e.post), e.measured_text(), e.criterion_text(), e.evidence_text(),
                 e.note_text()] for e in self.ordered()]

    def _counts_text(self) -> str:
        fixed = [e.verdict for e in self.entries.values() if not e.timed]
        timed = [e.verdict for e in self.entries.values() if e.timed]
        text = ", ".join(f"{fixed.count(v)} {v}" for v in VERDICTS if v in fixed) or "no fixed verdicts"
        if timed:
            text += f"; {len(timed)} timed: ⟨" + ", ".join(f"{timed.count(v)} {v}" for v in VERDICTS if v in timed) + "⟩"
        return f"{len(self.entries)} claims: {text}"

    def _against_committed(self) -> list[str]:
        # masked like a timing: it describes this run against whatever is committed at the time
        text = (self._finished or {}).get("against_committed")
        return [f"This run: ⟨{text}⟩."] if text else []

    def _legend(self) -> list[str]:
        # what a timed row might show is listed whatever it shows this time: the legend never varies
        present = {e.verdict for e in self.entries.values() if not e.timed}
        if any(e.timed for e in self.entries.values()):
            present |= {"reproduced", "differs", "undecided"}
        lines = ["Verdicts: " + "; ".join(f"{v} — {VERDICT_MEANINGS[v]}" for v in VERDICTS if v in present)]
        if any(e.timed or e.volatile for e in self.entries.values()):
            lines.append(TIMED_LEGEND)
        return lines

    def __repr__(self) -> str:
        head = f"Ledger of chapter {self.chapter!r} — mode {self.mode}, device ‹{self.device}›; {self._counts_text()}"
        lines = [head]
        for entry, r in zip(self.ordered(), self._rows()):  # id and verdict first: each row reads on its own
            # a masked verdict carries its padding inside ⟨ ⟩, so the row's width never depends on it
            verdict = f"⟨{entry.verdict_text()[1:-1]:<14}⟩" if entry.timed else f"{r[1]:<16}"
            fields = [f"post: {r[2]}"] + [f"{k}: {v}" for k, v in (("measured", r[3]), ("criterion", r[4])) if v]
            lines.append(f"{r[0]:<9} {verdict} " + "  |  ".join(fields))
            lines.append(f"{'':<27} evidence: {r[5]}" + (f"; {r[6]}" if r[6] else ""))
        return "\n".join(lines + self._against_committed() + self._legend())

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self._COLUMNS)
        body = []
        for entry, r in zip(self.ordered(), self._rows()):
            cells = [html.escape(x) for x in r]
            colour = TIMED_COLOUR if entry.timed else VERDICT_COLOURS[entry.verdict]  # a timed verdict may change
            css = "verdict-timed" if entry.timed else f"verdict-{entry.verdict}"
            cells[1] = f'<b class="{css}" style="color:{colour}">{cells[1]}</b>'
            body.append(f'<tr id="ledger-{entry.id}">' + "".join(
                f'<td style="text-align:left{"; white-space:nowrap" if i < 2 else ""}">{c}</td>'
                for i, c in enumerate(cells)) + "</tr>")
        counts = html.escape(self._counts_text())
        total = f'<tr class="ledger-total"><td colspan="{len(self._COLUMNS)}" style="text-align:left"><b>total</b>: {counts}</td></tr>'
        legend = "".join(f"<p><small>{html.escape(line)}</small></p>"
                         for line in self._against_committed() + self._legend())
        return (f'<div class="ledger"><p><b>Ledger</b> of chapter <code>{self.chapter}</code> — mode <code>{self.mode}'
                f'</code>, device <code>‹{html.escape(self.device)}›</code></p><div class="ledger-scroll"><table>'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}{total}</tbody></table></div>{legend}</div>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The table as text and HTML; once finished, the ledger's JSON rides along in the output's
        metadata (which nbval does not compare), so whatever renders this notebook reads its verdicts."""
        data = {"text/plain": repr(self), "text/html": self._repr_html_()}
        if self._finished:
            return data, {LEDGER_METADATA_KEY: self.to_dict()}
        return data


LEDGER_METADATA_KEY = "dettmers_book_ledger"


def _evidence_dict(evidence: Any) -> dict:
    if evidence is None:
        return {}
    if isinstance(evidence, dict):
        return dict(evidence)
    as_dict = getattr(evidence, "as_ledger_evidence", None)
    if as_dict is None:
        raise TypeError(f"evidence must come from book.core.evidence.load, not {type(evidence).__name__}")
    return as_dict()


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a killed run never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or an interrupt leaves neither half a file nor a temp
        raise


def _default_ledger_dir() -> Path:
    from book.core.registry import REPO_ROOT

    root = REPO_ROOT if (REPO_ROOT / "_toc.yml").exists() else Path.cwd()
    return root / "_build" / "ledgers"


def notebook_ledger(nb: dict[str, Any]) -> dict[str, Any] | None:
    """The ledger a notebook (its JSON) carries: the `dettmers_book_ledger` metadata of the output
    of its `ledger.finish()` cell (the last one, if it shows several); None if it carries none."""
    found = None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            meta = output.get("metadata") or {}
            if LEDGER_METADATA_KEY in meta:
                found = meta[LEDGER_METADATA_KEY]
    return found


def ledger_from_notebook(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ledger a notebook file's outputs carry (`notebook_ledger`), or None."""
    return notebook_ledger(json.loads(Path(path).read_text(encoding="utf-8")))


def read_ledgers(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """Every `<chapter>.json` in `directory`, in book order."""
    from book.core.registry import CHAPTERS

    directory = Path(directory)
    found = []
    for name in CHAPTERS:
        path = directory / f"{name}.json"
        if path.exists():
            found.append(json.loads(path.read_text(encoding="utf-8")))
    return found


__all__ = ["Ledger", "Entry", "VERDICTS", "CLAIM_VERDICTS", "FORECAST_VERDICTS", "VERDICT_MEANINGS",
           "ledger_from_notebook", "load_claims", "claim_ids", "round_sig", "read_ledgers"]