"""Data sets: MNIST from its original files, checked by sha256 and cached.

The cache directory is $DETTMERS_BOOK_DATA, else ~/.cache/dettmers-book. A missing file is
downloaded from the public mirrors; a corrupt or truncated one is fetched again once and never used
as it is. Machines without internet seed the cache from a local copy (`seed_cache`, or
`python -m book data --seed DIR`).
"""
from __future__ import annotations

import errno
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
    """A data file is missing, cannot be fetched, or fails its checksum; or the cache cannot be written."""


def data_dir() -> Path:
    return Path(os.environ.get("DETTMERS_BOOK_DATA") or Path.home() / ".cache" / "dettmers-book")


def _cache_help(folder: Path) -> str:
    return (f"The data cache is {folder} (DETTMERS_BOOK_DATA sets where it lives; the default is "
            f"~/.cache/dettmers-book). Without internet, seed the cache from a folder holding the four "
            f"MNIST files: python -m book data --seed DIR")


def _unwritable(folder: Path, err: OSError) -> DataError:
    """The cache could not be written. The file named is the target: a copy's OSError names its
    source first (`filename`) and the target second (`filename2`), and it is the target's disk that
    is full or read-only, never the source's."""
    where = getattr(err, "filename2", None) or err.filename or folder
    if err.errno == errno.ENOSPC:
        return DataError(f"cannot write the data cache: {where}: no space left on the disk holding it "
                         f"({folder}). Free space there, or point DETTMERS_BOOK_DATA at a folder on "
                         f"another disk and seed it: python -m book data --seed DIR")
    return DataError(f"cannot write the data cache: {where}: {err.strerror or err}. Point DETTMERS_BOOK_DATA "
                     f"at a writable folder, or seed one: python -m book data --seed DIR")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, target: Path, mirrors: tuple[str, ...]) -> None:
    """Fetch `name` into `target` through a temporary file and a rename, so that an interrupted or
    failed download never sits under the real name (nor leaves a temporary file behind)."""
    try:
        tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{name}.", suffix=".part", delete=False)
    except OSError as err:
        raise _unwritable(target.parent, err) from None
    errors = []
    try:
        with tmp:
            for mirror in mirrors:
                tmp.seek(0)
                tmp.truncate()
                try:
                    response = urllib.request.urlopen(mirror + name, timeout=60)
                except OSError as err:
                    errors.append(f"{mirror}: {err}")
                    continue
                with response:
                    try:
                        _copy(response, tmp)
                    except _MirrorFailed as err:
                        errors.append(f"{mirror}: {err}")
                        continue
                break
            else:
                raise DataError(f"could not download {name}:\n  " + "\n  ".join(errors) + "\n" +
                                _cache_help(target.parent.parent))
        os.replace(tmp.name, target)
    except OSError as err:  # writing the cache, not reading a mirror
        raise _unwritable(target.parent, err) from None
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)


def _copy(response, tmp) -> None:
    while True:
        try:
            block = response.read(1 << 20)
        except OSError as err:
            raise _MirrorFailed(str(err)) from None
        if not block:
            return
        tmp.write(block)


class _MirrorFailed(Exception):
    """A read from a mirror failed (told apart from a failed write into the cache)."""


def fetch_mnist_file(name: str, *, root: Path | None = None, download: bool = True,
                     mirrors: tuple[str, ...] | None = None) -> Path:
    """Path of one verified MNIST file in the cache, downloading it when missing. A cached file that
    fails its checksum is removed (it is never used) and fetched again."""
    if name not in MNIST_FILES:
        raise ValueError(f"unknown MNIST file {name!r}; expected one of {sorted(MNIST_FILES)}")
    cache = root or data_dir()
    folder = cache / "mnist"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(folder, err) from None
    path = folder / name
    expected = MNIST_FILES[name]
    if path.exists() and sha256(path) == expected:
        return path
    corrupt = path.exists()
    if corrupt:
        try:
            path.unlink()  # a file that fails its checksum is never used
        except OSError as err:
            raise DataError(f"{path} fails its sha256 check (corrupt or truncated) and cannot be removed "
                            f"({err.strerror or err}). {_cache_help(cache)}") from None
    what = (f"the cached file {path} was corrupt or truncated (it failed its sha256 check) and has been removed"
            if corrupt else f"{path} is missing")
    if not download:
        raise DataError(f"{what}, and downloading is off. {_cache_help(cache)}")
    try:
        _download(name, path, mirrors or MNIST_MIRRORS)
    except DataError as err:
        if corrupt:
            raise DataError(f"{what}; fetching it again failed.\n{err}") from None
        raise
    got = sha256(path)
    if got != expected:
        path.unlink()
        raise DataError(f"{name} from the mirrors has sha256 {got}, expected {expected}; it was not kept. "
                        f"{_cache_help(cache)}")
    return path


def seed_cache(source: str | os.PathLike, *, root: Path | None = None) -> list[Path]:
    """Copy the MNIST files from a local folder into the cache, checking every sum first (and each copy
    through a temporary file, so an interrupted seeding leaves no half file under a real name)."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source} is not a folder")
    for name, expected in MNIST_FILES.items():
        src = source / name
        if not src.exists():
            raise DataError(f"{src} is missing")
        if sha256(src) != expected:
            raise DataError(f"{src} fails its sha256 check")
    copied = []
    for name, expected in MNIST_FILES.items():
        dest = (root or data_dir()) / "mnist" / name
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not (dest.exists() and sha256(dest) == expected):
                tmp = dest.with_name(f".{name}.{os.getpid()}.part")
                try:
                    shutil.copyfile(source / name, tmp)
                    os.replace(tmp, dest)
                finally:
                    tmp.unlink(missing_ok=True)
        except OSError as err:
            raise _unwritable(dest.parent, err) from None
        copied.append(dest)
    return copied


def verify_mnist(*, root: Path | None = None, download: bool = True) -> dict[str, int]:
    """Check (and fetch where missing) every MNIST file, train and test, images and labels, and parse
    them; returns the number of images per split. Raises DataError on anything wrong."""
    return {split: len(load_mnist(split, root=root, download=download)[0]) for split in ("train", "test")}


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
