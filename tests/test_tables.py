"""book.core.tables: commented CSVs read one way; a row without its number, date or source is refused
with the row named; the GPU spec table shared by three chapters loads and checks once."""
import math

import pytest

import book  # noqa: F401
from book.core import tables


def test_comments_and_blank_lines_are_skipped_and_values_stripped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("# where the numbers come from\nname,value,source\n\na, 1 ,paper\n# note\nb,2,site\n")
    assert tables.read_table(path, ["value"]) == [{"name": "a", "value": "1", "source": "paper"},
                                                  {"name": "b", "value": "2", "source": "site"}]


def test_an_empty_required_cell_names_its_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,value,source\na,1,\n")
    with pytest.raises(ValueError, match="t.csv: a: source is empty"):
        tables.read_table(path, ["source"], key="name")
    with pytest.raises(ValueError, match="no column"):
        tables.read_table(path, ["year"])


def test_the_gpu_spec_table_loads_with_a_source_and_date_on_every_row():
    rows = tables.gpu_specs()
    assert len(rows) >= 10 and all(r["spec_source"] and r["spec_date"] for r in rows)
    frame = tables.gpu_specs_frame()
    assert frame.loc["A100 SXM4 40GB", "memory_bandwidth_gbs"] == 1555.0
    assert math.isnan(frame.loc["V100 SXM2", "fp8_tensor_tflops"])


def test_a_bad_spec_row_is_refused(tmp_path):
    text = tables.GPU_SPECS_FILE.read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1]
    bad = tmp_path / "specs.csv"
    bad.write_text("\n".join([header, first.replace("2017-05", "May 2017")]) + "\n")
    with pytest.raises(ValueError, match="not YYYY-MM"):
        tables.gpu_specs(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([header, first, first]) + "\n")
    with pytest.raises(ValueError, match="duplicate"):
        tables.gpu_specs(dup)
