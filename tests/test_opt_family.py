"""Tests of book.chapters.int8.opt_family: the OPT sweep's code paths on a tiny randomly initialised
OPT (plumbing, never a verdict), the parameter counts and estimates, the decisions a sweep's table
makes, and the post's 150,000-outliers arithmetic."""

import math

import pandas as pd
import pytest
import torch

from book.chapters.int8 import opt_family, outliers
from book.chapters.int8.quant import Int8Linear


def test_parameter_counts_of_the_opt_family_are_the_published_sizes():
    counts = {
        name: opt_family.parameter_count(name)
        for name in ("facebook/opt-125m", "facebook/opt-350m", "facebook/opt-6.7b")
    }
    assert counts == {
        "facebook/opt-125m": 125_239_296,
        "facebook/opt-350m": 331_196_416,
        "facebook/opt-6.7b": 6_658_473_984,
    }
    assert opt_family.opt_config("facebook/opt-6.7b").num_hidden_layers == 32
    with pytest.raises(ValueError, match="unknown OPT size"):
        opt_family.opt_config("facebook/opt-7b")


def test_plan_says_which_sizes_fit_a_t4_and_an_a100():
    plan = opt_family.plan(
        ["facebook/opt-1.3b", "facebook/opt-6.7b", "facebook/opt-30b"], tokens=9000
    )
    fits = {(r.model, r.runtime): r.fits for r in plan.itertuples()}
    assert fits[("opt-1.3b", "Colab T4")] and fits[("opt-6.7b", "Colab A100 (40 GB)")]
    assert not fits[("opt-6.7b", "Colab T4")] and not fits[("opt-30b", "Colab A100 (40 GB)")]
    a100 = plan[(plan.model == "opt-6.7b") & (plan.runtime == "Colab A100 (40 GB)")].iloc[0]
    assert 0 < a100["minutes (estimate)"] < 30  # the 6.7 B point within half an hour on Colab
    assert math.isnan(plan[(plan.model == "opt-30b")]["minutes (estimate)"].iloc[0])
    assert opt_family.default_family("cpu") == list(opt_family.CPU_FAMILY)


class _CharTokenizer:
    """A tokenizer for the plumbing: a start token, then one id per character (ids 2..)."""

    vocab_size = 130

    def __call__(self, text, add_special_tokens=True):
        ids = [min(ord(c), 127) + 2 for c in text]
        return {"input_ids": ([0] if add_special_tokens else []) + ids}


def _tiny_opt(seed=0, vocab_size=_CharTokenizer.vocab_size):
    return opt_family.random_opt(vocab_size, seed=seed)


def test_random_opt_is_tiny_seeded_and_untrained():
    a, b = opt_family.random_opt(50), opt_family.random_opt(50)
    assert a.config.hidden_size == 16 and a.config.num_hidden_layers == 2 and not a.training
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert sum(p.numel() for p in a.parameters()) < 20_000


def test_cloze_items_predict_the_last_word():
    tok = _CharTokenizer()
    items = opt_family.cloze_items(
        tok, ["The model reads this sentence.", "ends in 42.", "Two words"]
    )
    assert len(items) == 2  # "42" is not a word
    ids, first = items[0]
    assert ids[:first] == tok("The model reads this")["input_ids"]
    assert ids[first:] == tok(" sentence", add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="alphabetic"):
        opt_family.cloze_items(tok, ["3 4 5"])


def test_evaluate_matches_a_direct_perplexity_and_is_blind_to_padding():
    lm, tok = _tiny_opt(), _CharTokenizer()
    items = opt_family.cloze_items(
        tok, ["a short one", "a somewhat longer sentence than the first"]
    )
    metrics, capture, attention = opt_family.evaluate(
        lm, items, batch_size=2, magnitude=0.5, attention=True
    )
    nll, count = 0.0, 0
    with torch.no_grad():
        for ids, _ in items:  # one at a time: no padding at all
            logits = lm(input_ids=torch.tensor([ids])).logits[0, :-1]
            nll -= float(
                torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None]).sum()
            )
            count += len(ids) - 1
    assert metrics["tokens"] == count and metrics["perplexity"] == pytest.approx(
        math.exp(nll / count), rel=1e-4
    )
    assert {s.positions for s in capture.sites.values()} == {sum(len(ids) for ids, _ in items)}
    assert (
        list(attention.layer) == [0, 1]
        and ((attention.keys_for_90pct > 0) & (attention.keys_for_90pct <= 1)).all()
    )


def test_run_model_measures_three_precisions_on_one_load(monkeypatch):
    lm, tok = _tiny_opt(), _CharTokenizer()
    _, sentences = outliers.load_text_sample(per_post=1)
    row, attention = opt_family.run_model(lm, opt_family.cloze_items(tok, sentences), threshold=0.5)
    for scheme in opt_family.SCHEMES:
        assert row[f"{scheme} perplexity"] > 1 and 0 <= row[f"{scheme} cloze_accuracy"] <= 1
    assert (
        row["LLM.int8() perplexity"] != row["8-bit vector-wise perplexity"]
    )  # the decomposition acts
    assert 0 < row["16-bit columns"] < 1 and row["outlier_dims"] >= 0 and len(attention) == 2
    layers = [m for m in lm.modules() if isinstance(m, Int8Linear)]
    assert len(layers) == 2 * 6 and all(m.w_fp16 is None for m in layers)  # int8 weights only
    assert isinstance(lm.lm_head, torch.nn.Linear)  # the head stays 16-bit


def test_sweep_names_what_it_could_not_load(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import BertTokenizerFast

    tokenizer = outliers.load_minilm("cpu").tokenizer  # any local tokenizer will do
    assert isinstance(tokenizer, BertTokenizerFast)
    lm = _tiny_opt(vocab_size=tokenizer.vocab_size)
    lm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    _, sentences = outliers.load_text_sample(per_post=1)
    table, missing = opt_family.sweep(
        [str(tmp_path), "facebook/opt-no-such-model"], sentences, "cpu", 0.5
    )
    assert len(table) == 1 and table.model.iloc[0] == str(tmp_path) and table.load_s.iloc[0] >= 0
    assert list(missing) == ["facebook/opt-no-such-model"]
    assert outliers.missing_resource(missing) == "HF_HUB_OFFLINE is set (no download)"


def _table(rows):
    base = {
        "max_abs": 5.0,
        "outlier_dims": 1,
        "outlier_magnitude": 5.0,
        "attention_keys_for_90pct": 0.5,
    }
    out = []
    for model, params, ppl16, ppl_llm, ppl_vec, dims in rows:
        out.append(
            {
                **base,
                "model": model,
                "parameters": params,
                "16-bit perplexity": ppl16,
                "LLM.int8() perplexity": ppl_llm,
                "8-bit vector-wise perplexity": ppl_vec,
                "16-bit cloze_accuracy": 0.5,
                "LLM.int8() cloze_accuracy": 0.5,
                "8-bit vector-wise cloze_accuracy": 0.5,
                "outlier_dims": dims,
                "max_abs": 3.0 + dims,
                "attention_keys_for_90pct": 0.5 - 0.01 * dims,
            }
        )
    return pd.DataFrame(out)


def test_decisions_need_the_sizes_the_post_speaks_of():
    assert all("missing" in v for v in opt_family.decide(pd.DataFrame()).values())
    small = _table(
        [
            ("facebook/opt-125m", 1.25e8, 30.0, 30.1, 30.2, 1),
            ("facebook/opt-350m", 3.3e8, 25.0, 25.1, 25.2, 2),
            ("facebook/opt-1.3b", 1.3e9, 18.0, 18.1, 18.3, 4),
        ]
    )
    got = opt_family.decide(small)
    assert got["int8-9"]["holds"] and got["int8-15"]["holds"]
    assert got["int8-13"]["missing"] == "a ≥ 6.7 B model" and "missing" in got["int8-14"]
    with_big = pd.concat([small, _table([("facebook/opt-6.7b", 6.66e9, 12.0, 12.05, 20.0, 6)])])
    got = opt_family.decide(with_big)
    assert got["int8-13"]["holds"] and got["int8-14"]["holds"] and got["int8-17"]["holds"]
    broken = with_big.assign(**{"LLM.int8() perplexity": with_big["16-bit perplexity"] * 1.05})
    assert not opt_family.decide(broken)["int8-13"]["holds"]
    assert not opt_family.decide(with_big.assign(outlier_dims=[1, 3, 2, 6]))["int8-15"]["holds"]


def test_the_posts_outlier_count_comes_from_about_a_thousand_tokens():
    assert opt_family.outliers_per_sequence(6, 0.75, 1024, 32) == 147_456
    assert opt_family.implied_sequence_length(150_000, 6, 0.75, 32) == pytest.approx(
        1041.67, abs=0.01
    )
    assert opt_family.strictly_monotone([3, 1, 2], [1, 3, 2]) and not opt_family.strictly_monotone(
        [1, 2], [1, 1]
    )


def test_outlier_count_and_the_plan_table():
    count = opt_family.outlier_count()
    assert count.layers == 32 and count.context == 2048 and count.power_of_two == 1024
    assert count.holds and count.measured[1:3] == [1024, 147456]
    assert count.summary().startswith("OPT-6.7B: 32 layers, 2048-token context")
    table = opt_family.plan_table(9000, ["facebook/opt-1.3b", "facebook/opt-30b"])
    assert list(table.index) == ["opt-1.3b", "opt-30b"] and (table.loc["opt-30b"] == "does not fit").any()


def test_plot_family_says_when_nothing_was_measured():
    fig = opt_family.plot_family(pd.DataFrame())
    assert all("not measured here" in ax.texts[0].get_text() for ax in fig.axes)
