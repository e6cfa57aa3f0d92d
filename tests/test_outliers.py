"""Tests of book.chapters.int8.outliers: site names, the paper's outlier criteria, activation capture with
padding masked out, the feature-removal example and (one test) the shipped MiniLM through int8."""

import pytest
import torch

from book.chapters.int8 import opt_family, outliers


def test_site_of_bert_and_opt_names():
    assert outliers.site_of("layer.3.attention.self.query") == (3, "attn-in")
    assert outliers.site_of("layer.3.attention.self.key") is None  # shares the query's input
    assert outliers.site_of("encoder.layer.0.attention.output.dense") == (0, "attn-out")
    assert outliers.site_of("encoder.layer.5.intermediate.dense") == (5, "ffn-in")
    assert outliers.site_of("encoder.layer.5.output.dense") == (5, "ffn-out")
    assert outliers.site_of("model.decoder.layers.11.self_attn.q_proj") == (11, "attn-in")
    assert outliers.site_of("model.decoder.layers.11.self_attn.out_proj") == (11, "attn-out")
    assert outliers.site_of("model.decoder.layers.2.fc1") == (2, "ffn-in")
    assert outliers.site_of("model.decoder.layers.2.fc2") == (2, "ffn-out")
    assert outliers.site_of("pooler.dense") is None


def _capture(fracs: dict, layers=5, width=8, positions=100, magnitude=6.0):
    """A synthetic Capture: fracs[(layer, site)] = {dim: share of positions at |x| = 2*magnitude}."""
    cap = outliers.Capture(magnitude)
    for layer in range(layers):
        for site in outliers.HIDDEN_SITES:
            x = torch.zeros(positions, width)
            for dim, share in fracs.get((layer, site), {}).items():
                x[: int(share * positions), dim] = -2 * magnitude
            stats = outliers.SiteStats(layer, site, width)
            stats.update(x, magnitude)
            cap.sites[(layer, site)] = stats
    return cap


def test_outlier_criteria_need_layers_and_positions():
    cap = _capture(
        {
            (0, "ffn-in"): {3: 0.5, 5: 0.05},  # dim 5 below 6 % of positions
            (1, "attn-in"): {3: 0.10, 5: 0.05},
            (2, "ffn-in"): {6: 0.9},  # dim 6: a single layer of five (< 25 %)
        }
    )
    table = outliers.outlier_features(cap)
    assert table["dim"].tolist() == [3]
    row = table.iloc[0]
    assert row["layers"] == [0, 1] and row["layer_fraction"] == 0.4
    assert row["sublayers"] == "attn-in, ffn-in" and row["sign"] == "-" and row["max_abs"] == 12.0
    assert outliers.outlier_features(cap, layer_fraction=0.2)["dim"].tolist() == [3, 6]
    everywhere = _capture({(l, s): {3: 0.1} for l in range(5) for s in outliers.HIDDEN_SITES})
    assert outliers.coordination(everywhere) == (3, 1.0)


def test_capture_counts_only_real_tokens():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    model = BertModel(config).eval()
    ids = torch.randint(1, 50, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2, 2:] = 0
    cap = outliers.capture_linear_inputs(
        model, lambda b: model(**b), [{"input_ids": ids, "attention_mask": mask}], magnitude=0.5
    )
    assert sorted(cap.sites) == [(l, s) for l in range(2) for s in outliers.SITES]
    assert all(s.positions == int(mask.sum()) for s in cap.sites.values())
    assert cap.sites[(0, "ffn-out")].width == 32
    # the statistics are those of the real tokens' inputs
    seen = {}

    def keep(module, inputs):
        seen["x"] = inputs[0][mask.bool()]

    hook = model.encoder.layer[1].intermediate.dense.register_forward_pre_hook(keep)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    hook.remove()
    assert torch.allclose(cap.sites[(1, "ffn-in")].max_abs, seen["x"].abs().amax(0))


def test_feature_removal_reproduces_the_posts_matrix():
    out = outliers.feature_removal()
    assert torch.allclose(
        out, torch.tensor([[0, 0.5, 0.5, 0]] * 4, dtype=torch.float64), atol=1e-12
    )
    with pytest.raises(ValueError, match="cannot multiply"):
        outliers.feature_removal([[1, 2]], [[1, 2]])


def test_text_sample_and_fidelity():
    labels, sentences = outliers.load_text_sample(per_post=3)
    assert len(sentences) == 3 * len(set(labels)) and all(len(s.split()) >= 8 for s in sentences)
    e = torch.nn.functional.normalize(
        torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), dim=1
    )
    f = outliers.fidelity(e, e, ["a", "a", "b", "b", "c", "c"])
    assert f["mean_cosine"] == pytest.approx(1.0) and f["neighbour_agreement"] == 1.0


def test_minilm_outliers_and_int8_fidelity():
    model = outliers.load_minilm("cpu")
    labels, sentences = outliers.load_text_sample(per_post=2)
    cap = outliers.capture_minilm(model, sentences)
    assert len(cap.sites) == 24
    tokens = sum(len(model.tokenizer(s)["input_ids"]) for s in sentences)
    assert {s.positions for s in cap.sites.values()} == {tokens}  # padding left out
    assert torch.equal(
        cap.embeddings, outliers.embed(model, sentences)
    )  # the same pass as the reference
    assert max(float(s.max_abs.max()) for s in cap.sites.values()) > 6  # MiniLM has |x| >= 6
    reference = outliers.embed(model, sentences)
    cos = {}
    for scheme in ("tensor", "llm.int8"):
        variant = outliers.quantized_copy(model, scheme)
        cos[scheme] = outliers.fidelity(reference, outliers.embed(variant, sentences), labels)[
            "mean_cosine"
        ]
    assert 0.99 < cos["llm.int8"] < 1 and cos["tensor"] < cos["llm.int8"]
    assert outliers.outlier_share(variant) > 0


def test_share_of_positions_counts_a_position_once():
    stats = outliers.SiteStats(0, "ffn-in", 4)
    x = torch.zeros(10, 4)
    x[:3, 1] = 7.0
    x[2:5, 2] = -8.0  # position 2 holds both dims
    x[9, 3] = 9.0
    stats.update(x[:6], 6.0)
    stats.update(x[6:], 6.0)  # positions of a second batch are offset
    assert stats.share_of_positions([1, 2]) == 0.5
    assert stats.share_of_positions([3]) == 0.1 and stats.share_of_positions([]) == 0.0


def test_largest_lossless_stops_at_the_first_failure():
    import pandas as pd

    sweep = pd.DataFrame(
        {"fraction": [0.1, 0.2, 0.3, 0.4], "mean_cosine": [0.999, 0.995, 0.98, 0.995]}
    )
    assert outliers.largest_lossless(sweep) == 0.2
    assert outliers.largest_lossless(sweep.assign(mean_cosine=0.5)) == 0.0


def _tiny_opt(tmp_path):
    """A random tiny OPT saved with MiniLM's tokenizer: a local model path, loaded as the sweep loads one."""
    tokenizer = outliers.load_minilm("cpu").tokenizer  # any local tokenizer will do for a random model
    opt_family.random_opt(tokenizer.vocab_size, max_positions=140).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


def test_scan_family_measures_what_loads_and_names_what_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, sentences = outliers.load_text_sample(per_post=1)
    table, missing = outliers.scan_family(
        [_tiny_opt(tmp_path), "facebook/opt-no-such-model"], sentences, "cpu", magnitude=0.5
    )
    assert len(table) == 1 and table.parameters.iloc[0] > 0 and table.max_abs.iloc[0] > 0
    assert (
        list(missing) == ["facebook/opt-no-such-model"]
        and "HF_HUB_OFFLINE" in missing["facebook/opt-no-such-model"]
    )
    with pytest.raises(outliers.WeightsUnavailable, match="local cache"):
        outliers.load_causal_lm("facebook/opt-no-such-model", "cpu", download=False)


def test_capture_of_flattened_inputs_counts_real_tokens(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _tiny_opt(tmp_path)
    tok, lm = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    enc = tok(
        ["a short one", "a somewhat longer sentence than the first"],
        return_tensors="pt",
        padding=True,
    )
    cap = outliers.capture_linear_inputs(lm, lambda b: lm(**b), [dict(enc)], magnitude=0.5)
    assert {s.positions for s in cap.sites.values()} == {
        int(enc["attention_mask"].sum())
    }  # OPT's fc1 gets 2-D input


def test_pruned_copy_zeroes_the_smallest_ffn_weights_only():
    model = outliers.load_minilm("cpu")
    pruned = outliers.pruned_ffn_copy(model, 0.3)
    layer, original = pruned[0].auto_model.encoder.layer[0], model[0].auto_model.encoder.layer[0]
    w, w0 = layer.intermediate.dense.weight.detach(), original.intermediate.dense.weight.detach()
    assert abs(float((w == 0).float().mean()) - 0.3) < 1e-3
    assert float(w0[w == 0].abs().max()) <= float(w0[w != 0].abs().min())
    assert torch.equal(layer.attention.self.query.weight, original.attention.self.query.weight)
    with pytest.raises(ValueError, match="fraction"):
        outliers.pruned_ffn_copy(model, 1.5)


# --- offline in seconds (issue 20) ----------------------------------------------------------------
def test_no_network_is_found_in_seconds_and_named(monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(outliers, "hub_offline", lambda: False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    outliers._REACHABLE.clear()
    start = time.perf_counter()
    with pytest.raises(outliers.WeightsUnavailable) as err:
        outliers.load_causal_lm("facebook/opt-no-such-model", "cpu")
    assert time.perf_counter() - start < 10  # not the Hub client's ~47 s of retries
    assert outliers.NO_NETWORK in str(err.value) and "127.0.0.1:9" in str(err.value)
    assert outliers.missing_resource({"m": str(err.value)}) == outliers.NO_NETWORK
    outliers._REACHABLE.clear()


def test_a_connect_that_times_out_counts_as_no_network(monkeypatch):
    import socket

    calls = []

    def hang(address, timeout):
        calls.append(timeout)
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    outliers._REACHABLE.clear()
    assert outliers.hub_reachable() is False and calls == [outliers.HUB_CONNECT_TIMEOUT_S]
    assert outliers.hub_reachable() is False and len(calls) == 1  # asked once per minute
    outliers._REACHABLE.clear()


# --- attention concentration (int8-17) ------------------------------------------------------------
def test_attention_stats_counts_visible_keys_only():
    probs = torch.zeros(1, 1, 10, 10)
    probs[0, 0, :, 0] = 0.95  # every query puts 95 % on key 0 ...
    probs[0, 0, :, 1:8] = 0.05 / 7  # ... and the rest on keys 1-7; keys 8, 9 are padding
    mask = torch.tensor([[1] * 8 + [0] * 2])
    stats = outliers.attention_stats([probs], mask, causal=False, min_keys=8)
    row = stats.iloc[0]
    assert row.queries == 8 and row.top1 == pytest.approx(0.95)
    assert row.keys_for_90pct == pytest.approx(1 / 8) and row.keys_under_1pct == pytest.approx(
        7 / 8
    )
    causal = outliers.attention_stats([probs], mask, causal=True, min_keys=8)
    assert causal.iloc[0].queries == 1  # only the last real query sees 8 keys


def test_minilm_attention_leaves_the_model_alone():
    model = outliers.load_minilm("cpu")
    _, sentences = outliers.load_text_sample(per_post=1)
    before = outliers.embed(model, sentences)
    stats = outliers.encoder_attention(model, sentences)
    assert list(stats.layer) == list(range(6)) and stats.keys_for_90pct.between(0, 1).all()
    assert torch.equal(
        outliers.embed(model, sentences), before
    )  # the copy, not the model, went eager


# --- the shipped text -----------------------------------------------------------------------------
def test_the_shipped_text_is_what_the_chapter_uses_and_says_where_it_is_from(tmp_path):
    first = outliers.TEXT_SAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert (
        first.startswith("# ") and "Tim Dettmers" in first and "https://timdettmers.com/" in first
    )
    labels, _ = outliers.load_text_sample()
    assert max(labels.count(label) for label in set(labels)) == outliers.SHIPPED_PER_POST
    from book.core.registry import REPO_ROOT

    posts = REPO_ROOT.parent / "shared" / "posts"
    if posts.is_dir():  # the file is made from the posts by build_text_sample, reproducibly
        outliers.build_text_sample(posts, tmp_path / "sample.txt")
        assert (tmp_path / "sample.txt").read_text(
            encoding="utf-8"
        ) == outliers.TEXT_SAMPLE.read_text(encoding="utf-8")


# --- numerics (issue 17): oneDNN's full ISA for the integer GEMM changes no float output ----------
_FLOAT_OUTPUTS = r'''
import sys
import book
from book.core import numerics
if sys.argv[1] == "full":
    numerics.allow_full_isa_for_integer_kernels()
import hashlib, torch
from book.chapters.int8 import outliers, quant
quant.onednn_for_integer_gemms_only()   # as the chapter does: GELU and every float op on ATen
def digest(*ts):
    h = hashlib.sha256()
    for t in ts:
        h.update(t.detach().double().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
model = outliers.load_minilm("cpu")
labels, sentences = outliers.load_text_sample(per_post=2)
ref = outliers.embed(model, sentences)
parts = [digest(ref), digest(outliers.embed(outliers.fp16_copy(model), sentences))]
for scheme in ("vector", "llm.int8"):
    parts.append(digest(outliers.embed(outliers.quantized_copy(model, scheme), sentences)))
parts.append(digest(outliers.embed(outliers.pruned_ffn_copy(model, 0.3), sentences)))
sweep = quant.outlier_sweep([0, 32], n=32, k=2048, m=32)
parts.append(digest(torch.tensor(sweep.drop(columns=[]).to_numpy(dtype="float64"))))
w = torch.randn(4096, generator=torch.Generator().manual_seed(0))
parts.append(digest(*(quant.fake_quantize(w, f, 64) for f in quant.FORMATS)))
print(" ".join(parts))
'''


def test_full_isa_for_integer_kernels_leaves_float_outputs_unchanged(tmp_path):
    """The chapter lifts oneDNN's ISA cap for torch._int_mm (VNNI/AMX) and sends its float ops to
    ATen (torch runs GELU through oneDNN otherwise, whose bits follow the cap); its float outputs
    (MiniLM in fp32, fp16 and through int8, the pruned model, the planted sweep, the formats) must
    keep their bits: oneDNN reads the cap once per process, so each setting runs in a process."""
    import os
    import subprocess
    import sys

    script = tmp_path / "float_outputs.py"
    script.write_text(_FLOAT_OUTPUTS)
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    runs = [
        subprocess.run(
            [sys.executable, str(script), mode],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        for mode in ("pinned", "full")
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    pinned, full = (run.stdout.split() for run in runs)
    assert len(pinned) == 7 and pinned == full


def test_feature_removal_check_and_its_variations():
    r = outliers.feature_removal_check()
    assert r.holds and r.removal_err < 1e-6 and r.leak > 0.05 and r.survivors_switch
    assert r.summary().startswith("softmax(XW):\n [[")


def test_statistics_of_a_synthetic_capture():
    cap = _capture({(0, "ffn-in"): {3: 0.5}, (1, "attn-in"): {3: 0.1, 5: 0.2}, (2, "ffn-in"): {3: 0.3}})
    stats = outliers.hidden_stats(cap)
    assert len(stats) == 5 * len(outliers.HIDDEN_SITES)
    s = outliers.outlier_statistics(stats, [3], threshold=6.0)
    assert s.top_site == (0, "ffn-in") and s.top_share == 0.5
    assert s.concentration == pytest.approx((50 + 10 + 30) / (50 + 10 + 20 + 30))
    per_sentence, n_ffn = outliers.outliers_per_sentence(stats, [3], n_sentences=10)
    assert n_ffn == 5 and per_sentence == (50 + 30) / 10
    features = outliers.outlier_features(cap)
    assert outliers.describe_features(features).startswith("outlier feature dim 3: |x| up to")
    report = outliers.lead_dimension_report(cap, 3, 0.5, n_sentences=10)
    assert "dimension 3 has |x| >= 6 at 10 positions" in report
    assert len(outliers.plot_sites(cap, [3, 5]).axes) == 3  # two panels and a colour bar


def test_the_minilm_plots_draw_their_tables():
    import pandas as pd

    pruning = pd.DataFrame({"fraction": [0.1, 0.2], "post_accuracy": [0.9, 0.8], "mean_cosine": [0.99, 0.9]})
    assert len(outliers.plot_pruning(pruning, 0.85).axes[0].lines) == 3
    attention = pd.DataFrame({"layer": [0, 1], "keys_for_90pct": [0.5, 0.4], "keys_under_1pct": [0.1, 0.2],
                              "top1": [0.3, 0.4]})
    assert len(outliers.plot_attention(attention).axes[0].lines) == 3
    table = pd.DataFrame({"mean_cosine": [1.0, 0.999, 0.9, 0.99, 0.998]},
                         index=["fp32", *outliers.FIDELITY_SCHEMES])
    assert len(outliers.plot_scheme_fidelity(table).axes[0].patches) == 4
