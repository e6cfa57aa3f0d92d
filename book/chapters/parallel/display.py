"""What the dp and mp chapters show while they measure: progress bars and, loaded only when a
figure is drawn, matplotlib."""
from __future__ import annotations

import warnings


def progress(items, desc: str):
    """A tqdm bar over `items` (a plain text bar where ipywidgets is absent)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm warns when ipywidgets is absent; plain bars are fine
        from tqdm.auto import tqdm
    return tqdm(items, desc=desc)


def pyplot():
    """matplotlib.pyplot, imported when a figure is drawn (the workers never draw)."""
    import matplotlib.pyplot as plt

    return plt
