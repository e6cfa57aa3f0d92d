"""The post's Results figure and its scaling statements on the OPT family, with the book's text.

The post (and the LLM.int8() paper, Figure 1) sets 16-bit, the 8-bit vector-wise baseline and
LLM.int8() side by side against model size. This module does the same for the OPT models
(facebook/opt-125m ... opt-66b, `OPT_SHAPES`) on the posts' own sentences
(``book/data_files/int8_posts.txt``), so no data set is downloaded:

- **perplexity** of each sentence (its final punctuation dropped), over all its predicted tokens;
- a **last-word cloze** task, as LAMBADA scores it: given a sentence without its last word, the
  model must give every token of that word as its most likely next token (teacher-forced).

One load of a model serves everything: the 16-bit pass (fp16 on CUDA, float32 on a CPU) records the
linear layers' inputs (outlier features by the paper's criteria, `outliers.outlier_features`) and
the attention probabilities (`outliers.attention_stats`); then the model's linear layers are
swapped in place for `Int8Linear` (LLM.int8(), bitsandbytes-style: int8 weights only, 1 byte each),
evaluated, switched to the vector-wise baseline (the same weight codes, no decomposition) and
evaluated again. The LM head stays in 16 bit, as bitsandbytes keeps it.

Weights come from the local Hugging Face cache or the Hub (`outliers.load_causal_lm`); a machine
without them gets `WeightsUnavailable` in seconds, and the chapter records `needs-resource`. The
same code paths are tested on a tiny randomly initialised OPT (tests/test_opt_family.py): plumbing
only. Sizes, memory and times for Colab are computed by `plan` from parameter counts (estimates)."""

from __future__ import annotations

import gc
import math
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from book.chapters.int8 import outliers
from book.chapters.int8.quant import Int8Linear, replace_linear_layers

# hidden size, layers, attention heads, FFN width, word-embedding projection (OPT paper, Table 1;
# opt-350m projects its 512-wide embeddings to 1024 and puts its layer norms after the sublayers)
OPT_SHAPES = {
    "facebook/opt-125m": (768, 12, 12, 3072, 768),
    "facebook/opt-350m": (1024, 24, 16, 4096, 512),
    "facebook/opt-1.3b": (2048, 24, 32, 8192, 2048),
    "facebook/opt-2.7b": (2560, 32, 32, 10240, 2560),
    "facebook/opt-6.7b": (4096, 32, 32, 16384, 4096),
    "facebook/opt-13b": (5120, 40, 40, 20480, 5120),
    "facebook/opt-30b": (7168, 48, 56, 28672, 7168),
    "facebook/opt-66b": (9216, 64, 72, 36864, 9216),
}
SCHEMES = ("16-bit", "8-bit vector-wise", "LLM.int8()")


def opt_config(name: str, **overrides):
    """The transformers OPTConfig of one OPT size (OPT_SHAPES; `overrides` for tiny test models)."""
    from transformers import OPTConfig

    if name not in OPT_SHAPES:
        raise ValueError(f"unknown OPT size {name!r}; known: {', '.join(OPT_SHAPES)}")
    hidden, layers, heads, ffn, proj = OPT_SHAPES[name]
    fields = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        ffn_dim=ffn,
        word_embed_proj_dim=proj,
        do_layer_norm_before=name != "facebook/opt-350m",
        vocab_size=50272,
        max_position_embeddings=2048,
    )
    fields.update(overrides)
    return OPTConfig(**fields)


def random_opt(vocab_size: int, *, hidden: int = 16, layers: int = 2, heads: int = 2, ffn: int = 32,
               max_positions: int = 400, seed: int = 0):
    """An untrained OPT-125m-style causal LM of a tiny shape (seeded, in eval mode): what exercises
    the sweep's code paths (loading, capture, the three precisions) without a download. Its numbers
    are plumbing, never a verdict."""
    from transformers import OPTForCausalLM

    torch.manual_seed(seed)
    config = opt_config("facebook/opt-125m", vocab_size=vocab_size, hidden_size=hidden,
                        num_hidden_layers=layers, ffn_dim=ffn, num_attention_heads=heads,
                        word_embed_proj_dim=hidden, max_position_embeddings=max_positions, pad_token_id=1)
    return OPTForCausalLM(config).eval()


def parameter_count(name: str) -> int:
    """Parameters of an OPT size, counted on a model built on the meta device (no memory, no
    weights; the LM head is tied to the embeddings and counted once)."""
    from transformers import OPTForCausalLM

    with torch.device("meta"):
        model = OPTForCausalLM(opt_config(name))
    return sum(p.numel() for p in model.parameters())


# --- what fits where, and how long it takes (estimates from parameter counts) ---------------------
# Colab runtimes as a reader gets them (GPU memory as torch reports it usable, host RAM of the
# standard runtime, dense fp16 tensor-core peak, memory bandwidth: the vendors' data sheets).
RUNTIMES = {
    "Colab T4": dict(gpu_gb=15.0, ram_gb=12.7, fp16_tflops=65.0, bandwidth_gbs=320.0),
    "Colab A100 (40 GB)": dict(gpu_gb=39.6, ram_gb=83.5, fp16_tflops=312.0, bandwidth_gbs=1555.0),
}
ASSUMED = dict(download_mbs=100.0, load_gbs=1.0, gemm_efficiency=0.25, passes=3, overhead_gb=1.5)


def plan(names, tokens: int, runtimes=RUNTIMES, assumed=ASSUMED) -> pd.DataFrame:
    """Per OPT size and runtime: GPU memory the sweep needs (16-bit weights, 2 bytes per parameter,
    while they are swapped layer by layer for 1-byte int8 ones, plus `overhead_gb` for the CUDA
    context and activations), whether it fits, and the estimated minutes to download the
    checkpoint (2 bytes per parameter at `download_mbs`), load it (`load_gbs`) and run `passes`
    forward passes over `tokens` tokens (2 FLOPs per parameter and token at `gemm_efficiency` of
    the fp16 peak, and at least one read of the weights per pass). Estimates, not measurements."""
    rows = []
    for name in names:
        params = parameter_count(name)
        weights_gb = 2 * params / 1e9
        need = weights_gb * 1.02 + assumed["overhead_gb"]
        for runtime, spec in runtimes.items():
            compute_s = (
                assumed["passes"]
                * 2
                * params
                * tokens
                / (spec["fp16_tflops"] * 1e12 * assumed["gemm_efficiency"])
            )
            memory_s = assumed["passes"] * weights_gb / spec["bandwidth_gbs"]
            minutes = (
                weights_gb * 1e3 / assumed["download_mbs"]
                + weights_gb / assumed["load_gbs"]
                + max(compute_s, memory_s)
            ) / 60
            rows.append(
                {
                    "model": name.split("/")[-1],
                    "parameters (B)": params / 1e9,
                    "runtime": runtime,
                    "GPU GB needed": need,
                    "fits": need <= spec["gpu_gb"],
                    "minutes (estimate)": minutes if need <= spec["gpu_gb"] else math.nan,
                }
            )
    return pd.DataFrame(rows)


# --- the evaluation text --------------------------------------------------------------------------
_LAST_WORD = re.compile(r"^(?P<context>.*\S)\s+(?P<word>[A-Za-z][A-Za-z'’-]*[A-Za-z])[\W_]*$")


def cloze_items(tokenizer, sentences):
    """(token ids, index of the last word's first token) per sentence whose last word is alphabetic
    (2+ letters); the ids are the tokenized context (with the tokenizer's start token) followed by
    the tokens of " " + word, so that the word's tokens are what the model must predict."""
    items = []
    for sentence in sentences:
        match = _LAST_WORD.match(sentence.strip())
        if not match:
            continue
        context = tokenizer(match["context"])["input_ids"]
        word = tokenizer(" " + match["word"], add_special_tokens=False)["input_ids"]
        if context and word:
            items.append((context + word, len(context)))
    if not items:
        raise ValueError("no sentence ends with an alphabetic word")
    return items


def _batches(items, batch_size: int, pad_id: int, device):
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        target = torch.zeros(len(chunk), width, dtype=torch.bool)  # the last word's tokens
        for row, (seq, first) in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            target[row, first : len(seq)] = True
        yield ids.to(device), mask.to(device), target.to(device)


def evaluate(
    lm, items, batch_size: int = 8, magnitude: float | None = None, attention: bool = False
):
    """Perplexity over every predicted token of `items` and last-word cloze accuracy; with
    `magnitude`, the linear layers' inputs are recorded in the same pass (an `outliers.Capture`),
    and with `attention` the attention probabilities are summarised (`attention_stats`).
    Returns (metrics dict, capture or None, attention table or None). With `attention` the model is
    switched to eager attention (the implementation that returns the probabilities)."""
    if attention:
        _use_eager_attention(lm)
    device = next(lm.parameters()).device
    pad_id = lm.config.pad_token_id if lm.config.pad_token_id is not None else 1
    nll, tokens, correct = 0.0, 0, 0
    attention_tables = []
    recorder = outliers.recording_linear_inputs(lm, magnitude) if magnitude is not None else None
    capture, state = recorder.__enter__() if recorder else (None, {})
    try:
        with torch.no_grad():
            by_length = sorted(items, key=lambda item: len(item[0]))  # little padding per batch
            for ids, mask, target in _batches(by_length, batch_size, pad_id, device):
                state["mask"] = mask.bool()
                out = lm(
                    input_ids=ids, attention_mask=mask, output_attentions=attention, use_cache=False
                )
                logits = out.logits[:, :-1].float()
                labels, real = ids[:, 1:], mask[:, 1:].bool()
                logp = torch.log_softmax(logits, dim=-1).gather(-1, labels[..., None])[..., 0]
                nll -= float(logp[real].double().sum())
                tokens += int(real.sum())
                hit = (logits.argmax(-1) == labels) | ~target[:, 1:]
                correct += int(hit.all(dim=1).sum())
                if attention:
                    attention_tables.append(
                        outliers.attention_stats(out.attentions, mask, causal=True)
                    )
    finally:
        if recorder:
            recorder.__exit__(None, None, None)
    metrics = {
        "perplexity": math.exp(nll / max(tokens, 1)),
        "cloze_accuracy": correct / len(items),
        "tokens": tokens,
        "items": len(items),
    }
    return metrics, capture, (outliers.merge_attention(attention_tables) if attention else None)


def _use_eager_attention(lm) -> None:
    """Only the eager attention implementation returns its probabilities (not SDPA's fused one)."""
    try:
        lm.set_attn_implementation("eager")
    except (AttributeError, ValueError):  # older transformers: the config field decides
        lm.config._attn_implementation = "eager"


def outlier_summary(capture: outliers.Capture) -> dict:
    """The family's per-model outlier statistics: dimensions meeting the paper's criteria, the
    largest |x| at a hidden-width input, the median over those inputs of the outlier dimensions'
    largest |x| (the outliers' magnitude), the largest share of positions they touch, and how
    many hidden-width inputs agree on one leading dimension."""
    table = outliers.outlier_features(capture)
    hidden = [s for (_, site), s in capture.sites.items() if site in outliers.HIDDEN_SITES]
    dims = table["dim"].tolist()
    _, agree = outliers.coordination(capture)
    magnitude = float(np.median([float(s.max_abs[dims].max()) for s in hidden])) if dims else 0.0
    return {
        "outlier_dims": len(dims),
        "max_abs": max(float(s.max_abs.max()) for s in hidden),
        "outlier_magnitude": magnitude,
        "position_share": max(s.share_of_positions(dims) for s in hidden) if dims else 0.0,
        "coordination": agree,
    }


def run_model(lm, items, threshold: float = 6.0, batch_size: int = 8):
    """Everything the chapter measures on one loaded causal LM (changed in place: its decoder's
    linear layers end up as Int8Linear). Returns (row dict, attention table)."""
    _use_eager_attention(
        lm
    )  # for all three passes alike (the 16-bit one returns the probabilities)
    row = {"parameters": sum(p.numel() for p in lm.parameters())}
    start = time.perf_counter()
    metrics, capture, attention = evaluate(
        lm, items, batch_size, magnitude=threshold, attention=True
    )
    row.update(
        {f"16-bit {k}": v for k, v in metrics.items() if k in ("perplexity", "cloze_accuracy")}
    )
    row.update(tokens=metrics["tokens"], items=metrics["items"], **outlier_summary(capture))
    del capture
    decoder = lm.model.decoder
    replace_linear_layers(decoder, "llm.int8", threshold, fp16_weights=False)
    layers = [m for m in decoder.modules() if isinstance(m, Int8Linear)]
    for scheme, name in (("llm.int8", "LLM.int8()"), ("vector", "8-bit vector-wise")):
        for layer in layers:
            layer.scheme = scheme
        metrics, _, _ = evaluate(lm, items, batch_size)
        row.update(
            {f"{name} {k}": v for k, v in metrics.items() if k in ("perplexity", "cloze_accuracy")}
        )
        if scheme == "llm.int8":
            row["16-bit columns"] = outliers.outlier_share(lm)
    row["eval_s"] = time.perf_counter() - start
    row["attention_keys_for_90pct"] = (
        float(attention["keys_for_90pct"].mean()) if len(attention) else math.nan
    )
    row["attention_keys_under_1pct"] = (
        float(attention["keys_under_1pct"].mean()) if len(attention) else math.nan
    )
    return row, attention


def sweep(names, sentences, device, threshold: float = 6.0, batch_size: int = 8, progress=None):
    """Load each model of `names` (local cache or Hub), run `run_model` on the sentences' cloze
    items, free it. Returns (one row per loaded model, {name: why it could not be loaded}); after a
    failed download no other is tried (no network is found once: `hub_reachable` keeps its answer).
    """
    rows, unavailable = [], {}
    download = True
    for name in (progress(names) if progress else names):
        start = time.perf_counter()
        try:
            tokenizer, lm = outliers.load_causal_lm(name, device, download)
        except outliers.WeightsUnavailable as err:
            unavailable[name] = str(err)
            download = download and "download failed" not in str(
                err
            )  # no network: asked once a minute
            continue
        load_s = time.perf_counter() - start
        row, _ = run_model(lm, cloze_items(tokenizer, sentences), threshold, batch_size)
        rows.append({"model": name, **row, "load_s": load_s})
        del lm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return pd.DataFrame(rows), unavailable


# --- decisions the chapter records, from a sweep's table ------------------------------------------
PPL_REL_TOL = 0.01  # "recover full performance": perplexity within 1 % of 16-bit's
ACC_TOL = 0.01  # and cloze accuracy within 1 point
COLLAPSE_PPL = 0.10  # "a big dip": the baseline's perplexity 10 % above 16-bit's, or
COLLAPSE_ACC = 0.05  # its cloze accuracy 5 points below
PHASE_SHIFT = 6.0e9  # the post's 6.7 B (OPT-6.7B has 6.66 B parameters)


def recovers(row, scheme: str = "LLM.int8()") -> bool:
    """Whether `scheme` keeps 16-bit quality on one model: perplexity within PPL_REL_TOL and cloze
    accuracy within ACC_TOL of the 16-bit model's."""
    ppl = row[f"{scheme} perplexity"] / row["16-bit perplexity"] - 1
    acc = row["16-bit cloze_accuracy"] - row[f"{scheme} cloze_accuracy"]
    return bool(ppl <= PPL_REL_TOL and acc <= ACC_TOL)


def dips(row, scheme: str = "8-bit vector-wise") -> bool:
    """Whether `scheme` loses quality visibly on one model (COLLAPSE_PPL or COLLAPSE_ACC)."""
    ppl = row[f"{scheme} perplexity"] / row["16-bit perplexity"] - 1
    acc = row["16-bit cloze_accuracy"] - row[f"{scheme} cloze_accuracy"]
    return bool(ppl > COLLAPSE_PPL or acc > COLLAPSE_ACC)


def strictly_monotone(x, y, decreasing: bool = True) -> bool:
    """Whether y moves strictly one way as x increases (the models sorted by x)."""
    order = np.argsort(np.asarray(x, dtype=float))
    ys = np.asarray(y, dtype=float)[order]
    steps = np.diff(ys)
    return bool(len(ys) >= 2 and ((steps < 0).all() if decreasing else (steps > 0).all()))


# --- int8-18: the post's 150,000 outliers per sequence --------------------------------------------
def outliers_per_sequence(
    dims: int, position_share: float, sequence_length: int, layers: int, sites_per_layer: int = 1
) -> float:
    """Outlier values in one sequence when `dims` feature dimensions hold an outlier at
    `position_share` of the positions, at `sites_per_layer` hidden-width inputs of each layer."""
    return dims * position_share * sequence_length * layers * sites_per_layer


def implied_sequence_length(
    count: float, dims: int, position_share: float, layers: int, sites_per_layer: int = 1
) -> float:
    """The sequence length at which `outliers_per_sequence` gives `count`."""
    return count / (dims * position_share * layers * sites_per_layer)


__all__ = [
    "OPT_SHAPES",
    "SCHEMES",
    "opt_config",
    "parameter_count",
    "RUNTIMES",
    "ASSUMED",
    "plan",
    "cloze_items",
    "evaluate",
    "default_family",
    "decide",
    "outlier_summary",
    "run_model",
    "sweep",
    "recovers",
    "dips",
    "strictly_monotone",
    "PHASE_SHIFT",
    "outliers_per_sequence",
    "implied_sequence_length",
]


# --- which sizes a run takes, and what its table decides ------------------------------------------
CPU_FAMILY = (
    "facebook/opt-125m",
    "facebook/opt-350m",
    "facebook/opt-1.3b",
)  # 1.3 B: ~5 GB in float32
LARGEST_BY_DEFAULT = "facebook/opt-6.7b"


def default_family(device) -> list[str]:
    """FAMILY="auto": on CUDA every OPT size up to 6.7 B whose sweep fits the GPU's memory (`plan`'s
    estimate); on a CPU the three smallest (float32, minutes each)."""
    if torch.device(device).type != "cuda":
        return list(CPU_FAMILY)
    total_gb = torch.cuda.get_device_properties(torch.device(device)).total_memory / 1e9
    names = list(OPT_SHAPES)[: list(OPT_SHAPES).index(LARGEST_BY_DEFAULT) + 1]
    need = plan(
        names,
        tokens=1,
        runtimes={"this GPU": dict(gpu_gb=total_gb, ram_gb=0, fp16_tflops=1, bandwidth_gbs=1)},
    )
    return [n for n, fits in zip(names, need["fits"]) if fits]


def decide(table: pd.DataFrame) -> dict:
    """What a sweep's table (one row per loaded model, `sweep`) lets the chapter decide, per claim:
    {cid: {"holds": bool, "measured": ...}} where the loaded sizes suffice, else
    {cid: {"missing": what is needed}}. int8-16 gives "measured" only (a numeric check)."""
    rows = table.sort_values("parameters").to_dict("records") if len(table) else []
    big = [r for r in rows if r["parameters"] >= PHASE_SHIFT]
    small = [r for r in rows if r["parameters"] < PHASE_SHIFT]
    out: dict = {}
    if len(rows) >= 2:
        sizes = [r["parameters"] for r in rows]
        rank = pd.Series([r["max_abs"] for r in rows]).corr(pd.Series(sizes), method="spearman")
        out["int8-9"] = {
            "holds": bool(rank > 0 and rows[-1]["outlier_dims"] >= rows[0]["outlier_dims"]),
            "measured": [round(r["max_abs"], 2) for r in rows] + [r["outlier_dims"] for r in rows],
        }
    else:
        out["int8-9"] = {"missing": "two or more OPT sizes"}
    if rows and big:
        out["int8-13"] = {
            "holds": all(recovers(r) for r in rows),
            "measured": [
                round(r["LLM.int8() perplexity"] / r["16-bit perplexity"], 4) for r in rows
            ],
        }
    else:
        out["int8-13"] = {"missing": "a ≥ 6.7 B model" if rows else "OPT sizes up to 6.7 B"}
    if big and small:
        out["int8-14"] = {
            "holds": all(dips(r) for r in big) and not any(dips(r) for r in small),
            "measured": [
                round(r["8-bit vector-wise perplexity"] / r["16-bit perplexity"], 4) for r in rows
            ],
        }
    else:
        out["int8-14"] = {"missing": "a ≥ 6.7 B model and a smaller one"}
    if len(rows) >= 3:
        out["int8-15"] = {
            "holds": strictly_monotone(
                [r["16-bit perplexity"] for r in rows],
                [r["outlier_dims"] for r in rows],
                decreasing=True,
            ),
            "measured": [[round(r["16-bit perplexity"], 2), r["outlier_dims"]] for r in rows],
        }
    else:
        out["int8-15"] = {"missing": "three or more OPT sizes"}
    by_name = {str(r["model"]).split("/")[-1]: r for r in rows}
    wanted = ("opt-6.7b", "opt-13b", "opt-66b")
    if all(w in by_name for w in wanted):
        out["int8-16"] = {"measured": [round(by_name[w]["outlier_magnitude"], 1) for w in wanted]}
    else:
        out["int8-16"] = {"missing": "OPT-6.7B, 13B and 66B (66B: 132 GB in 16 bit, several GPUs)"}
    if big and small:
        out["int8-17"] = {
            "holds": max(r["attention_keys_for_90pct"] for r in big)
            < min(r["attention_keys_for_90pct"] for r in small),
            "measured": [round(r["attention_keys_for_90pct"], 3) for r in rows],
        }
    else:
        out["int8-17"] = {"missing": "a ≥ 6.7 B model and a smaller one"}
    return out


@dataclass
class OutlierCount:
    """int8-18: the sequence length at which the post's factors (6 dims at 75 % of the positions, one
    hidden-width input per layer of OPT-6.7B) give its 150,000, and the count at the nearest power
    of two and at the full context."""

    layers: int
    context: int
    implied_length: float
    power_of_two: int
    at_power: float
    at_context: float
    count: float = 150_000

    @property
    def holds(self) -> bool:
        return self.implied_length <= self.context and abs(self.at_power / self.count - 1) <= 0.05

    @property
    def measured(self) -> list[int]:
        return [round(self.implied_length), self.power_of_two, round(self.at_power), round(self.at_context)]

    def summary(self) -> str:
        return (f"OPT-6.7B: {self.layers} layers, {self.context}-token context\n"
                f"150,000 = 6 x 0.75 x L x {self.layers} at L = {self.implied_length:.0f} tokens; at L = "
                f"{self.power_of_two}: {self.at_power:,.0f} ({self.at_power / self.count - 1:+.1%}); at the "
                f"full context {self.context}: {self.at_context:,.0f}")


def outlier_count(count: float = 150_000, dims: int = 6, share: float = 0.75,
                  name: str = "facebook/opt-6.7b") -> OutlierCount:
    """int8-18: `implied_sequence_length` and `outliers_per_sequence` with the shape of `name`."""
    config = opt_config(name)
    layers, context = config.num_hidden_layers, config.max_position_embeddings
    implied = implied_sequence_length(count, dims, share, layers)
    power = 2 ** round(math.log2(implied))
    return OutlierCount(layers, context, implied, power, outliers_per_sequence(dims, share, power, layers),
                        outliers_per_sequence(dims, share, context, layers), count)


def plan_table(tokens: int, names=None) -> pd.DataFrame:
    """`plan` as the page shows it: a row per size (parameters, GPU memory) and a column of minutes
    per runtime ("does not fit" where it does not)."""
    estimates = plan(list(OPT_SHAPES) if names is None else list(names), tokens)
    wide = estimates.pivot(index="model", columns="runtime", values="minutes (estimate)")
    wide = wide.reindex([n.split("/")[-1] for n in (OPT_SHAPES if names is None else names)])
    wide.insert(0, "GPU GB needed", estimates.groupby("model")["GPU GB needed"].first())
    wide.insert(0, "parameters (B)", estimates.groupby("model")["parameters (B)"].first())
    return wide.round(2).astype(object).where(wide.notna(), "does not fit")


def plot_family(family: pd.DataFrame):
    """int8-9, int8-13 … int8-16: the post's Results figure from a `sweep` table: (a) cloze accuracy
    and (b) perplexity per scheme against size, (c) outlier dims against perplexity, (d) outlier
    magnitude against size; an empty table gives the empty panels, saying why."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6.2), layout="constrained")
    panels = [("(a) last-word cloze accuracy", "cloze_accuracy", "accuracy"),
              ("(b) perplexity on the posts' text", "perplexity", "perplexity")]
    for ax, (title, metric, label) in zip(axes[0], panels):
        for scheme, style in zip(SCHEMES, ("x--", "o-", "^-")):
            if len(family):
                ax.plot(family.parameters, family[f"{scheme} {metric}"], style, label=scheme)
        ax.set(xscale="log", xlabel="parameters", ylabel=label, title=title)
    if len(family):
        axes[1, 0].plot(family["16-bit perplexity"], family.outlier_dims, "o-")
        axes[1, 1].plot(family.parameters, family.outlier_magnitude, "o-")
    axes[1, 0].set(xscale="log", xlabel="perplexity (16 bit)", ylabel="outlier dimensions",
                   title="(c) emergence against perplexity")
    axes[1, 1].set(xscale="log", xlabel="parameters", ylabel="outlier magnitude",
                   title="(d) outlier magnitude")
    for ax in axes.flat:
        if not len(family):
            ax.text(0.5, 0.5, "not measured here:\nneeds-resource (OPT weights)", ha="center",
                    va="center", transform=ax.transAxes, color="grey")
            ax.set_xlim(*((5, 500) if ax is axes[1, 0] else (1e8, 1e11)))  # OPT's sizes, perplexities
    if len(family):
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncols=3)
    fig.suptitle("OPT family on the posts' sentences: this book's measurement")
    return fig


__all__ += ["random_opt", "OutlierCount", "outlier_count", "plan_table", "plot_family"]
