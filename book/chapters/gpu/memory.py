"""The memory models behind the post's advice: the cycle count of a 32×32 matmul (gpu-1), the cache
latencies (gpu-15), BERT-large's matmul operands against L2 (gpu-4) and a tiled matmul whose every
global-memory load is counted as it runs (gpu-5)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


# ---------------------------------------------------------------------------------------------
# gpu-1: the cycle model of a 32×32 matmul
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Latencies:
    """Latencies in cycles. Defaults are the post's Ampere figures. The post's worked example loads
    the tiles from global memory at `tile_load` = 200 cycles (its L2 figure; a true DRAM access is
    `global_memory` ≈ 380): the model keeps both so that a reader can try either."""

    global_memory: float = 380
    l2: float = 200
    shared: float = 34
    ffma: float = 4
    tensor_core: float = 1
    tile_load: float | None = None  # cycles of the global→shared tile load; None → the L2 figure

    def __post_init__(self) -> None:
        for name in ("global_memory", "l2", "shared", "ffma", "tensor_core"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"latency {name} must be a non-negative number, not {value!r}")
        if self.tile_load is not None and self.tile_load < 0:
            raise ValueError("tile_load must be non-negative")

    @property
    def load(self) -> float:
        return self.l2 if self.tile_load is None else self.tile_load


@dataclass(frozen=True)
class MatmulSetup:
    """The post's resources: a 32×32 matmul on 8 SMs with 8 warps each; 8 Tensor Cores per SM,
    each doing a 4×4 tile per cycle; `ffma_steps` sequential shared-load + FFMA rounds per warp
    (the post takes 8 and says why it is 8 is 'very technical': it is an input here)."""

    n: int = 32
    sms: int = 8
    tensor_cores_per_sm: int = 8
    tc_tile: int = 4
    ffma_steps: int = 8

    def __post_init__(self) -> None:
        for name in ("n", "sms", "tensor_cores_per_sm", "tc_tile", "ffma_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if self.n % self.tc_tile:
            raise ValueError(f"n={self.n} must be a multiple of the Tensor Core tile {self.tc_tile}")

    @property
    def tensor_core_rounds(self) -> int:
        """Sequential Tensor Core rounds: one op per 4×4 output tile, as the post counts
        ((32/4)² = 64 ops on 8×8 = 64 Tensor Cores → 1 round)."""
        ops = (self.n // self.tc_tile) ** 2
        return math.ceil(ops / (self.sms * self.tensor_cores_per_sm))


MATMUL_KINDS = ("ffma", "tensor_core", "tensor_core_async")


def matmul_cycles(kind: str, lat: Latencies = Latencies(), setup: MatmulSetup = MatmulSetup()) -> float:
    """Cycles of one tile of the post's matmul.

    - ``ffma``: load + ffma_steps × (shared + FFMA)                 (post: 200 + 8·34 + 8·4 = 504)
    - ``tensor_core``: load + shared + rounds × Tensor Core          (post: 200 + 34 + 1 = 235)
    - ``tensor_core_async``: the next tile's load overlaps the current tile's shared-memory and
      Tensor Core work, so only max(load − work, 0) is waited for (post: 165 + 34 + 1 = 200)."""
    if kind not in MATMUL_KINDS:
        raise ValueError(f"kind must be one of {MATMUL_KINDS}, not {kind!r}")
    if kind == "ffma":
        return lat.load + setup.ffma_steps * (lat.shared + lat.ffma)
    work = lat.shared + setup.tensor_core_rounds * lat.tensor_core
    if kind == "tensor_core":
        return lat.load + work
    return max(lat.load - work, 0.0) + work


def cycle_table(variants: dict[str, Latencies], setup: MatmulSetup = MatmulSetup()):
    """A DataFrame: one row per named latency set, cycles of each kind and the async gain."""
    import pandas as pd

    rows = []
    for name, lat in variants.items():
        c = {k: matmul_cycles(k, lat, setup) for k in MATMUL_KINDS}
        rows.append({"latencies": name, "load": lat.load, "shared": lat.shared, **c,
                     "tc_vs_ffma_x": c["ffma"] / c["tensor_core"],
                     "async_time_saved_pct": 100 * (1 - c["tensor_core_async"] / c["tensor_core"])})
    return pd.DataFrame(rows).set_index("latencies")


# ---------------------------------------------------------------------------------------------
# gpu-15: the post's cache latencies against its "3–5× / 7–10×"
# ---------------------------------------------------------------------------------------------
POST_CACHE_SPEEDUPS = {"L2": (3.0, 5.0), "shared": (7.0, 10.0)}  # post: "faster than global memory"


def cache_speedups(lat: Latencies = Latencies()) -> dict[str, float]:
    """How many times lower each level's latency is than global memory's (the post's "faster"), and
    shared memory against L2 (the post's "about five times lower (200 cycles vs 34 cycles)")."""
    if min(lat.l2, lat.shared) <= 0:
        raise ValueError("latencies of L2 and shared memory must be positive")
    return {"L2": lat.global_memory / lat.l2, "shared": lat.global_memory / lat.shared,
            "shared_vs_L2": lat.l2 / lat.shared}


# ---------------------------------------------------------------------------------------------
# gpu-4: BERT-large matmul operands against L2
# ---------------------------------------------------------------------------------------------
BERT_LARGE = {"hidden": 1024, "heads": 16, "ffn": 4096}
BERT_BASE = {"hidden": 768, "heads": 12, "ffn": 3072}


def _bert_rows(batch: int, seq: int, hidden: int, heads: int, ffn: int):
    t = batch * seq
    return [  # name, left operand elements, right operand elements, has a weight operand
        ("QKV projection", t * hidden, hidden * 3 * hidden, True),
        ("attention scores QKᵀ", t * hidden, t * hidden, False),  # all heads: Q and K
        ("attention × V", batch * heads * seq * seq, t * hidden, False),
        ("output projection", t * hidden, hidden * hidden, True),
        ("FFN up", t * hidden, hidden * ffn, True),
        ("FFN down", t * ffn, ffn * hidden, True),
    ]


def bert_large_matmuls(batch: int = 4, seq: int = 512, bytes_per_el: int = 2, hidden: int = 1024,
                       heads: int = 16, ffn: int = 4096):
    """Each distinct matmul of one BERT encoder layer's forward pass (BERT-large by default): its
    two input operands (activations and a weight, or the two activations in attention) in MiB, at
    `batch`×`seq` tokens, and whether one operand is a weight (the post's "input and weight matrix")."""
    import pandas as pd

    for name, v in (("batch", batch), ("seq", seq), ("bytes_per_el", bytes_per_el)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, not {v!r}")
    mib = bytes_per_el / 2**20
    return pd.DataFrame([{"matmul": n, "left_MiB": a * mib, "right_MiB": b * mib, "inputs_MiB": (a + b) * mib,
                          "has_weight": w} for n, a, b, w in _bert_rows(batch, seq, hidden, heads, ffn)]
                        ).set_index("matmul")


def fits_l2_up_to_tokens(l2_mib: float, *, bytes_per_el: int = 2, hidden: int = 1024, ffn: int = 4096,
                         heads: int = 16) -> int:
    """The largest number of tokens at which the input and the weight of every weight matmul of a
    BERT layer fit together in `l2_mib` MiB of L2 (0: not even one token's worth fits). Attention's
    activation-by-activation matmuls have no weight and are not part of the post's statement."""
    if not l2_mib > 0:
        raise ValueError(f"l2_mib must be positive, not {l2_mib!r}")
    capacity = l2_mib * 2**20 / bytes_per_el  # elements
    best = None
    for name, per_token, weight, has_weight in _bert_rows(1, 1, hidden, heads, ffn):
        if not has_weight:
            continue
        # at t tokens the input is t × per_token elements (per_token: the row width of the input)
        room = capacity - weight
        limit = 0 if room < per_token else int(room // per_token)
        best = limit if best is None else min(best, limit)
    return int(best)


# ---------------------------------------------------------------------------------------------
# gpu-5: a tiled matmul whose global-memory traffic is counted as it runs
# ---------------------------------------------------------------------------------------------
@dataclass
class TrafficCount:
    """What the instrumented run moved: elements read from and written to global memory, the tile
    reads that went out to it, the tile reads an L2 model served instead, and the FLOPs done."""

    tile: int
    loads: int = 0
    stores: int = 0
    tile_loads: int = 0
    l2_hits: int = 0
    flops: int = 0

    @property
    def total(self) -> int:
        return self.loads + self.stores

    @property
    def reuse(self) -> float:
        """FLOPs per element read from global memory: what a bigger tile is supposed to raise."""
        return self.flops / self.loads if self.loads else float("inf")


class GlobalMemory:
    """A matrix in 'global memory'. The kernel can only reach it through `read`/`write`, which
    count the elements they actually move (the size of the returned block, edge tiles included).
    With an L2 model (`l2_bytes` > 0, shared by the matrices of one run) a block read again while it
    is still cached is served from L2 (least recently used blocks are evicted first)."""

    def __init__(self, array: np.ndarray, name: str, count: TrafficCount, l2: "_LRU | None" = None):
        self._array, self.name, self._count, self._l2 = array, name, count, l2

    @property
    def shape(self) -> tuple[int, int]:
        return self._array.shape

    def read(self, r0: int, c0: int, rows: int, cols: int) -> np.ndarray:
        block = np.array(self._array[r0:r0 + rows, c0:c0 + cols])  # a copy: the tile in shared memory
        if self._l2 is not None and self._l2.hit((self.name, r0, c0, block.shape), block.nbytes):
            self._count.l2_hits += 1
        else:
            self._count.loads += block.size
            self._count.tile_loads += 1
        return block

    def write(self, r0: int, c0: int, block: np.ndarray) -> None:
        self._array[r0:r0 + block.shape[0], c0:c0 + block.shape[1]] = block
        self._count.stores += block.size


class _LRU:
    def __init__(self, capacity_bytes: int):
        from collections import OrderedDict

        self.capacity, self.used, self.blocks = capacity_bytes, 0, OrderedDict()

    def hit(self, key, nbytes: int) -> bool:
        if key in self.blocks:
            self.blocks.move_to_end(key)
            return True
        if nbytes <= self.capacity:
            self.blocks[key] = nbytes
            self.used += nbytes
            while self.used > self.capacity:
                self.used -= self.blocks.popitem(last=False)[1]
        return False


@dataclass
class TiledRun:
    c: np.ndarray
    count: TrafficCount


def run_tiled_matmul(a: np.ndarray, b: np.ndarray, tile: int, *, l2_bytes: int = 0,
                     shared_bytes: int | None = None) -> TiledRun:
    """C = A·B the way a GPU kernel computes it: for each output tile, loop over k, read an A tile and
    a B tile from global memory into 'shared memory' (local copies), multiply-accumulate them into
    the output tile ('registers'), and write the output tile once. A, B and C live behind
    `GlobalMemory`, so the traffic is what this loop actually read and wrote, edge tiles included
    (any shapes: tiles need not divide them). `shared_bytes` refuses tiles that would not fit a
    shared memory of that size; `l2_bytes` puts an LRU L2 model in front of global memory."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need matrices A (m×k) and B (k×n), got shapes {a.shape} and {b.shape}")
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
        raise ValueError(f"tile must be a positive int, not {tile!r}")
    if l2_bytes < 0:
        raise ValueError("l2_bytes must be ≥ 0")
    dtype = np.result_type(a.dtype, b.dtype)
    if shared_bytes is not None and 2 * tile * tile * dtype.itemsize > shared_bytes:
        raise ValueError(f"two {tile}×{tile} {dtype} tiles need {2 * tile * tile * dtype.itemsize} bytes: "
                         f"more than the {shared_bytes} bytes of shared memory")
    count = TrafficCount(tile)
    l2 = _LRU(l2_bytes) if l2_bytes else None
    m, kk = a.shape
    n = b.shape[1]
    ga, gb = GlobalMemory(a, "A", count, l2), GlobalMemory(b, "B", count, l2)
    gc = GlobalMemory(np.zeros((m, n), dtype=dtype), "C", count)
    for i in range(0, m, tile):
        for j in range(0, n, tile):
            acc = None
            for k in range(0, kk, tile):
                sa, sb = ga.read(i, k, tile, tile), gb.read(k, j, tile, tile)
                count.flops += 2 * sa.shape[0] * sa.shape[1] * sb.shape[1]
                acc = sa @ sb if acc is None else acc + sa @ sb
            gc.write(i, j, acc)
    return TiledRun(gc._array, count)


def tiled_matmul(a: np.ndarray | None, b: np.ndarray | None, tile: int, n: int | None = None,
                 cache_tiles: int = 0) -> tuple[np.ndarray | None, TrafficCount]:
    """Square tiled matmul through `run_tiled_matmul` (kept for older callers): with a and b None it
    multiplies two n×n zero matrices (n given) and returns only the count; `cache_tiles` sizes the
    L2 model in whole tiles of the inputs' element size."""
    given = a is not None
    if not given:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError("n must be a positive int (or give a and b)")
        a = b = np.zeros((n, n), dtype=np.float32)
    elif b is None or a.ndim != 2 or a.shape[0] != a.shape[1] or b.shape != a.shape:
        raise ValueError("a and b must be square matrices of the same shape")
    size = a.shape[0]
    if not isinstance(tile, int) or tile < 1 or size % tile:
        raise ValueError(f"tile={tile!r} must be a positive int that divides n={size}")
    run = run_tiled_matmul(a, b, tile, l2_bytes=cache_tiles * tile * tile * a.dtype.itemsize)
    return (run.c if given else None), run.count


# ---------------------------------------------------------------------------------------------
# The chapter's experiments on these models (gpu-1, gpu-5)
# ---------------------------------------------------------------------------------------------
# gpu-1's table: the post's latencies (tile load 200 = L2), tile load from DRAM (380), faster shared
# memory (20), slower L2 (300), async copies hiding everything (load 30)
LATENCY_VARIANTS = {"post": Latencies(), "DRAM 380": Latencies(tile_load=380),
                    "shared 20": Latencies(shared=20), "L2 300": Latencies(l2=300),
                    "async 30": Latencies(l2=30)}
MIB_FP32 = 4 / 2**20  # MiB per fp32 element


def largest_shared_tile(shared_kb: float) -> int:
    """gpu-5: the largest power-of-two T whose fp32 A and B tiles (2·T²·4 bytes) fit `shared_kb`."""
    return max(t for t in (2**k for k in range(2, 12)) if 2 * t * t * 4 <= shared_kb * 1024)


@dataclass
class TilingExperiment:
    """gpu-5: an N×N fp32 tiled matmul run at each tile size, and at T = 16 behind L2 models of
    0, 1/8, 1/2 and 1 × the operands' bytes; every global read counted as it ran."""

    n: int
    tiles: list[int]
    a: np.ndarray
    b: np.ndarray
    runs: dict[int, TiledRun]
    l2_runs: dict[str, TiledRun]
    product_err: float  # largest |tiled - A@B| relative to max |A@B|

    @property
    def reuse(self) -> list[float]:
        return [self.runs[t].count.reuse for t in self.tiles]

    @property
    def elements(self) -> int:
        return self.a.size + self.b.size

    @property
    def holds(self) -> bool:
        """Exact products, reuse rising with the tile, an L2 holding A and B reading each element
        once, and no L2 reading more."""
        with_l2 = self.l2_runs["1 × the operands"].count.loads
        without = self.l2_runs["0 × the operands"].count.loads
        return (self.product_err < 1e-5 and all(r2 > r1 for r1, r2 in zip(self.reuse, self.reuse[1:]))
                and with_l2 == self.elements and without > with_l2)

    @property
    def measured(self) -> list[float]:
        """FLOPs per global read per tile; global reads over elements with a full L2 and with none."""
        with_l2 = self.l2_runs["1 × the operands"].count.loads
        without = self.l2_runs["0 × the operands"].count.loads
        return ([round(r, 1) for r in self.reuse]
                + [round(with_l2 / self.elements, 3), round(without / self.elements, 2)])

    def table(self):
        """Tile reads, global reads against 2N³/T, and FLOPs per element read, per tile size."""
        import pandas as pd

        n, tiles = self.n, self.tiles
        return pd.DataFrame({"tile": tiles, "tile reads": [self.runs[t].count.tile_loads for t in tiles],
                             "global reads (MiB)": [self.runs[t].count.loads * MIB_FP32 for t in tiles],
                             "2N³/T (MiB)": [2 * n**3 / t * MIB_FP32 for t in tiles],
                             "FLOPs per element read": self.reuse}).set_index("tile")

    def l2_table(self):
        """Global reads and reads served by L2, per L2 size (T = 16)."""
        import pandas as pd

        return pd.DataFrame({name: {"global reads (MiB)": r.count.loads * MIB_FP32,
                                    "served by L2 (tile reads)": r.count.l2_hits}
                             for name, r in self.l2_runs.items()}).T

    def plot(self):
        """Counted global reads against the tile size, with the floor an L2 holding A and B gives."""
        import matplotlib.pyplot as plt

        tiles = self.tiles
        fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
        ax.loglog(tiles, [self.runs[t].count.loads * MIB_FP32 for t in tiles], "o-", base=2,
                  label="counted global reads")
        ax.loglog(tiles, [(self.a.nbytes + self.b.nbytes) / 2**20] * len(tiles), "k--", base=2,
                  label="each element once (L2 holds A and B)")
        ax.set_xlabel("tile size T"); ax.set_ylabel("global-memory reads (MiB)")
        ax.set_title(f"{self.n}×{self.n} fp32 tiled matmul")
        ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=9)
        return fig


def tiling_experiment(n: int, tiles: list[int], seed: int = 0) -> TilingExperiment:
    """gpu-5: random N×N fp32 A and B (numpy's default_rng(seed)), multiplied tiled at each tile size
    and, at T = 16, behind LRU L2 models of 0, 1/8, 1/2 and 1 × the operands (about a second)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    reference = a @ b
    runs = {t: run_tiled_matmul(a, b, t) for t in tiles}
    err = max(float(np.abs(r.c - reference).max() / np.abs(reference).max()) for r in runs.values())
    operands = a.nbytes + b.nbytes
    l2_runs = {f"{frac:g} × the operands": run_tiled_matmul(a, b, 16, l2_bytes=int(frac * operands))
               for frac in (0, 1 / 8, 1 / 2, 1)}
    return TilingExperiment(n, list(tiles), a, b, runs, l2_runs, err)
