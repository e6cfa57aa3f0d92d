"""Tests of book.chapters.predictions: dates, evidence loading, the outcome logic (every outcome reachable),
the computed growth/efficiency evidence on small synthetic tables, and the committed evidence files."""
import datetime as dt
import textwrap

import pytest

from book.chapters import brain
from book.chapters import predictions as P

D = dt.date


def row(part, date, claim="pred-x", **facts):
    return P.Row(claim, part, P.parse_date(date), "event", facts, "a source (2024)")


def forecast(*parts, made=D(2020, 1, 1)):
    return P.Forecast("pred-x", "test post", made, "a quote", tuple(parts))


HAPPENS = P.Part("a", "something happens", D(2021, 1, 1), lambda f: f.get("ok") == "yes")
NEVER = P.Part("b", "something does not happen", D(2021, 1, 1), lambda f: f.get("ok") == "yes", negated=True)


# -- dates ---------------------------------------------------------------------------------------

def test_month_precision_reads_as_the_months_last_day():
    assert P.parse_date("2023-04") == D(2023, 4, 30)
    assert P.parse_date("2024-02") == D(2024, 2, 29)
    assert P.parse_date("2023-12") == D(2023, 12, 31)
    assert P.parse_date("2023-07-30") == D(2023, 7, 30)


@pytest.mark.parametrize("bad", ["2023", "2023-13", "30.07.2023", "", "2023-02-30"])
def test_bad_dates_are_refused(bad):
    with pytest.raises(ValueError, match="ISO date"):
        P.parse_date(bad)


def test_facts_parse_numbers_and_text():
    assert P.parse_facts("name=vLLM; bits=4;gap=na") == {"name": "vLLM", "bits": 4.0, "gap": "na"}
    with pytest.raises(ValueError, match="key=value"):
        P.parse_facts("name")


# -- one part ------------------------------------------------------------------------------------

def test_a_part_met_on_time_late_failed_and_pending():
    made = D(2020, 1, 1)
    on_time = P.part_status(HAPPENS, made, [row("a", "2020-06-01", ok="yes")], D(2025, 1, 1))
    assert (on_time.status, on_time.event_date) == ("met", D(2020, 6, 1))
    # horizon 1 year, LATE_FACTOR 2: an event up to 2022-01-01 is late, after it failed
    assert P.part_status(HAPPENS, made, [row("a", "2021-06-01", ok="yes")], D(2025, 1, 1)).status == "late"
    assert P.part_status(HAPPENS, made, [row("a", "2022-06-01", ok="yes")], D(2025, 1, 1)).status == "failed"
    assert P.part_status(HAPPENS, made, [], D(2025, 1, 1)).status == "failed"
    assert P.part_status(HAPPENS, made, [], D(2020, 6, 1)).status == "pending"


def test_rows_that_fail_the_test_or_lie_after_the_judging_date_do_not_count():
    rows = [row("a", "2020-03-01", ok="no"), row("a", "2020-09-01", ok="yes")]
    assert P.part_status(HAPPENS, D(2020, 1, 1), rows, D(2020, 6, 1)).status == "pending"
    assert P.part_status(HAPPENS, D(2020, 1, 1), rows, D(2020, 12, 1)).status == "met"


def test_required_counts_distinct_events():
    part = P.Part("a", "three stacks", D(2021, 1, 1), lambda f: True, required=3, distinct="name")
    rows = [row("a", "2020-02-01", name="x"), row("a", "2020-03-01", name="x"), row("a", "2020-04-01", name="y")]
    assert P.part_status(part, D(2020, 1, 1), rows, D(2022, 1, 1)).status == "failed"
    rows.append(row("a", "2020-05-01", name="z"))
    res = P.part_status(part, D(2020, 1, 1), rows, D(2022, 1, 1))
    assert (res.status, res.event_date) == ("met", D(2020, 5, 1))


def test_negated_part_holds_until_the_event_and_fails_when_it_comes_in_time():
    made = D(2020, 1, 1)
    assert P.part_status(NEVER, made, [], D(2020, 6, 1)).status == "pending"
    assert P.part_status(NEVER, made, [], D(2021, 6, 1)).status == "met"
    assert P.part_status(NEVER, made, [row("b", "2020-06-01", ok="yes")], D(2020, 7, 1)).status == "failed"
    # an event after the due date does not break a forecast about the time before it
    assert P.part_status(NEVER, made, [row("b", "2021-06-01", ok="yes")], D(2022, 1, 1)).status == "met"


def test_window_start_ignores_events_before_it():
    part = P.Part("a", "in 2032", D(2032, 12, 31), lambda f: True, window_start=D(2032, 1, 1))
    assert P.part_status(part, D(2023, 1, 1), [row("a", "2025-01-01")], D(2026, 1, 1)).status == "pending"
    assert P.part_status(part, D(2023, 1, 1), [row("a", "2025-01-01")], D(2033, 1, 1)).status == "failed"


# -- the forecast's outcome: every outcome is reachable ------------------------------------------------

@pytest.mark.parametrize("statuses, outcome", [
    (["met"], "came-true"),
    (["met", "met"], "came-true"),
    (["pending"], "not-yet-due"),
    (["met", "pending"], "not-yet-due"),
    (["met", "failed"], "partly"),
    (["late"], "partly"),
    (["late", "pending"], "partly"),
    (["failed"], "wrong"),
    (["failed", "pending"], "wrong"),
])
def test_combine(statuses, outcome):
    assert P.combine(statuses) == outcome


def test_combine_refuses_nonsense():
    with pytest.raises(ValueError):
        P.combine([])
    with pytest.raises(ValueError, match="unknown part status"):
        P.combine(["maybe"])


def test_judge_reaches_every_outcome_from_evidence():
    f = forecast(HAPPENS, NEVER)
    yes_a, yes_b = row("a", "2020-05-01", ok="yes"), row("b", "2020-05-01", ok="yes")
    assert P.judge(f, [yes_a], "2021-06-01").outcome == "came-true"
    assert P.judge(f, [yes_a], "2020-06-01").outcome == "not-yet-due"
    assert P.judge(f, [yes_a, yes_b], "2021-06-01").outcome == "partly"
    assert P.judge(f, [yes_b], "2021-06-01").outcome == "wrong"
    assert set(P.OUTCOMES) == {"came-true", "partly", "not-yet-due", "wrong"}


def test_judge_refuses_unknown_parts_and_early_dates():
    f = forecast(HAPPENS)
    with pytest.raises(ValueError, match="unknown part"):
        P.judge(f, [row("zzz", "2020-05-01")], "2021-06-01")
    with pytest.raises(ValueError, match="before the forecast"):
        P.judge(f, [], "2019-01-01")


def test_every_forecast_has_parts_and_a_criterion():
    assert list(P.FORECASTS) == [f"pred-{i}" for i in range(1, 11)]
    for f in P.FORECASTS.values():
        assert f.parts and f.quote and f.criterion()
        assert all(p.due > f.made for p in f.parts)


# -- computed evidence on synthetic spec tables --------------------------------------------------------

HEAD = ("gpu,architecture,segment,memory_bandwidth_gbs,fp16_tensor_tflops,fp8_tensor_tflops,l2_mb,"
        "l1_shared_kb_per_sm,memory_gb,tdp_w,price_usd,price_kind,price_date,price_source,spec_date,spec_source")


def spec_files(tmp_path, old_rows, new_rows):
    old = tmp_path / "old.csv"
    new = tmp_path / "new.csv"
    old.write_text(HEAD + "\n" + "\n".join(old_rows) + "\n")
    new.write_text("# comment\n" + HEAD + ",release_date,sourcing\n" + "\n".join(new_rows) + "\n")
    return old, new


def test_growth_and_efficiency_on_a_synthetic_table(tmp_path):
    old, new = spec_files(tmp_path, [
        "Old A,Turing,consumer,1,100,,1,1,1,250,1000,launch MSRP,2018-12,x,2018-12,spec",
        "Old B,Ampere,datacenter,1,300,,1,1,1,300,9000,approximate street price,2020-05,x,2020-05,spec",
    ], [
        "New C,Blackwell,consumer,1,150,,1,1,1,300,500,launch MSRP,2025-01,x,2025-01,spec,2025-01-30,memory",
        "RX New,RDNA 4,consumer,1,120,,1,1,1,200,300,launch MSRP,2025-03,x,2025-03,spec,2025-03-06,published",
    ])
    gpus = P.load_gpus(old, new)
    assert [g.name for g in gpus] == ["Old A", "Old B", "New C", "RX New"]
    assert gpus[0].released == D(2018, 12, 1) and gpus[1].price_usd is None
    assert gpus[3].vendor == "AMD" and gpus[2].vendor == "NVIDIA"

    base, rows = P.growth_rows(gpus, since=D(2019, 7, 11), cid="pred-7")
    assert base.name == "Old A"
    assert {r.event.split(":")[0]: round(r.facts["ratio"], 3) for r in rows} == {
        "Old B": 3.0, "New C": 1.5, "RX New": 1.2}
    assert P.growth_by_year(gpus, base, [2019, 2020, 2025]) == {2019: 1.0, 2020: 3.0, 2025: 3.0}
    consumer = lambda g: g.segment == "consumer"  # noqa: E731
    assert P.growth_by_year(gpus, base, [2025], consumer) == {2025: 1.5}
    judged = P.judge(P.FORECASTS["pred-7"], rows, "2026-11-27")
    assert (judged.outcome, judged.parts[0].event_date) == ("wrong", D(2020, 5, 1))
    base_c, rows_c = P.growth_rows(gpus, since=D(2019, 7, 11), where=consumer)
    assert P.judge(P.FORECASTS["pred-7"], rows_c, "2026-11-27").outcome == "not-yet-due"
    assert P.judge(P.FORECASTS["pred-7"], rows_c, "2027-08-01").outcome == "came-true"

    bases, eff = P.efficiency_rows(gpus, since=D(2023, 1, 30))
    assert bases["per-watt"].name == "Old B" and bases["per-dollar"].name == "Old A"
    per_dollar = {r.event.split(":")[0]: round(r.facts["ratio"], 3) for r in eff if r.part == "per-dollar"}
    assert per_dollar == {"New C": 3.0, "RX New": 4.0}     # 0.3 and 0.4 TFLOPS/$ against 0.1
    per_watt = {r.event.split(":")[0]: round(r.facts["ratio"], 3) for r in eff if r.part == "per-watt"}
    assert per_watt == {"New C": 0.5, "RX New": 0.6}

    cost = P.cost_performance_rows(gpus, since=D(2023, 1, 30))
    assert len(cost) == 1 and round(cost[0].facts["ratio_to_nvidia"], 3) == round(0.4 / 0.3, 3)


def test_spec_rows_without_a_number_or_with_a_bad_sourcing_are_refused(tmp_path):
    old, new = spec_files(tmp_path, ["Old A,Turing,consumer,1,,,1,1,1,250,1000,launch MSRP,2018-12,x,2018-12,spec"], [])
    with pytest.raises(ValueError, match="fp16_tensor_tflops is empty"):   # the shared table's own check
        P.load_gpus(old, new)
    old, new = spec_files(tmp_path, [], ["N,Ada,consumer,1,,,1,1,1,1,1,launch MSRP,2025-01,x,2025-01,s,2025-01-01,"
                                         "published"])
    with pytest.raises(ValueError, match="no fp16_tensor_tflops"):
        P.load_gpus(old, new)
    old, new = spec_files(tmp_path, [], ["N,Ada,consumer,1,1,,1,1,1,1,1,launch MSRP,2025-01,x,2025-01,s,2025-01-01,guess"])
    with pytest.raises(ValueError, match="unknown sourcing"):
        P.load_gpus(old, new)


# -- HPCG -------------------------------------------------------------------------------------------------

def test_hpcg_rows_and_reach_on_a_synthetic_history():
    entries = [brain.ListEntry(f"{y}-06", "HPCG", "M", 2.0 ** (y - 2014), "s", "press") for y in range(2014, 2026)]
    rows = P.hpcg_rows(entries)
    assert {r.claim for r in rows} == {"pred-9", "pred-10"}
    fit, reach = P.reach_year(entries, target=1e21, n_boot=200)
    assert fit.doubling_years == pytest.approx(1.0)
    # from 2^11 PF in mid-2025, one doubling a year: log2(1e21 / 2.048e18) ~ 8.93 more years
    assert reach.from_latest == pytest.approx(2025 + 5.5 / 12 + 8.93, abs=0.01)
    assert P.judge(P.FORECASTS["pred-9"], rows, "2026-01-01").outcome == "not-yet-due"
    assert P.judge(P.FORECASTS["pred-10"], rows, "2026-01-01").outcome == "not-yet-due"
    assert P.judge(P.FORECASTS["pred-10"], rows, "2031-01-01").outcome == "came-true"
    assert P.judge(P.FORECASTS["pred-9"], rows, "2038-01-01").outcome == "wrong"


# -- the committed evidence ------------------------------------------------------------------------------------

def test_every_evidence_row_has_a_date_a_source_and_a_known_part():
    rows = P.load_evidence()
    assert rows
    for r in rows:
        assert isinstance(r.date, dt.date) and r.source.strip() and r.sourcing in ("published", "memory")
        assert r.url.startswith("http") or "(" in r.source
        assert r.claim in P.FORECASTS and r.part in {p.key for p in P.FORECASTS[r.claim].parts}
    assert {r.claim for r in rows} == {f"pred-{i}" for i in (1, 2, 3, 4, 5, 8)}


def test_every_gpu_row_is_sourced_and_dated():
    gpus = P.load_gpus()
    since = [g for g in gpus if g.released > P.GPU_POST]
    assert len(since) >= 10
    for g in gpus:
        assert g.source.strip() and g.sourcing in ("published", "memory") and g.released.year >= 2017


def test_evidence_rows_missing_a_source_are_refused(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_text(textwrap.dedent("""\
        claim,part,date,event,facts,source,url,sourcing
        pred-1,inference,2023-04,something,name=x,,,memory
    """))
    with pytest.raises(ValueError, match="missing source"):
        P.load_evidence(path)
    path.write_text(textwrap.dedent("""\
        claim,part,date,event,facts,source,url,sourcing
        pred-1,inference,2023-04,something,name=x,a blog,,memory
    """))
    with pytest.raises(ValueError, match="URL or a dated publication"):
        P.load_evidence(path)


# -- what the notebook shows ------------------------------------------------------------------------------
def test_tables_and_summaries_of_the_evidence():
    evidence = P.load_evidence()
    crit = P.criteria_table()
    assert len(crit) == sum(len(f.parts) for f in P.FORECASTS.values())
    assert set(crit["id"]) == set(P.FORECASTS)
    assert list(P.evidence_table(evidence)["id"]) == [r.claim for r in evidence]
    memory = sum(r.sourcing == "memory" for r in evidence)
    assert P.evidence_summary(evidence).endswith(f"{memory} from memory")
    since = [g for g in P.load_gpus() if g.released > P.GPU_POST]
    assert len(P.gpus_table(since)) == len(since)
    assert "rows checked against published" in P.spec_summary(since)


def test_scoreboard_judges_and_hands_the_ledger_its_arguments(capsys):
    evidence = P.load_evidence()
    board = P.Scoreboard(evidence, P.parse_date("2026-11-27"))
    kw = board.judge("pred-8", fails_if="x")
    assert kw["outcome"] == board.judgements["pred-8"].outcome and kw["judged"] == "2026-11-27"
    assert kw["criterion"] == P.FORECASTS["pred-8"].criterion() and kw["sources"]
    assert capsys.readouterr().out.startswith("pred-8 ")
    assert kw["measured"] == board.judgements["pred-8"].summary()
    assert all(r.sourcing == "memory" for r in evidence if r.event in board.memory_events("pred-1"))


def test_growth_efficiency_and_reach_reports_on_the_real_tables():
    gpus = P.load_gpus()
    base, growth = P.growth_rows(gpus)
    base_c, _ = P.growth_rows(gpus, where=P.is_consumer)
    table = P.growth_table(gpus, base, base_c, range(2019, 2027))
    assert table.loc[2019, "all GPUs (x Titan RTX)"] == 1.0 and table.index.name == "end of year"
    stalled = P.stagnation(gpus, base, base_c, growth, 2026)
    assert stalled.five_years_on > 2 and stalled.first_past.facts["ratio"] > 2 and "RTX 5090" in stalled.note
    _, eff = P.efficiency_rows(gpus)
    best = P.efficiency(eff)
    assert best.per_dollar.facts["ratio"] >= best.per_dollar_nvidia.facts["ratio"] and len(best.measured) == 3
    hpcg = P.load_hpcg()
    _, reach = P.reach_year(hpcg, n_boot=100, seed=0)
    assert len(P.reach_report(hpcg, reach).splitlines()) == 5
    assert f"of the {len(hpcg)} HPCG rows" in P.reach_note(hpcg, reach)
