"""The book's sourced data tables (`book/data_files/*.csv`), read one way.

Every table is a CSV whose lines starting with `#` are comments (the table's own notes on where its
numbers come from). `read_table` returns its rows as dicts and refuses a row that leaves a required
column empty, so a number never enters a chapter without the source its row names. The GPU spec
table is shared by three chapters (gpu, predictions, and sparse's brain-vs-GPU check), so its
loader and its checks live here once.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterable

from book.core.registry import DATA_FILES

GPU_SPECS_FILE = DATA_FILES / "gpu_specs.csv"
GPU_SPEC_COLUMNS = ("gpu", "architecture", "segment", "memory_bandwidth_gbs", "fp16_tensor_tflops",
                    "fp8_tensor_tflops", "l2_mb", "l1_shared_kb_per_sm", "memory_gb", "tdp_w",
                    "price_usd", "price_kind", "price_date", "price_source", "spec_date", "spec_source")
# fp8 is blank where a GPU has none; every other column must hold a value
GPU_SPEC_REQUIRED = tuple(c for c in GPU_SPEC_COLUMNS if c != "fp8_tensor_tflops")
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


def read_table(path: str | os.PathLike, required: Iterable[str] = (), *,
               key: str | None = None) -> list[dict[str, str]]:
    """The rows of a commented CSV (`#` lines and blank lines skipped) as dicts of stripped strings.
    Raises ValueError naming the file and the row (its `key` column, else its line) when a column of
    `required` is missing from the header or empty in a row."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    rows = [{k: (v or "").strip() for k, v in rec.items()} for rec in csv.DictReader(io.StringIO(body))]
    required = tuple(required)
    header = set(rows[0]) if rows else set()
    absent = [c for c in required if rows and c not in header]
    if absent:
        raise ValueError(f"{path.name}: no column {absent}")
    problems = [f"{row.get(key) if key else f'row {i}'}: {col} is empty"
                for i, row in enumerate(rows, start=1) for col in required if not row[col]]
    if problems:
        raise ValueError(f"{path.name}: " + "; ".join(problems))
    return rows


def gpu_specs(path: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """The GPU spec table's rows (gpu_specs.csv): every number with the date and source it comes
    from. Raises ValueError when a row lacks a number, a date or a source, when a date is not
    YYYY-MM[-DD], or when a GPU is listed twice."""
    path = Path(path or GPU_SPECS_FILE)
    rows = read_table(path, GPU_SPEC_COLUMNS[:1], key="gpu")
    absent = [c for c in GPU_SPEC_COLUMNS if rows and c not in rows[0]]
    if absent:
        raise ValueError(f"spec table lacks columns: {absent}")
    problems = [f"{r['gpu']}: {c} is empty" for r in rows for c in GPU_SPEC_REQUIRED if not r[c]]
    problems += [f"{r['gpu']}: {c}={r[c]!r} is not YYYY-MM[-DD]"
                 for r in rows for c in ("price_date", "spec_date") if r[c] and not _DATE.match(r[c])]
    names = [r["gpu"] for r in rows]
    if len(set(names)) != len(names):
        problems.append("duplicate GPU names")
    if problems:
        raise ValueError("spec table: " + "; ".join(problems))
    return rows


def gpu_specs_frame(path: str | os.PathLike | None = None):
    """`gpu_specs` as a pandas DataFrame indexed by GPU name, numbers as floats (fp8 NaN where none)."""
    import pandas as pd

    df = pd.DataFrame(gpu_specs(path))
    numeric = [c for c in GPU_SPEC_COLUMNS if c.endswith(("_gbs", "_tflops", "_mb", "_kb_per_sm", "_gb", "_w",
                                                          "_usd"))]
    for col in numeric:
        df[col] = pd.to_numeric(df[col].replace("", float("nan")))
    return df.set_index("gpu")
