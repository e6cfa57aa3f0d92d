"""Tests of book.chapters.brain: the post's arithmetic, the LNP estimate, the extrapolation and the LNP neuron."""
import math

import numpy as np
import pytest
import torch

from book.chapters import brain as b


# -- brain-1, brain-2 ------------------------------------------------------------------------
def test_knowledge_ten_years_back_is_2_to_the_minus_10():
    assert b.fraction_after_doublings(10, 1) == pytest.approx(0.0009765625)
    assert b.fraction_after_doublings(0) == 1.0
    with pytest.raises(ValueError):
        b.fraction_after_doublings(-1)
    with pytest.raises(ValueError):
        b.fraction_after_doublings(10, 0)


def test_milliseconds_to_frames():
    assert b.milliseconds_to_frames([20, 80, 200]) == pytest.approx([0.6, 2.4, 6.0])
    assert b.milliseconds_to_frames(1000, fps=24) == pytest.approx(24)
    with pytest.raises(ValueError):
        b.milliseconds_to_frames(-5)


# -- brain-3, brain-4 ------------------------------------------------------------------------
def test_firing_rate_estimate():
    assert b.firing_rate_flops(1e13, 200) == pytest.approx(2e15)
    with pytest.raises(ValueError):
        b.firing_rate_flops(0, 200)
    with pytest.raises(TypeError):
        b.firing_rate_flops("1e13", 200)


def test_post_numbers_carry_their_sentences():
    for name, number in b.POST.items():
        assert number.value > 0 and len(number.quote) > 20, name


def test_dense_reading_by_hand():
    types = {n.name: n for n in b.neuron_types(b.post_parameters())}
    g, p = types["granule"], types["Purkinje"]
    assert (g.dendrite_filter, g.input_size, g.output_size, g.soma_filter) == (60, 75, 500, 5)
    assert (p.dendrite_filter, p.input_size, p.output_size) == (50_000, 500_000, 5000)
    assert b.dense_macs(g) == 75 * 60 + 5 + 500
    expected = 2 * 200 * (50e9 * (75 * 60 + 5 + 500) + 1e8 * (500_000 * 50_000 + 5 + 5000))
    assert b.lnp_flops() == pytest.approx(expected, rel=1e-12)
    parts = b.lnp_flops(by_type=True)
    assert parts["Purkinje"] > 1000 * parts["granule"]


def test_readings_scale_as_written():
    r = b.all_readings()
    assert r["dense x 2 FLOPs x 200 Hz"] == pytest.approx(2 * r["dense x 200 Hz"])
    assert r["dense x 30 fps"] == pytest.approx(r["dense x 200 Hz"] * 30 / 200)
    name, value = b.closest_reading(1.075e21)
    assert name == "dense x 2 FLOPs x 200 Hz" and value == pytest.approx(1.0001e21, rel=1e-3)


def test_lnp_rejects_bad_inputs():
    with pytest.raises(ValueError, match="time_steps"):
        b.lnp_flops({"time_steps": 0})
    with pytest.raises(ValueError, match="unknown reading"):
        b.lnp_flops(reading="nope")


def test_estimate_grows_with_time_steps_squared_for_purkinje():
    lo, hi = b.lnp_flops({"time_steps": 2.5}), b.lnp_flops({"time_steps": 5})
    assert hi / lo == pytest.approx(4, rel=1e-3)


def test_sensitivity_sorted_and_firing_rate_first():
    swings = b.sensitivity()
    sizes = [abs(math.log(s.flops_high / s.flops_low)) for s in swings]
    assert sizes == sorted(sizes, reverse=True)
    assert swings[0].name == "firing_rate"
    assert swings[0].flops_high / swings[0].flops_low == pytest.approx(20)
    with pytest.raises(ValueError):
        b.sensitivity(ranges={"time_steps": (6, 2, "backwards")})
    with pytest.raises(ValueError):
        b.sensitivity(ranges={"not_an_input": (1, 2, "")})


def test_exact_products_finds_only_exact_hits():
    assert b.exact_products(6.0, {"a": 2.0, "b": 3.0, "c": 5.0}) == [("a", "b")]
    hits = b.exact_products(1.075e21, b.post_sizes(), max_factors=5)
    for combo in hits:
        assert math.prod(b.post_sizes()[k] for k in combo) == pytest.approx(1.075e21, rel=1e-3)


# -- brain-5, brain-6, brain-9 ---------------------------------------------------------------
def test_post_doublings_and_years():
    n = b.doublings_needed(0.58e15, 1.075e21)
    assert 20 < n < 21 and math.ceil(n) == 21
    years = [b.year_reached(0.58e15, d, 2015, 1.075e21, whole_doublings=True) for d in (1.8, 3.0)]
    assert years == pytest.approx([2052.8, 2078.0])


def test_year_reached_edge_cases():
    assert b.year_reached(1e21, 2, 2020, 1e20) == 2020            # already reached
    assert b.year_reached(1.0, 2, 2000, 8.0) == pytest.approx(2006)
    assert b.year_reached(1.0, 2, 2000, 5.0, whole_doublings=True) == pytest.approx(2006)
    assert b.year_reached(1.0, 2, 2000, 4.0, whole_doublings=True) == pytest.approx(2004)
    for bad in (dict(current=0), dict(current=-1), dict(doubling_years=0), dict(target=-5)):
        args = dict(current=1.0, doubling_years=1.0, start_year=2000, target=2.0) | bad
        with pytest.raises(ValueError):
            b.year_reached(**args)
    with pytest.raises(ValueError):
        b.year_reached(1.0, 1.0, float("nan"), 2.0)
    with pytest.raises(TypeError):
        b.year_reached("1", 1.0, 2000, 2.0)


def test_fit_recovers_a_known_doubling_time():
    years = np.arange(2000, 2020, 0.5)
    flops = 1e15 * 2 ** ((years - 2000) / 1.5)
    fit = b.fit_doubling_time(years, flops, n_boot=200)
    assert fit.doubling_years == pytest.approx(1.5)
    assert fit.ci_doubling_years[0] <= 1.5 + 1e-9 and fit.ci_doubling_years[1] >= 1.5 - 1e-9
    assert fit.year_reaching(1e15 * 2 ** 10) == pytest.approx(2015)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        b.fit_doubling_time([2000, 2001], [1, 2])
    with pytest.raises(ValueError):
        b.fit_doubling_time([2000, 2001, 2002], [1, -2, 3])
    with pytest.raises(ValueError):
        b.fit_doubling_time([2000, 2001, 2002], [3, 2, 1])  # shrinking: no doubling time


def test_data_file_rows_have_sources_and_cover_every_list():
    hpcg = b.load_top1(benchmark="HPCG")
    hpl = b.load_top1(benchmark="HPL")
    editions = [f"{y}-{m:02d}" for y in range(2014, 2026) for m in (6, 11)]
    assert [e.edition for e in hpcg] == editions
    assert [e.edition for e in hpl] == editions
    assert all(e.source and e.sourcing in b.SOURCINGS for e in hpcg + hpl)
    # every unverified row says why; the verified ones carry no such reason
    assert all(bool(e.unverified_because) == (e.sourcing == "memory") for e in hpcg + hpl)
    assert hpcg[0].system == "Tianhe-2" and hpcg[0].pflops == pytest.approx(0.58)
    # the #1 on HPCG never beats the #1 on HPL
    assert all(c.pflops < l.pflops for c, l in zip(hpcg, hpl))
    assert b.edition_year("2014-06") == pytest.approx(2014 + 5.5 / 12)


def test_load_top1_rejects_rows_without_source(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("# c\nedition,benchmark,system,pflops,source,sourcing\n2014-06,HPCG,X,1.0,,memory\n")
    with pytest.raises(ValueError, match="no source"):
        b.load_top1(path)


def test_memory_row_without_a_reason_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("edition,benchmark,system,pflops,source,sourcing,unverified_because\n"
                    "2014-06,HPCG,X,1.0,somewhere,memory,\n")
    with pytest.raises(ValueError, match="unverified"):
        b.load_top1(path)


def test_older_press_rows_read_as_published(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("edition,benchmark,system,pflops,source,sourcing\n2014-06,HPCG,X,1.0,somewhere,press\n")
    assert b.load_top1(path)[0].sourcing == "published"


def test_homes_powered_and_kurzweils_product():
    assert b.homes_powered(1e3, 8760) == pytest.approx(1.0)       # 1 kW all year = 8760 kWh
    assert b.homes_powered(24e6, 3500) == pytest.approx(60_068.6, rel=1e-4)
    with pytest.raises(ValueError):
        b.homes_powered(24e6, 0)
    k = {name: v for name, (v, _) in b.KURZWEIL.items()}
    assert b.firing_rate_flops(k["connections"], k["rate_hz"]) == pytest.approx(k["estimate"])
    assert all(source for _, source in list(b.KURZWEIL.values()) + list(b.HOME_CONSUMPTION.values()))


# -- brain-7 ---------------------------------------------------------------------------------
def test_electricity():
    assert b.electricity_cost(24e6, 0.1) == pytest.approx(57_600)
    assert b.implied_price_per_kwh(24e6, 57_600) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        b.electricity_cost(-1, 0.1)


# -- brain-8 ---------------------------------------------------------------------------------
def test_lnp_neuron_matches_written_out_sums():
    torch.manual_seed(0)
    neuron = b.LNPNeuron(3, 4, 5).double()
    x = torch.randn(7, 1, 3, 4, 20, dtype=torch.float64)
    ref = b.lnp_reference(x[:, 0].numpy(), neuron.dendrite.weight[0, 0].detach().numpy(),
                          neuron.soma.weight[0, 0].detach().numpy())
    got = neuron.rate(x).detach().numpy()
    assert got.shape == ref.shape == (7, 20 - 8)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_lnp_neuron_poisson_gate_keeps_exp_minus_lambda():
    torch.manual_seed(0)
    neuron = b.LNPNeuron(3, 4, 5)
    x = torch.randn(4000, 1, 3, 4, 9)
    g = torch.Generator().manual_seed(1)
    rate = neuron.rate(x)
    out = neuron(x, generator=g)
    kept = out[rate > 0] > 0
    assert set(torch.unique(out[rate > 0] / rate[rate > 0]).tolist()) <= {0.0, 1.0}
    assert kept.float().mean().item() == pytest.approx(math.exp(-0.5), abs=0.03)


def test_lnp_neuron_rejects_bad_shapes():
    neuron = b.LNPNeuron(3, 4, 5)
    with pytest.raises(ValueError):
        neuron.rate(torch.randn(2, 1, 3, 4, 6))   # too short in time
    with pytest.raises(ValueError):
        neuron.rate(torch.randn(2, 3, 4, 20))
    with pytest.raises(ValueError):
        b.LNPNeuron(0, 4, 5)


def test_poisson_waiting_times_match_pmf():
    g = torch.Generator().manual_seed(0)
    w = b.poisson_waiting_times((200_000,), 0.5, generator=g).numpy().astype(int)
    freq = np.bincount(w, minlength=8)[:8] / len(w)
    np.testing.assert_allclose(freq, b.poisson_pmf(np.arange(8), 0.5), atol=0.005)
    assert b.poisson_pmf([0], 0.5)[0] == pytest.approx(math.exp(-0.5))


# -- figures ---------------------------------------------------------------------------------
def test_figures_draw():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = b.POST["estimate"].value
    b.plot_readings(b.all_readings(), target)
    b.plot_tornado(b.sensitivity(), b.lnp_flops(), target)
    b.plot_lnp(np.zeros(20), np.ones(12), np.r_[np.ones(6), np.zeros(6)], np.array([0, 1, 0, 2]), 0.5)
    hpcg, hpl = b.load_top1(benchmark="HPCG"), b.load_top1(benchmark="HPL")
    fit = b.fit_doubling_time([e.year for e in hpcg], [e.flops for e in hpcg], n_boot=50)
    fig = b.plot_extrapolation(2015, 0.58e15, {"a": 1.0, "b": 1.8, "c": 3.0}, target, hpcg, hpl, fit)
    assert len(fig.axes[0].lines) >= 6
    plt.close("all")


def test_the_post_total_is_an_exact_product_of_its_numbers():
    target = b.POST["estimate"].value
    (combo,) = b.exact_products(target, b.post_sizes(), max_factors=5)
    assert abs(b.product_of(combo) / target - 1) < 1e-3 and "86e9 neurons" in combo


def test_interconnect_rows_are_sourced_and_the_fit_recovers_a_known_doubling():
    rows = b.load_interconnect()
    assert [r.generation for r in rows][:3] == ["SDR", "DDR", "QDR"] and all(r.source for r in rows)
    years = [2000, 2003, 2006, 2009, 2012]
    full, lo, hi = b.jackknife_doubling(years, [2 ** ((y - 2000) / 3) for y in years])
    assert abs(full - 3) < 1e-9 and abs(lo - 3) < 1e-9 and abs(hi - 3) < 1e-9


def test_an_unsourced_interconnect_row_is_refused(tmp_path):
    bad = tmp_path / "ib.csv"
    bad.write_text("generation,year,gbit_s_4x,source,sourcing,unverified_because\nX,2001,10,src,memory,\n")
    with pytest.raises(ValueError, match="from memory"):
        b.load_interconnect(bad)


# -- brain-13, brain-14: memory bandwidth against compute, fab costs -------------------------
def test_gpu_generations_are_sourced_and_later_flagships_come_from_the_spec_table():
    rows = b.load_gpu_generations()
    assert [r.gpu for r in rows][:2] == ["Tesla C870", "Tesla C1060"] and all(r.source for r in rows)
    assert all(r.bandwidth_gbs > 0 and r.gflops > 0 for r in rows)
    later = b.later_flagships()
    assert [r.gpu for r in later] == list(b.LATER_FLAGSHIPS)
    assert later[0].bandwidth_gbs == 900 and later[0].gflops == pytest.approx(125_000)   # V100: fp16 tensor
    assert later[0].year == pytest.approx(2017 + 4.5 / 12)


def test_compare_growth_recovers_known_doubling_times():
    years = [2000, 2002, 2004, 2006, 2008]
    rows = [b.GpuGeneration(f"g{y}", y, 2 ** ((y - 2000) / 4), 2 ** ((y - 2000) / 2), "src", "published")
            for y in years]
    cmp = b.compare_growth(rows)
    assert cmp.bandwidth_years == pytest.approx(4) and cmp.compute_years == pytest.approx(2)
    assert cmp.ratio == pytest.approx(2) and cmp.ratio_range == pytest.approx((2, 2))
    assert cmp.bandwidth_pct_per_year == pytest.approx(100 * (2 ** 0.25 - 1))
    assert "3x" in cmp.wrong and b.doubling_time([0, 3], [1, 2]) == pytest.approx(3)
    with pytest.raises(ValueError):
        b.doubling_time([1, 1], [1, 2])


def test_the_real_gpus_put_bandwidth_about_half_as_fast_as_compute():
    cmp = b.compare_growth([r for r in b.load_gpu_generations() if r.year <= 2015])
    assert 1.5 < cmp.ratio_range[0] <= cmp.ratio <= cmp.ratio_range[1] < b.MEMORY_WALL_RATIO


def test_fab_costs_are_sourced_and_the_growth_fit_recovers_a_known_rate():
    rows = b.load_fab_costs()
    assert all(r.source for r in rows)
    assert all(bool(r.unverified_because) == (r.sourcing == "memory") for r in rows)
    fake = [b.FabCost(y, "f", 9.0 * 1.08 ** (y - 2015), "src", "published")
            for y in (1985, 1995, 2005, 2010, 2015)]
    g = b.fab_cost_growth(fake)
    assert g.pct == pytest.approx(8) and g.pct_range == pytest.approx((8, 8))
    assert g.level_busd == pytest.approx(9)
    assert g.holds and g.measured == [8.0, 8.0, 8.0, round(9.0 / 1.08 ** 5, 1), 9.0]
    real = b.fab_cost_growth([r for r in rows if r.year <= 2015])
    assert not real.holds and real.pct_range[0] > 10.5
    # the level is read off the fabs of 2010-2015, which hold $9bn, not off the trend
    assert real.level_holds and real.recent_busd[0] <= 9 <= real.recent_busd[1]
    assert "matches the fabs announced 2010-2015" in real.wrong


def test_unsourced_gpu_and_fab_rows_are_refused(tmp_path):
    gpu = tmp_path / "g.csv"
    gpu.write_text("gpu,year,bandwidth_gbs,fp32_gflops,source,sourcing,unverified_because\n"
                   "X,2010,1,1,,published,\n")
    with pytest.raises(ValueError, match="no source"):
        b.load_gpu_generations(gpu)
    fab = tmp_path / "f.csv"
    fab.write_text("year,fab,cost_busd,source,sourcing,unverified_because\n2010,X,1,src,memory,\n")
    with pytest.raises(ValueError, match="from memory"):
        b.load_fab_costs(fab)


def test_part_four_figures_have_the_posts_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gpus = b.load_gpu_generations()
    wall = b.compare_growth([g for g in gpus if g.year <= 2015])
    fig = b.plot_memory_wall(gpus, b.later_flagships(), wall)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xlabel() == "year"
    fabs = b.load_fab_costs()
    fig = b.plot_fab_costs(fabs, b.fab_cost_growth([f for f in fabs if f.year <= 2015]))
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 3
    plt.close("all")


# -- the notebook's tables and reports -------------------------------------------------------
def test_tables_and_checks_the_notebook_shows():
    target = b.POST["estimate"].value
    assert list(b.post_table()["name"]) == list(b.POST)
    table = b.readings_table(b.all_readings(), target)
    ratio = table.loc["dense x 2 FLOPs x 200 Hz", "/ post's 1.075e21"]
    assert ratio == pytest.approx(1e21 / target, rel=1e-3)
    assert b.sensitivity_table(b.sensitivity()).iloc[0]["input"] == "firing_rate"
    exact = b.exact_products(target, b.post_sizes(), max_factors=5)
    report = b.reading_report("dense x 2 FLOPs x 200 Hz", 1e21, target, exact)
    assert "86e9 neurons" in report.splitlines()[-1]
    firing = b.firing_rate_check(lnp=1e21)
    assert firing.holds and firing.with_post == pytest.approx(2e15)
    cost = b.tianhe_cost(24e6)
    assert cost.per_year[0] == pytest.approx(23.725) and "23.7 M" in cost.note
    homes = b.homes_check(24e6, cost.per_year[0])
    assert not homes.within and min(homes.german) > 60_000 and len(homes.table()) == len(b.HOME_CONSUMPTION)
    paces = b.post_paces(0.58e15, target, {"a": 1.0, "b": 1.8, "c": 3.0})
    assert paces.holds and paces.measured[2:] == [2052.8, 2078.0]


def test_hpcg_history_and_hpl_against_hpcg():
    hpcg, hpl = b.load_top1(benchmark="HPCG"), b.load_top1(benchmark="HPL")
    hist = b.hpcg_history(hpcg, hpl, b.POST["estimate"].value, n_boot=100, seed=0, block=4)
    assert hist.fit.doubling_years == pytest.approx(1.76, abs=0.01) and len(hist.published) == 18
    assert len(hist.report(0.58e15, {"x": 1.8}).splitlines()) == 7 and len(hist.measured) == 6
    hh = b.hpl_against_hpcg(hpcg, hpl, b.POST["estimate"].value, kurzweil=2e16)
    assert hh.holds and hh.share == pytest.approx(100 * 0.58 / 33.86) and hh.worst_share <= 5
    assert hh.first_over_kurzweil == {"HPCG": "not yet", "HPL": "2014-06"}


def test_check_lnp_agrees_with_scipy():
    torch.manual_seed(0)
    lnp = b.check_lnp(n_waits=20_000, n_draws=5, seed=0)
    assert lnp.conv_error < 1e-12 and lnp.holds and lnp.n_draws == 5 and len(lnp.measured) == 3
    assert "chi-square p" in lnp.report()
