"""2:4 structured sparsity, the pattern NVIDIA's sparse tensor cores run: in every group of 4
consecutive inputs of a weight row at most 2 are non-zero, and the compressed form stores the 2 kept
values with a 2-bit position each.

Two chapters use it: gpu (gpu-7, the format and its storage) and sparse (sparse-7, a 2:4 network
and its accuracy), so it lives here once. Groups run along the last dimension of the weight
flattened to (outputs, inputs), the layout `torch.sparse.to_sparse_semi_structured` takes.
"""
from __future__ import annotations

import torch

METADATA_BITS = 2  # the position of a kept value within its group of 4


def _groups(weight: torch.Tensor) -> torch.Tensor:
    w = weight.reshape(weight.shape[0], -1) if weight.ndim != 1 else weight.reshape(1, -1)
    if w.shape[1] % 4:
        raise ValueError(f"2:4 needs the input size to be a multiple of 4, got {w.shape[1]} "
                         f"(weight of shape {tuple(weight.shape)})")
    return w.reshape(w.shape[0], -1, 4)


def mask(weight: torch.Tensor) -> torch.Tensor:
    """The boolean mask keeping the 2 largest-magnitude weights of every group of 4 inputs."""
    groups = _groups(weight)
    top = groups.abs().topk(2, dim=-1).indices
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True).reshape(weight.shape)


def prune(weight: torch.Tensor) -> torch.Tensor:
    """`weight` with all but the 2 largest-magnitude entries of each group of 4 set to zero."""
    return weight * mask(weight)


def is_2_4(weight: torch.Tensor) -> bool:
    """True when every group of 4 consecutive inputs holds at most 2 non-zeros (False when the
    input size is not a multiple of 4)."""
    try:
        groups = _groups(weight)
    except ValueError:
        return False
    return bool(((groups != 0).sum(-1) <= 2).all())


def compress(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The compressed form of a 2:4 matrix: the 2 kept values of each group (half the entries) and
    their positions within the group (0..3, stored here as uint8). Raises ValueError when a group
    holds more than 2 non-zeros."""
    groups = _groups(weight)
    if int((groups != 0).sum(-1).max()) > 2:
        raise ValueError("matrix is not 2:4 sparse (a group of 4 has more than 2 non-zeros)")
    # the positions of the two kept entries in order: non-zeros first, then the lower index
    key = (groups != 0).to(torch.int8) * 8 - torch.arange(4, device=groups.device, dtype=torch.int8)
    index = key.topk(2, dim=-1).indices.sort(dim=-1).values
    values = groups.gather(-1, index).reshape(groups.shape[0], -1)
    return values, index.reshape(groups.shape[0], -1).to(torch.uint8)


def decompress(values: torch.Tensor, index: torch.Tensor, cols: int) -> torch.Tensor:
    """The dense (rows, cols) matrix back from `compress`'s values and positions."""
    rows = values.shape[0]
    out = torch.zeros(rows, cols // 4, 4, dtype=values.dtype, device=values.device)
    out.scatter_(-1, index.reshape(rows, -1, 2).long(), values.reshape(rows, -1, 2))
    return out.reshape(rows, cols)


def storage(weight: torch.Tensor, bits: int | None = None) -> dict[str, float]:
    """Bytes of the compressed form against the dense matrix, at `bits` per value (the weight's own
    element size when None): half the values, plus METADATA_BITS per kept value."""
    bits = bits if bits is not None else weight.element_size() * 8
    n = weight.numel()
    dense, values, meta = n * bits / 8, n / 2 * bits / 8, n / 2 * METADATA_BITS / 8
    return {"dense": dense, "values": values, "metadata": meta,
            "values_ratio": values / dense, "with_metadata_ratio": (values + meta) / dense}
