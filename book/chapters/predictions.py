"""The posts' forecasts, scored against what happened (chapter "predictions").

Every forecast is split into *parts*, each a dated, checkable event with a test written as code
(`FORECASTS`, below) before the evidence rows were entered. Evidence is a list of dated rows:
hand-entered events with their sources (`data_files/forecast_evidence.csv`), or rows computed here from
the book's data files (GPU spec tables, HPCG #1 history). `judge` turns parts + rows + a judging date
into one of the ledger's forecast verdicts:

- a part *happens* when enough distinct rows pass its test (``required``); a *negated* part (the post
  says something will NOT happen by its date) holds when no row passes by then;
- a part met by its due date is ``met``; met after it, but within ``LATE_FACTOR`` times the forecast's
  horizon, ``late``; not met when its date has passed (or met later than that), ``failed``;
  its date still to come, ``pending``;
- the forecast: every part met -> ``came-true``; parts pending and every settled part met ->
  ``not-yet-due``; some part met or late -> ``partly``; otherwise -> ``wrong``.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from book.core import verdicts
from book.core.registry import DATA_FILES
from book.core.tables import gpu_specs, read_table

DATA_DIR = DATA_FILES
EVIDENCE_FILE = DATA_DIR / "forecast_evidence.csv"
SPECS_FILE = DATA_DIR / "gpu_specs.csv"
SPECS_SINCE_FILE = DATA_DIR / "gpu_specs_since_2023.csv"

OUTCOMES = ("came-true", "partly", "not-yet-due", "wrong")
PART_STATUSES = ("met", "late", "failed", "pending")
SOURCINGS = ("published", "memory", "computed")
# A part met after its date but within LATE_FACTOR x the forecast's horizon counts as "late" (-> partly):
# right about the event, wrong about the timing. Later than that it counts as failed.
LATE_FACTOR = 2.0
BRAIN_FLOPS = 1.075e21   # the brain post's estimate (brain.POST["estimate"]), "10^21"


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def parse_date(text: str) -> dt.date:
    """'2023-01-30' -> that day; '2023-04' -> 2023-04-30 (the month's last day: the latest the event can
    have been, so month precision never makes a forecast look met earlier than it was)."""
    if isinstance(text, dt.date):
        return text
    text = str(text).strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        if len(text) == 7 and text[4] == "-" and 1 <= int(text[5:]) <= 12:
            y, m = int(text[:4]), int(text[5:])
            nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
            return nxt - dt.timedelta(days=1)
    except ValueError:
        pass
    raise ValueError(f"not an ISO date (YYYY-MM-DD or YYYY-MM): {text!r}")


def decimal_year(d: dt.date) -> float:
    start = dt.date(d.year, 1, 1)
    return d.year + (d - start).days / (dt.date(d.year + 1, 1, 1) - start).days


# --------------------------------------------------------------------------------------------
# Evidence rows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One dated event bearing on one part of one forecast."""

    claim: str
    part: str
    date: dt.date
    event: str
    facts: Mapping[str, Any]
    source: str
    url: str = ""
    sourcing: str = "published"


def parse_facts(text: str) -> dict[str, Any]:
    """'name=vLLM;bits=4' -> {'name': 'vLLM', 'bits': 4.0}: numbers become floats, the rest stays text."""
    facts: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(";"))):
        if "=" not in item:
            raise ValueError(f"fact {item!r} is not key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            facts[key] = float(value)
        except ValueError:
            facts[key] = value
    return facts


def load_evidence(path: str | Path | None = None) -> list[Row]:
    """The hand-entered evidence rows; every row must have a claim, part, date, event and a source."""
    rows = []
    for i, rec in enumerate(read_table(Path(path or EVIDENCE_FILE)), start=1):
        where = f"evidence row {i} ({rec.get('claim')}/{rec.get('part')})"
        for key in ("claim", "part", "date", "event", "source", "sourcing"):
            if not (rec.get(key) or "").strip():
                raise ValueError(f"{where}: missing {key}")
        if rec["sourcing"] not in ("published", "memory"):
            raise ValueError(f"{where}: sourcing must be 'published' or 'memory', not {rec['sourcing']!r}")
        if not (rec.get("url") or "").strip() and "(" not in rec["source"]:
            raise ValueError(f"{where}: the source needs a URL or a dated publication")
        rows.append(Row(rec["claim"], rec["part"], parse_date(rec["date"]), rec["event"],
                        parse_facts(rec.get("facts", "")), rec["source"], rec.get("url", ""), rec["sourcing"]))
    return rows


# --------------------------------------------------------------------------------------------
# Forecasts and their pre-registered parts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    key: str
    expects: str                                  # what must happen (or, negated, must not) by `due`
    due: dt.date
    test: Callable[[Mapping[str, Any]], bool]     # does a row's facts count as the event?
    required: int = 1                             # distinct events needed
    distinct: str | None = None                   # fact that makes events distinct (e.g. 'name')
    negated: bool = False
    window_start: dt.date | None = None           # events before this date do not count

    def __post_init__(self) -> None:
        if self.required < 1:
            raise ValueError(f"part {self.key}: required must be >= 1")


@dataclass(frozen=True)
class Forecast:
    cid: str
    post: str                 # which post
    made: dt.date             # the post's date
    quote: str                # the post's words, briefly
    parts: tuple[Part, ...]

    @property
    def due(self) -> dt.date:
        return max(p.due for p in self.parts)

    def criterion(self) -> str:
        return "; ".join(f"[{p.key}] {p.expects} (by {p.due.isoformat()})" for p in self.parts)


@dataclass(frozen=True)
class PartResult:
    part: Part
    status: str
    event_date: dt.date | None
    counted: tuple[Row, ...]      # the rows that pass the test (by the judging date)


@dataclass(frozen=True)
class Judgement:
    forecast: Forecast
    outcome: str
    as_of: dt.date
    parts: tuple[PartResult, ...]

    def summary(self) -> str:
        return "; ".join(f"{r.part.key}: {r.status}" + (f" ({r.event_date.isoformat()})" if r.event_date else "")
                         for r in self.parts)


def _is(key: str, value: Any) -> Callable[[Mapping[str, Any]], bool]:
    return lambda f: f.get(key) == value


def _all(*tests: Callable[[Mapping[str, Any]], bool]) -> Callable[[Mapping[str, Any]], bool]:
    return lambda f: all(t(f) for t in tests)


def _at_least(key: str, threshold: float) -> Callable[[Mapping[str, Any]], bool]:
    return lambda f: isinstance(f.get(key), float) and f[key] >= threshold


def _at_most(key: str, threshold: float) -> Callable[[Mapping[str, Any]], bool]:
    return lambda f: isinstance(f.get(key), float) and f[key] <= threshold


D = dt.date
GPU_POST, SPARSE_POST, BRAIN_POST = D(2023, 1, 30), D(2019, 7, 11), D(2015, 7, 27)
INFERENCE_STACKS = ("transformers", "vLLM", "TGI", "TensorRT-LLM", "llama.cpp")

# The criteria. Each threshold is read off the forecast's wording; the reason is in `expects`.
FORECASTS: dict[str, Forecast] = {f.cid: f for f in [
    Forecast("pred-1", "GPU post", GPU_POST,
             "8-bit inference and training \"will become standard within 6 months\"", (
                 Part("inference", "'standard' inference: >= 3 of the 5 major LLM inference stacks ("
                      + ", ".join(INFERENCE_STACKS) + ") ship 8-bit inference as a supported option",
                      D(2023, 7, 30), _is("bits", 8.0), required=3, distinct="name"),
                 Part("training", "'standard' training: >= 2 released frontier-scale LLMs (>= 100B parameters) "
                      "pretrained with 8-bit matrix multiplications", D(2023, 7, 30),
                      _all(_is("fp8_gemms", "yes"), _is("released", "yes"), _at_least("params_b", 100)),
                      required=2, distinct="model"),
             )),
    Forecast("pred-2", "GPU post", GPU_POST, "\"We will see widespread 4-bit inference in the next year\"", (
        Part("stacks", "'widespread': >= 4 of the 5 major LLM inference stacks (" + ", ".join(INFERENCE_STACKS)
             + ") run 4-bit-weight models as a supported option", D(2024, 1, 30), _is("bits", 4.0),
             required=4, distinct="name"),
    )),
    Forecast("pred-3", "GPU post", GPU_POST,
             "\"the first high performance FP4 Large Language Model (LLM) with competitive predictive performance "
             "to be trained in 1-2 years time\"", (
                 Part("fp4-llm", "an LLM of >= 7B parameters trained on >= 1T tokens (a contemporary budget) with FP4 "
                      "matrix multiplications, within 1 point of a >= 8-bit baseline on its reported benchmark",
                      D(2025, 1, 30), _all(_is("fp4_gemms", "yes"), _at_least("params_b", 7),
                                           _at_least("tokens_t", 1), _at_most("gap_points", 1))),
             )),
    Forecast("pred-4", "GPU post", GPU_POST,
             "AMD + ROCm will not catch up \"in the next 1-2 years\": not \"until Tensor Core equivalent is introduced "
             "(1/2 to 1 year?) and a strong community is built around ROCm (2 years?)\"", (
                 Part("no-catch-up", "no catch-up within 2 years: 'caught up' would be AMD's data-center GPU revenue "
                      ">= 25 % of NVIDIA's data-center revenue in a year ending by the date",
                      D(2025, 1, 30), lambda f: (isinstance(f.get("amd_busd"), float)
                                                 and f["amd_busd"] >= 0.25 * f["nvidia_busd"]), negated=True),
                 Part("matrix-fp8", "a Tensor-Core equivalent within 1/2-1 year: an AMD GPU with matrix units for the "
                      "8-bit formats the post's advice rests on (FP8) ships", D(2024, 1, 30),
                      _all(_is("matrix_units", "yes"), _is("fp8", "yes")), window_start=GPU_POST),
                 Part("rocm-software", "a ROCm community in ~2 years: >= 2 of the major LLM inference stacks support "
                      "AMD GPUs through ROCm", D(2025, 1, 30), _is("rocm", "yes"), required=2, distinct="name"),
             )),
    Forecast("pred-5", "GPU post", GPU_POST,
             "\"AMD's next generation GPUs are going to be chiplet designs\" and \"might be better in terms of "
             "cost/performance\"", (
                 Part("chiplet-datacenter", "AMD's next data-center GPU is a chiplet design", D(2025, 12, 31),
                      _all(_is("line", "datacenter"), _is("chiplet", "yes")), window_start=GPU_POST),
                 Part("chiplet-consumer", "AMD's next consumer GPU generation is a chiplet design", D(2025, 12, 31),
                      _all(_is("line", "consumer"), _is("chiplet", "yes"), _is("after_post", "yes")),
                      window_start=GPU_POST),
                 Part("cost-performance", "an AMD GPU launched after the post with a list price gives >= 1.2x the "
                      "dense FP16 Tensor TFLOPS per dollar of the best NVIDIA card on sale at its launch",
                      D(2025, 12, 31), _at_least("ratio_to_nvidia", 1.2), window_start=GPU_POST),
             )),
    Forecast("pred-6", "GPU post", GPU_POST,
             "\"still improve the combination of algorithms + hardware to the year 2032\", then the end; an 8-bit "
             "GPU \"a very solid investment for the next 9 years\"", (
                 Part("per-watt", "improvement continues: a GPU released after the post gives >= 1.25x the best dense "
                      "FP16 TFLOPS per watt on sale at the post", D(2032, 12, 31), _at_least("ratio", 1.25),
                      window_start=GPU_POST),
                 Part("per-dollar", "improvement continues: a list-priced GPU released after the post gives >= 1.25x "
                      "the best dense FP16 TFLOPS per dollar on sale at the post", D(2032, 12, 31),
                      _at_least("ratio", 1.25), window_start=GPU_POST),
                 Part("still-in-2032", "still improving at the end: a GPU released in 2032 sets a new TFLOPS-per-watt "
                      "record", D(2032, 12, 31), _is("record", "yes"), window_start=D(2032, 1, 1)),
             )),
    Forecast("pred-7", "Sparse post", SPARSE_POST,
             "\"increases of just little more than 80% GPU performance in the next 5-8 years\"", (
                 Part("stagnation", "no GPU released in the 8 years exceeds 2x (+100 %, a margin over 'little more "
                      "than 80 %') the dense FP16 Tensor TFLOPS of the fastest GPU on sale at the post",
                      D(2027, 7, 11), _at_least("ratio", 2.0), negated=True, window_start=SPARSE_POST),
             )),
    Forecast("pred-8", "Sparse post", SPARSE_POST,
             "Graphcore-style processors for sparse workloads \"are around the corner\"; \"the first research team "
             "that can train a sparse neural network on a Graphcore processor successfully will unlock an entirely "
             "new level of artificial intelligence\"", (
                 Part("processor", "'around the corner': within 2 years a Graphcore processor with sparse-compute "
                      "support is on sale", D(2021, 7, 11), _all(_is("vendor", "Graphcore"), _is("sparse_support", "yes"))),
                 Part("new-level", "within 5 years, sparse training on such a processor gives a state-of-the-art "
                      "result", D(2024, 7, 11), _all(_is("hardware", "IPU"), _is("sparse_training", "yes"),
                                                     _is("sota", "yes"))),
             )),
    Forecast("pred-9", "Brain post", BRAIN_POST,
             "brain-level practical compute (HPCG #1 >= 10^21 FLOPS) \"by 2037\" (Moore's law), \"in the year 2053\" "
             "(1.8 y per doubling), \"in 2078\" (3 y)", tuple(
                 Part(f"by-{y}", f"the HPCG #1 reaches {BRAIN_FLOPS:.4g} FLOPS by the end of {y}", D(y, 12, 31),
                      _at_least("flops", BRAIN_FLOPS)) for y in (2037, 2053, 2078))),
    Forecast("pred-10", "Brain post", BRAIN_POST,
             "Kurzweil's \"brain-like computational power\" by 2020 and \"super-human intelligence as early as 2030\" "
             "are not supported by the hardware", tuple(
                 Part(f"not-by-{y}", f"the HPCG #1 does not reach the brain's {BRAIN_FLOPS:.4g} FLOPS by the end of {y}",
                      D(y, 12, 31), _at_least("flops", BRAIN_FLOPS), negated=True) for y in (2020, 2030))),
]}


def part_status(part: Part, made: dt.date, rows: Iterable[Row], as_of: dt.date) -> PartResult:
    """Status of one part as of `as_of` (rows dated after `as_of` are not yet known and are ignored)."""
    counted = sorted((r for r in rows if r.date <= as_of and part.test(r.facts)
                      and (part.window_start is None or r.date >= part.window_start)), key=lambda r: r.date)
    seen: set[Any] = set()
    event = None
    for r in counted:
        key = r.facts.get(part.distinct) if part.distinct else id(r)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) == part.required:
            event = r.date
            break
    if part.negated:
        if event is not None and event <= part.due:
            status = "failed"
        else:
            status = "pending" if as_of < part.due else "met"
            event = None if status == "pending" or event is None or event > part.due else event
    elif event is not None:
        late_until = part.due + (part.due - made) * (LATE_FACTOR - 1)
        status = "met" if event <= part.due else ("late" if event <= late_until else "failed")
    else:
        status = "pending" if as_of < part.due else "failed"
    return PartResult(part, status, event, tuple(counted))


def combine(statuses: Sequence[str]) -> str:
    """The forecast's outcome from its parts' statuses (see the module docstring)."""
    if not statuses:
        raise ValueError("a forecast needs at least one part")
    bad = [s for s in statuses if s not in PART_STATUSES]
    if bad:
        raise ValueError(f"unknown part status {bad[0]!r}")
    if all(s == "met" for s in statuses):
        return "came-true"
    settled = [s for s in statuses if s != "pending"]
    if len(settled) < len(statuses) and all(s == "met" for s in settled):
        return "not-yet-due"
    if any(s in ("met", "late") for s in settled):
        return "partly"
    return "wrong"


def judge(forecast: Forecast, rows: Iterable[Row], as_of: str | dt.date) -> Judgement:
    """Judge `forecast` on the rows that bear on it, as of `as_of`."""
    as_of = parse_date(as_of)
    if as_of < forecast.made:
        raise ValueError(f"{forecast.cid}: judging date {as_of} is before the forecast ({forecast.made})")
    mine = [r for r in rows if r.claim == forecast.cid]
    unknown = {r.part for r in mine} - {p.key for p in forecast.parts}
    if unknown:
        raise ValueError(f"{forecast.cid}: evidence for unknown part(s) {sorted(unknown)}")
    results = tuple(part_status(p, forecast.made, [r for r in mine if r.part == p.key], as_of)
                    for p in forecast.parts)
    return Judgement(forecast, combine([r.status for r in results]), as_of, results)


def sources_of(judgement: Judgement, rows: Iterable[Row]) -> str:
    """The sources behind a judgement: every row of that forecast known by the judging date."""
    mine = [r for r in rows if r.claim == judgement.forecast.cid and r.date <= judgement.as_of]
    seen: list[str] = []
    for r in sorted(mine, key=lambda r: r.date):
        text = f"{r.date.isoformat()} {r.source}" + (" [memory]" if r.sourcing == "memory" else "")
        if text not in seen:
            seen.append(text)
    return " | ".join(seen)


# --------------------------------------------------------------------------------------------
# GPU spec tables -> computed evidence (pred-5, pred-6, pred-7)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    name: str
    vendor: str
    segment: str
    released: dt.date
    fp16_tflops: float
    tdp_w: float
    price_usd: float | None          # launch MSRP only; None for cards without a list price
    source: str
    sourcing: str

    @property
    def per_watt(self) -> float:
        return self.fp16_tflops / self.tdp_w

    @property
    def per_dollar(self) -> float | None:
        return None if self.price_usd is None else self.fp16_tflops / self.price_usd


def _vendor(name: str, architecture: str) -> str:
    return "AMD" if architecture.startswith(("CDNA", "RDNA")) or name.startswith(("MI", "RX")) else "NVIDIA"


def load_gpus(specs: str | Path | None = None, since: str | Path | None = None) -> list[Gpu]:
    """Both spec tables as one list, by release date. gpu_specs.csv has no release date: its `spec_date`
    (the month of the launch or announcement) stands in for it, read as the month's first day (those
    cards were on sale at the posts that discuss them, e.g. the RTX 4070 Ti launched 2023-01-05)."""
    gpus = []
    # the shared spec table through its one checked reader; the newer table (prices and cache sizes may be
    # blank there) through the plain one, checked below for the numbers used here
    for path, has_release in ((specs or SPECS_FILE, False), (since or SPECS_SINCE_FILE, True)):
        for rec in (read_table(Path(path)) if has_release else gpu_specs(path)):
            name = rec["gpu"]
            for key in ("fp16_tensor_tflops", "tdp_w", "spec_source"):
                if not (rec.get(key) or "").strip():
                    raise ValueError(f"{Path(path).name}: {name} has no {key}")
            released = (parse_date(rec["release_date"]) if has_release
                        else parse_date(rec["spec_date"]).replace(day=1))
            listed = rec.get("price_kind", "").startswith("launch MSRP") and rec.get("price_usd", "").strip()
            sourcing = rec.get("sourcing", "published") if has_release else "published"
            if sourcing not in ("published", "memory"):
                raise ValueError(f"{Path(path).name}: {name}: unknown sourcing {sourcing!r}")
            gpu = Gpu(name, _vendor(name, rec["architecture"]), rec["segment"], released,
                      float(rec["fp16_tensor_tflops"]), float(rec["tdp_w"]),
                      float(rec["price_usd"]) if listed else None, rec["spec_source"], sourcing)
            if gpu.fp16_tflops <= 0 or gpu.tdp_w <= 0 or (gpu.price_usd is not None and gpu.price_usd <= 0):
                raise ValueError(f"{Path(path).name}: {name} has a non-positive number")
            gpus.append(gpu)
    return sorted(gpus, key=lambda g: (g.released, g.name))


def best_by(gpus: Sequence[Gpu], date: dt.date, metric: Callable[[Gpu], float | None],
            where: Callable[[Gpu], bool] = lambda g: True) -> Gpu | None:
    """The GPU with the highest `metric` among those released by `date` (and passing `where`)."""
    pool = [g for g in gpus if g.released <= date and where(g) and metric(g) is not None]
    return max(pool, key=metric) if pool else None


def _gpu_row(cid: str, part: str, g: Gpu, event: str, facts: dict[str, Any]) -> Row:
    return Row(cid, part, g.released, event, facts, f"spec table: {g.name} ({g.source})",
               sourcing="memory" if g.sourcing == "memory" else "computed")


def growth_rows(gpus: Sequence[Gpu], since: dt.date = SPARSE_POST, cid: str = "pred-7",
                where: Callable[[Gpu], bool] = lambda g: True) -> tuple[Gpu, list[Row]]:
    """pred-7: for each GPU released after `since`, its dense FP16 TFLOPS over the fastest on sale at `since`."""
    base = best_by(gpus, since, lambda g: g.fp16_tflops, where)
    if base is None:
        raise ValueError(f"no GPU released by {since} to compare with")
    rows = [_gpu_row(cid, "stagnation", g, f"{g.name}: {g.fp16_tflops:g} TFLOPS = "
                     f"{g.fp16_tflops / base.fp16_tflops:.2f}x {base.name}", {"ratio": g.fp16_tflops / base.fp16_tflops})
            for g in gpus if g.released > since and where(g)]
    return base, rows


def growth_by_year(gpus: Sequence[Gpu], base: Gpu, years: Iterable[int],
                   where: Callable[[Gpu], bool] = lambda g: True) -> dict[int, float]:
    """Fastest dense FP16 TFLOPS on sale at the end of each year, as a multiple of `base`'s."""
    out = {}
    for y in years:
        best = best_by(gpus, dt.date(y, 12, 31), lambda g: g.fp16_tflops, where)
        out[y] = best.fp16_tflops / base.fp16_tflops if best else float("nan")
    return out


def efficiency_rows(gpus: Sequence[Gpu], since: dt.date = GPU_POST, cid: str = "pred-6") -> tuple[dict, list[Row]]:
    """pred-6: per-watt and per-dollar ratios of each GPU released after `since` to the best on sale at
    `since`, and which GPUs set a new per-watt record when released."""
    base_w = best_by(gpus, since, lambda g: g.per_watt)
    base_d = best_by(gpus, since, lambda g: g.per_dollar)
    if base_w is None or base_d is None:
        raise ValueError(f"no GPU released by {since} to compare with")
    rows = []
    for g in gpus:
        if g.released <= since:
            continue
        rows.append(_gpu_row(cid, "per-watt", g, f"{g.name}: {g.per_watt:.3f} TFLOPS/W", {"ratio": g.per_watt / base_w.per_watt}))
        if g.per_dollar is not None:
            rows.append(_gpu_row(cid, "per-dollar", g, f"{g.name}: {1000 * g.per_dollar:.1f} GFLOPS/$",
                                 {"ratio": g.per_dollar / base_d.per_dollar}))
        record = best_by([h for h in gpus if h is not g], g.released, lambda h: h.per_watt)
        rows.append(_gpu_row(cid, "still-in-2032", g, f"{g.name}: per-watt record? ",
                             {"record": "yes" if record is None or g.per_watt > record.per_watt else "no"}))
    return {"per-watt": base_w, "per-dollar": base_d}, rows


def cost_performance_rows(gpus: Sequence[Gpu], since: dt.date = GPU_POST, cid: str = "pred-5") -> list[Row]:
    """pred-5: each list-priced AMD GPU released after `since` against the best NVIDIA TFLOPS per dollar
    on sale at its launch."""
    rows = []
    for g in gpus:
        if g.vendor != "AMD" or g.per_dollar is None or g.released <= since:
            continue
        rival = best_by(gpus, g.released, lambda h: h.per_dollar, lambda h: h.vendor == "NVIDIA")
        if rival is None:
            continue
        rows.append(_gpu_row(cid, "cost-performance", g,
                             f"{g.name} {1000 * g.per_dollar:.0f} GFLOPS/$ against {rival.name} "
                             f"{1000 * rival.per_dollar:.0f}", {"ratio_to_nvidia": g.per_dollar / rival.per_dollar}))
    return rows


# --------------------------------------------------------------------------------------------
# HPCG history -> computed evidence and the fit (pred-9, pred-10)
# --------------------------------------------------------------------------------------------


def hpcg_rows(entries: Sequence[Any], cids: Sequence[str] = ("pred-9", "pred-10")) -> list[Row]:
    """One row per HPCG list per forecast part that reads it (the #1's FLOPS on the list's date)."""
    rows = []
    for e in entries:
        date = parse_date(e.edition)
        for cid in cids:
            for part in FORECASTS[cid].parts:
                rows.append(Row(cid, part.key, date, f"HPCG #1 {e.system}: {e.pflops:g} PF", {"flops": e.flops},
                                f"HPCG list {e.edition} ({e.source})",
                                sourcing="memory" if e.sourcing == "memory" else "computed"))
    return rows


@dataclass(frozen=True)
class Reach:
    """When the HPCG #1 reaches `target`, projected from the latest list at the fitted pace and at the ends
    of its interval, plus the year the fitted line itself crosses it."""

    target: float
    from_latest: float
    from_latest_interval: tuple[float, float]
    fit_line: float
    doubling_years: float
    doubling_interval: tuple[float, float]


def load_hpcg() -> list:
    """The HPCG #1 history of the brain chapter (book/data_files/brain_hpcg_top1.csv), which pred-9 and
    pred-10 read: the forecasts chapter builds on the brain chapter's public data, not on its notebook."""
    from book.chapters import brain

    return brain.load_top1(benchmark="HPCG")


def reach_year(entries: Sequence[Any], target: float = BRAIN_FLOPS, *, n_boot: int = 2000, seed: int = 0,
               block: int = 4, level: float = 0.9) -> tuple[Any, Reach]:
    """brain-9's fit (book.chapters.brain.fit_doubling_time, block bootstrap) re-read as a forecast of the year."""
    from book.chapters import brain

    fit = brain.fit_doubling_time([e.year for e in entries], [e.flops for e in entries], n_boot=n_boot,
                                  seed=seed, block=block, level=level)
    last = max(entries, key=lambda e: e.year)

    def from_last(d: float) -> float:
        return last.year + d * math.log2(target / last.flops)

    lo, hi = fit.ci_doubling_years
    return fit, Reach(target, from_last(fit.doubling_years), (from_last(lo), from_last(hi)),
                      fit.year_reaching(target), fit.doubling_years, (lo, hi))


# --------------------------------------------------------------------------------------------
# What the notebook shows: tables, the judging of each forecast, reports
# --------------------------------------------------------------------------------------------


def show(df, **options: Any) -> None:
    """Display a DataFrame under pandas display options given by their short names
    (``show(df, max_colwidth=None, max_rows=40)``)."""
    import pandas as pd
    from IPython.display import display

    with pd.option_context(*[x for k, v in options.items() for x in (f"display.{k}", v)]):
        display(df)


def criteria_table(forecasts: Mapping[str, Forecast] | None = None):
    """Every forecast's parts with what must happen and by when: the criteria fixed before looking."""
    import pandas as pd

    return pd.DataFrame([(f.cid, f.post, f.made.isoformat(), p.key,
                          ("NOT: " if p.negated else "") + p.expects, p.due.isoformat())
                         for f in (forecasts or FORECASTS).values() for p in f.parts],
                        columns=["id", "post", "made", "part", "what must happen", "due"])


def evidence_table(evidence: Sequence[Row]):
    """The hand-entered evidence rows, as the chapter lists them."""
    import pandas as pd

    return pd.DataFrame([(r.claim, r.part, r.date.isoformat(), r.event, r.sourcing) for r in evidence],
                        columns=["id", "part", "date", "what happened", "sourcing"])


def evidence_summary(evidence: Sequence[Row]) -> str:
    """How many hand-entered rows were read in published sources and how many are from memory."""
    memory_rows = sum(r.sourcing == "memory" for r in evidence)
    return (f"{len(evidence)} hand-entered rows: {len(evidence) - memory_rows} read in published sources, "
            f"{memory_rows} from memory")


def gpus_table(gpus: Sequence[Gpu]):
    """The GPUs pred-5, pred-6 and pred-7 read, with the numbers they use."""
    import pandas as pd

    return pd.DataFrame([(g.name, g.vendor, g.segment, g.released.isoformat(), g.fp16_tflops, g.tdp_w,
                          g.price_usd, g.sourcing) for g in gpus],
                        columns=["GPU released since the GPU post", "vendor", "segment", "released",
                                 "dense FP16 TFLOPS", "TDP W", "list price $", "sourcing"])


def spec_summary(gpus: Sequence[Gpu]) -> str:
    """How many spec rows (pred-5, pred-6, pred-7) were checked against published sources."""
    spec_memory = [g.name for g in gpus if g.sourcing == "memory"]
    return (f"{len(gpus) - len(spec_memory)} of {len(gpus)} rows checked against published sources; "
            f"from memory: "
            + (", ".join(spec_memory) or "none"))


class Scoreboard:
    """Judges each forecast on every evidence row known so far (`rows` grows as the chapter computes more)
    and gives the ledger's `forecast` its arguments; keeps each judgement for the timeline."""

    def __init__(self, evidence: Sequence[Row], judged_on: dt.date):
        self.evidence = list(evidence)
        self.rows: list[Row] = list(evidence)
        self.judged_on = judged_on
        self.judgements: dict[str, Judgement] = {}

    def judge(self, cid: str, *, fails_if: str, note: str = "", measured: Any = None,
              extra_sources: str = "") -> dict[str, Any]:
        """Judge forecast `cid`, print its parts' statuses, and return the keyword arguments of
        `ledger.forecast` (outcome, post, dates, criterion, sources, fails_if, measured, note)."""
        f = FORECASTS[cid]
        j = judge(f, self.rows, self.judged_on)
        self.judgements[cid] = j
        print(f"{cid} {j.outcome}: " + j.summary())
        sources = sources_of(j, self.evidence) or extra_sources
        if extra_sources and sources != extra_sources:
            sources = f"{extra_sources} | {sources}"
        return dict(outcome=j.outcome, post=f.quote, judged=self.judged_on.isoformat(), due=f.due.isoformat(),
                    criterion=f.criterion(), sources=sources, fails_if=fails_if,
                    measured=measured or j.summary(), note=note)

    def memory_events(self, cid: str) -> list[str]:
        """The events of `cid`'s rows that are from memory (not checked against a published source)."""
        return [r.event for r in self.rows if r.claim == cid and r.sourcing == "memory"]

    def table(self):
        """Every forecast's verdict, due date and parts."""
        import pandas as pd

        j = self.judgements
        return pd.DataFrame([(c, j[c].outcome, j[c].forecast.due.isoformat(), j[c].summary())
                             for c in FORECASTS],
                            columns=["id", "verdict", "due", "parts"]).set_index("id")

    def timeline(self):
        """`plot_timeline` of every forecast, in the catalogue's order."""
        return plot_timeline([self.judgements[c] for c in FORECASTS])


def growth_table(gpus: Sequence[Gpu], base: Gpu, base_consumer: Gpu, years: Iterable[int]):
    """pred-7: the fastest dense FP16 on sale at the end of each year, over the Titan RTX (all GPUs) and
    over the fastest consumer card of 2019 (consumer cards only)."""
    import pandas as pd

    years = list(years)
    table = pd.DataFrame({"all GPUs (x Titan RTX)": growth_by_year(gpus, base, years),
                          "consumer cards only": growth_by_year(gpus, base_consumer, years, is_consumer)})
    table.index.name = "end of year"
    return table.round(2)


def is_consumer(g: Gpu) -> bool:
    """pred-7's consumer-only reading: the cards sold to consumers."""
    return g.segment == "consumer"


@dataclass(frozen=True)
class Stagnation:
    """pred-7's numbers: the growth 5 years on, the consumer cards' growth by the judging year, and the
    first GPU past 2x."""

    five_years_on: float
    consumer: float
    first_past: Row
    year: int

    @property
    def note(self) -> str:
        return (f"fastest GPU 5 years on (2024) = {self.five_years_on:.1f}x the Titan RTX; the first "
                f"past 2x: "
                f"{self.first_past.event} ({self.first_past.date.isoformat()[:7]}); "
                f"consumer cards at FP16 with FP32 accumulate only {self.consumer:.2f}x by {self.year} "
                f"(RTX 5090), "
                "within the forecast")


def stagnation(gpus: Sequence[Gpu], base: Gpu, base_consumer: Gpu, growth: Sequence[Row],
               year: int) -> Stagnation:
    """pred-7: the growth of the fastest GPU over `base` by 2024, of consumer cards by `year`."""
    # the first past +100 %
    first_past = min((r for r in growth if r.facts["ratio"] > 2), key=lambda r: r.date)
    return Stagnation(growth_by_year(gpus, base, [2024])[2024],
                      growth_by_year(gpus, base_consumer, [year], is_consumer)[year], first_past, year)


@dataclass(frozen=True)
class Efficiency:
    """pred-6's numbers so far: the best per watt, per dollar, and per dollar among NVIDIA's cards."""

    per_watt: Row
    per_dollar: Row
    per_dollar_nvidia: Row

    @property
    def measured(self) -> list[float]:
        return [round(r.facts["ratio"], 2) for r in (self.per_watt, self.per_dollar, self.per_dollar_nvidia)]

    def report(self) -> str:
        w, d, n = self.per_watt, self.per_dollar, self.per_dollar_nvidia
        return (f"best per watt since the post: {w.event} = {w.facts['ratio']:.2f}x; per dollar: "
                f"{d.event} = {d.facts['ratio']:.2f}x (NVIDIA only: {n.event} = {n.facts['ratio']:.2f}x)")

    @property
    def note(self) -> str:
        w, d, n = self.per_watt, self.per_dollar, self.per_dollar_nvidia
        return (f"so far: dense FP16 per watt {w.facts['ratio'] - 1:+.0%} ({w.event.split(':')[0]}); "
                f"per dollar {d.facts['ratio']:.1f}x ({d.event.split(':')[0]}"
                + ("; its FP16 rate is derived, a memory row" if d.sourcing == "memory" else "")
                + f"), NVIDIA at list prices {n.facts['ratio'] - 1:+.0%} ({n.event.split(':')[0]})")


def efficiency(eff: Sequence[Row]) -> Efficiency:
    """pred-6: the best per-watt and per-dollar rows since the GPU post (and NVIDIA's best per dollar)."""
    ratio = lambda r: r.facts["ratio"]  # noqa: E731
    return Efficiency(max((r for r in eff if r.part == "per-watt"), key=ratio),
                      max((r for r in eff if r.part == "per-dollar"), key=ratio),
                      max((r for r in eff if r.part == "per-dollar" and "RX" not in r.event), key=ratio))


def reach_report(entries: Sequence[Any], reach: Reach, post_years: Sequence[int] = (2037, 2053, 2078)) -> str:
    """pred-9: the fitted pace, the projected year from the latest list, and the post's dates against it."""
    lo, hi = reach.from_latest_interval
    last = entries[-1]
    return "\n".join([
        f"HPCG #1, {entries[0].edition} to {last.edition}: {reach.doubling_years:.2f} y per doubling "
        f"(90 %: {reach.doubling_interval[0]:.2f}-{reach.doubling_interval[1]:.2f})",
        f"from {last.system} ({last.pflops} PF, {last.edition}): reaches {reach.target:.4g} FLOPS in "
        f"{reach.from_latest:.0f} (90 %: {lo:.0f}-{hi:.0f}); the fitted line itself crosses it in "
        f"{reach.fit_line:.0f}"] + [f"  post's {y}: {'inside' if lo <= y <= hi else 'outside'} the interval"
                                    for y in post_years])


def reach_note(entries: Sequence[Any], reach: Reach, post_years: Sequence[int] = (2037, 2053, 2078)) -> str:
    """pred-9's note: the projection, which of the post's dates it contains, the rows from memory."""
    lo, hi = reach.from_latest_interval
    inside = [y for y in post_years if lo <= y <= hi]
    from_memory = sum(e.sourcing == "memory" for e in entries)
    return (f"projected {reach.from_latest:.0f} (90 % {lo:.0f}-{hi:.0f}) from the 2014-2025 HPCG fit; "
            f"of the post's "
            f"dates only {', '.join(map(str, inside)) or 'none'} inside; {from_memory} of the "
            f"{len(entries)} HPCG "
            "rows are from memory")


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

# the forecast verdicts' colours, from the one place they live (book.core.verdicts)
OUTCOME_COLOURS = {name: verdicts.COLOURS[name] for name in verdicts.FORECAST_VERDICTS}
STATUS_MARKERS = {"met": "o", "late": "s", "failed": "X", "pending": "d"}


def plot_timeline(judgements: Sequence[Judgement], ax=None):
    """Each forecast: a bar from the post to its (last) due date, coloured by verdict; each part's event or
    due date marked; the judging date as a vertical line."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(10, 0.45 * len(judgements) + 1.6))[1]
    for i, j in enumerate(reversed(judgements)):
        f = j.forecast
        end = min(f.due, dt.date(2040, 12, 31))
        ax.barh(i, decimal_year(end) - decimal_year(f.made), left=decimal_year(f.made), height=0.5,
                color=OUTCOME_COLOURS[j.outcome], alpha=0.35)
        for r in j.parts:
            when = r.event_date or r.part.due
            if when.year > 2040:
                continue
            ax.plot(decimal_year(when), i, STATUS_MARKERS[r.status], color=OUTCOME_COLOURS[j.outcome], ms=7)
        ax.text(2041.2, i, j.outcome, va="center", fontsize=9, color=OUTCOME_COLOURS[j.outcome])
    ax.axvline(decimal_year(judgements[0].as_of), color="k", lw=1, ls="--")
    ax.set_yticks(range(len(judgements)), [j.forecast.cid for j in reversed(judgements)])
    ax.set_xlim(2014.5, 2045)
    ax.set_xlabel("year (bars: post -> due date, cut at 2040; o met, s late, X failed, diamond pending)")
    ax.set_title(f"The forecasts, judged {judgements[0].as_of.isoformat()} (dashed line)")
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_growth(gpus: Sequence[Gpu], base: Gpu, since: dt.date = SPARSE_POST, ax=None):
    """pred-7: dense FP16 Tensor TFLOPS by release date against the post's forecast band."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(9, 4.5))[1]
    for segment, marker in (("datacenter", "s"), ("workstation", "^"), ("consumer", "o")):
        for vendor, colour in (("NVIDIA", "#4c72b0"), ("AMD", "#c44e52")):
            pts = [g for g in gpus if g.segment == segment and g.vendor == vendor]
            if pts:
                ax.scatter([decimal_year(g.released) for g in pts], [g.fp16_tflops for g in pts], marker=marker,
                           color=colour, s=28, zorder=3, label=f"{vendor} {segment}")
    s = decimal_year(since)
    ax.fill_between([s + 5, s + 8], base.fp16_tflops * 1.8, base.fp16_tflops * 2.0, color="#dd8452", alpha=0.5,
                    label="post: +80 % (to +100 %) in 5-8 years")
    ax.axhline(base.fp16_tflops, color="#dd8452", lw=1, ls=":")
    ax.axvline(s, color="k", lw=1, ls="--")
    ax.text(s + 0.1, base.fp16_tflops * 0.62, f"post (2019-07):\nfastest = {base.name}, {base.fp16_tflops:g}",
            fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel("release date")
    ax.set_ylabel("dense FP16 Tensor TFLOPS (FP32 accumulate)")
    ax.set_title("GPU performance since the sparse post: forecast against the spec sheets")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def plot_efficiency(gpus: Sequence[Gpu], bases: Mapping[str, Gpu], since: dt.date = GPU_POST):
    """pred-6: TFLOPS per watt (all) and per dollar (list-priced cards) by release date."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, metric, label in ((axes[0], "per-watt", lambda g: g.per_watt, "dense FP16 TFLOPS per watt (TDP)"),
                                   (axes[1], "per-dollar", lambda g: g.per_dollar, "dense FP16 GFLOPS per dollar (MSRP)")):
        scale = 1.0 if key == "per-watt" else 1000.0
        for vendor, colour in (("NVIDIA", "#4c72b0"), ("AMD", "#c44e52")):
            pts = [g for g in gpus if g.vendor == vendor and metric(g) is not None]
            ax.scatter([decimal_year(g.released) for g in pts], [scale * metric(g) for g in pts], color=colour,
                       s=26, zorder=3, label=vendor)
        base = bases[key]
        ax.axhline(scale * metric(base), color="k", lw=1, ls=":")
        ax.axhline(1.25 * scale * metric(base), color="#1a7f37", lw=1, ls="--",
                   label=f"1.25x the best at the post ({base.name})")
        ax.axvline(decimal_year(since), color="k", lw=1, ls="--")
        ax.set_xlabel("release date")
        ax.set_ylabel(label)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle("Performance per watt and per dollar by release date (GPU post: January 2023, dashed)")
    fig.tight_layout()
    return fig


def plot_reach(entries: Sequence[Any], fit: Any, reach: Reach, post_years: Sequence[int] = (2037, 2053, 2078),
               end_year: float = 2085):
    """pred-9: HPCG #1 history, the fit with its interval (projected from the latest list) and the post's dates."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8))
    last = max(entries, key=lambda e: e.year)
    years = np.linspace(last.year, end_year, 200)
    ax.scatter([e.year for e in entries], [e.flops for e in entries], color="#4c72b0", s=16, zorder=3,
               label="HPCG #1 of each list")
    ax.plot(years, last.flops * 2 ** ((years - last.year) / reach.doubling_years), color="#4c72b0", lw=2,
            label=f"fitted pace {reach.doubling_years:.2f} y/doubling, from the latest list")
    lo, hi = reach.doubling_interval
    ax.fill_between(years, last.flops * 2 ** ((years - last.year) / hi), last.flops * 2 ** ((years - last.year) / lo),
                    color="#4c72b0", alpha=0.15, label=f"90 % interval of the pace ({lo:.2f}-{hi:.2f} y)")
    ax.axhline(reach.target, color="k", lw=1)
    ax.text(2015, reach.target * 1.6, f"brain (post): {reach.target:.4g} FLOPS", fontsize=9)
    for y, c in zip(post_years, ("#dd8452", "#55a868", "#c44e52")):
        ax.axvline(y, color=c, ls="--", lw=1.2, label=f"post: {y}")
    a, b = sorted(reach.from_latest_interval)
    ax.axvspan(a, min(b, end_year), ymin=0.93, ymax=1.0, color="#4c72b0", alpha=0.35)
    ax.set_yscale("log")
    ax.set_ylim(1e14, 3e22)
    ax.set_xlim(2013, end_year)
    ax.set_xlabel("year")
    ax.set_ylabel("FLOPS (HPCG)")
    ax.set_title(f"Brain-level practical compute: projected {reach.from_latest:.0f} "
                 f"(90 %: {a:.0f}-{b:.0f}, band at the top) against the post's dates")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = [
    "OUTCOMES", "PART_STATUSES", "LATE_FACTOR", "BRAIN_FLOPS", "FORECASTS", "Forecast", "Part", "Row", "PartResult",
    "Judgement", "parse_date", "decimal_year", "parse_facts", "load_evidence", "part_status", "combine", "judge",
    "sources_of", "Gpu", "load_gpus", "best_by", "growth_rows", "growth_by_year", "efficiency_rows",
    "cost_performance_rows", "hpcg_rows", "Reach", "reach_year", "plot_timeline", "plot_growth", "plot_efficiency",
    "plot_reach", "EVIDENCE_FILE", "SPECS_FILE", "SPECS_SINCE_FILE",
]
