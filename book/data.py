"""Data sets: MNIST from its original files, checked by sha256 and cached.

The cache directory is $DETTMERS_BOOK_DATA, else ~/.cache/dettmers-book. A missing file is
downloaded from the public mirrors; a corrupt or truncated one is fetched again once and never used
as it is. Machines without internet seed the cache from a local copy (`seed_cache`, or
`python -m book data --seed DIR`).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

MNIST_FILES = {  # sha256 of the original files (the same bytes as the yann.lecun.com distribution)
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_CREDIT = ("MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, "
                "usually credited under CC BY-SA 3.0")


class DataError(RuntimeError):
    """A data file is missing, cannot be fetched, or fails its checksum."""


def data_dir() -> Path:
    return Path(os.environ.get("DETTMERS_BOOK_DATA") or Path.home() / ".cache" / "dettmers-book")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, target: Path, mirrors: tuple[str, ...]) -> None:
    errors = []
    for mirror in mirrors:
        try:
            with urllib.request.urlopen(mirror + name, timeout=60) as response, \
                    tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                shutil.copyfileobj(response, tmp)
            os.replace(tmp.name, target)  # atomic: a broken download never sits under the real name
            return
        except OSError as err:
            errors.append(f"{mirror}: {err}")
    raise DataError(f"could not download {name}:\n  " + "\n  ".join(errors) +
                    "\nWithout internet, seed the cache: python -m book data --seed DIR_WITH_MNIST_FILES")


def fetch_mnist_file(name: str, *, root: Path | None = None, download: bool = True,
                     mirrors: tuple[str, ...] = MNIST_MIRRORS) -> Path:
    """Path of one verified MNIST file in the cache, downloading it when missing or corrupt."""
    if name not in MNIST_FILES:
        raise ValueError(f"unknown MNIST file {name!r}; expected one of {sorted(MNIST_FILES)}")
    folder = (root or data_dir()) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    expected = MNIST_FILES[name]
    if path.exists() and sha256(path) == expected:
        return path
    problem = "is missing" if not path.exists() else "fails its sha256 check (corrupt or truncated)"
    if not download:
        raise DataError(f"{path} {problem}, and downloading is off")
    if path.exists():
        path.unlink()  # a cached file we put there ourselves and that is wrong: fetch it again
    _download(name, path, mirrors)
    got = sha256(path)
    if got != expected:
        path.unlink()
        raise DataError(f"{name} from the mirrors has sha256 {got}, expected {expected}")
    return path


def seed_cache(source: str | os.PathLike, *, root: Path | None = None) -> list[Path]:
    """Copy the MNIST files from a local folder into the cache, checking every sum first."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source} is not a folder")
    copied = []
    for name, expected in MNIST_FILES.items():
        src = source / name
        if not src.exists():
            raise DataError(f"{src} is missing")
        if sha256(src) != expected:
            raise DataError(f"{src} fails its sha256 check")
        dest = (root or data_dir()) / "mnist" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not (dest.exists() and sha256(dest) == expected):
            shutil.copyfile(src, dest)
        copied.append(dest)
    return copied


def read_idx(path: Path) -> np.ndarray:
    """Parse a (gzipped) IDX file: the format MNIST ships in."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path} holds {body.size} values, its header promises {int(np.prod(dims))}")
    return body.reshape(dims)


def load_mnist(split: str = "train", *, root: Path | None = None, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as tensors: uint8 images (N, 28, 28) and int64 labels (N,).

    Held in memory as tensors so training loops never re-decode files."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(fetch_mnist_file(f"{prefix}-images-idx3-ubyte.gz", root=root, download=download))
    labels = read_idx(fetch_mnist_file(f"{prefix}-labels-idx1-ubyte.gz", root=root, download=download))
    if len(images) != len(labels):
        raise DataError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def mnist_tensors(split: str = "train", *, device: torch.device | str = "cpu",
                  root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 in [0, 1] with shape (N, 1, 28, 28), normalised by the usual MNIST mean
    and standard deviation (0.1307, 0.3081), and labels, both on `device`."""
    images, labels = load_mnist(split, root=root)
    x = (images.float().div_(255.0).sub_(0.1307).div_(0.3081)).unsqueeze(1)
    return x.to(device), labels.to(device)


def sample_image(name: str = "grace_hopper") -> np.ndarray:
    """A real photograph that ships with matplotlib (no download), as grayscale float64 in [0, 1].

    'grace_hopper': the 600×512 portrait of Rear Admiral Grace Hopper (U.S. Navy photo, public domain)."""
    import matplotlib.image as mpimg
    from matplotlib import cbook

    files = {"grace_hopper": "grace_hopper.jpg"}
    if name not in files:
        raise ValueError(f"unknown sample image {name!r}; known: {', '.join(files)}")
    with cbook.get_sample_data(files[name]) as f:
        rgb = mpimg.imread(f, format=files[name].rsplit(".", 1)[1]).astype(np.float64) / 255.0
    return rgb[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma
