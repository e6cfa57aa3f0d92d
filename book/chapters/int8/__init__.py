"""LLM.int8() and emergent features: `quant` (vector-wise int8 quantization, the mixed-precision
decomposition, Int8Linear) and `outliers` (emergent outlier features of a real transformer)."""
from book.chapters.int8 import opt_family, outliers, quant  # noqa: F401

__all__ = ["opt_family", "outliers", "quant"]
