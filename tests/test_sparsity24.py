"""book.core.sparsity24: the 2:4 mask keeps the two largest of each group of four, the compressed
form round-trips, and its storage is half the values plus 2 bits of position per kept value."""
import pytest
import torch

import book  # noqa: F401
from book.core import sparsity24 as s24


def test_the_mask_keeps_the_two_largest_magnitudes_of_each_group():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 4.0, 0.0, -0.2, 0.3]])
    assert s24.mask(w).tolist() == [[False, True, True, False, True, False, False, True]]
    assert s24.prune(w).tolist() == [[0.0, -3.0, 2.0, 0.0, 4.0, 0.0, -0.0, 0.30000001192092896]]


def test_conv_weights_group_along_their_flattened_inputs():
    w = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    pruned = s24.prune(w)
    assert pruned.shape == w.shape and s24.is_2_4(pruned) and not s24.is_2_4(w)
    assert int((pruned != 0).sum()) == w.numel() // 2


def test_an_input_size_not_a_multiple_of_four_is_refused():
    with pytest.raises(ValueError, match="multiple of 4"):
        s24.mask(torch.randn(4, 25))
    assert not s24.is_2_4(torch.zeros(4, 25))


def test_compress_round_trips_and_refuses_a_dense_matrix():
    w = s24.prune(torch.randn(16, 32, generator=torch.Generator().manual_seed(1)))
    values, index = s24.compress(w)
    assert values.shape == (16, 16) and index.dtype == torch.uint8 and int(index.max()) <= 3
    assert torch.equal(s24.decompress(values, index, 32), w)
    with pytest.raises(ValueError, match="not 2:4"):
        s24.compress(torch.ones(2, 8))


def test_a_group_with_fewer_than_two_nonzeros_still_compresses():
    w = torch.tensor([[0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]])
    values, index = s24.compress(w)
    assert torch.equal(s24.decompress(values, index, 8), w)


def test_storage_is_half_the_values_plus_two_bits_per_kept_value():
    sizes = s24.storage(torch.zeros(64, 64, dtype=torch.float16))
    assert sizes["dense"] == 64 * 64 * 2 and sizes["values_ratio"] == 0.5
    assert sizes["with_metadata_ratio"] == pytest.approx(0.5 + 0.5 * 2 / 16)
    assert s24.storage(torch.zeros(8, 8), bits=8)["with_metadata_ratio"] == pytest.approx(0.625)
