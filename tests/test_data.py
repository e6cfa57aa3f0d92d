"""book.core.data: checksums, seeding the cache, corrupt files, the IDX parser, MNIST itself."""
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from book.core import data

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not SHARED_MNIST.exists(), reason="../shared/data/mnist is not beside this checkout")


def test_checksums_are_those_of_the_shared_copy():
    if not SHARED_MNIST.exists():
        pytest.skip("no shared copy")
    listed = dict(reversed(line.split()) for line in (SHARED_MNIST / "SHA256SUMS").read_text().splitlines())
    assert listed == data.MNIST_FILES


@needs_mnist
def test_seed_then_load(tmp_path):
    data.seed_cache(SHARED_MNIST, root=tmp_path)
    images, labels = data.load_mnist("test", root=tmp_path, download=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert images.dtype.is_floating_point is False and int(labels.max()) == 9
    assert np.bincount(labels.numpy()).min() > 800  # every digit is there


@needs_mnist
def test_a_truncated_file_is_detected_and_fetched_again(tmp_path):
    data.seed_cache(SHARED_MNIST, root=tmp_path)
    victim = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(data.DataError, match="sha256"):
        data.fetch_mnist_file(victim.name, root=tmp_path, download=False)
    mirror = (SHARED_MNIST.as_uri() + "/",)  # a local 'mirror': the same download code path
    fixed = data.fetch_mnist_file(victim.name, root=tmp_path, mirrors=mirror)
    assert data.sha256(fixed) == data.MNIST_FILES[victim.name]


def test_a_mirror_serving_wrong_bytes_is_refused(tmp_path):
    bad = tmp_path / "mirror"
    bad.mkdir()
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(data.DataError, match="expected"):
        data.fetch_mnist_file("t10k-labels-idx1-ubyte.gz", root=tmp_path / "cache", mirrors=(bad.as_uri() + "/",))
    assert not (tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_unreachable_mirrors_say_how_to_seed(tmp_path):
    with pytest.raises(data.DataError, match="seed the cache"):
        data.fetch_mnist_file("t10k-labels-idx1-ubyte.gz", root=tmp_path, mirrors=((tmp_path / "none").as_uri() + "/",))


def test_seeding_from_a_corrupt_copy_is_refused(tmp_path):
    if not SHARED_MNIST.exists():
        pytest.skip("no shared copy")
    copy = tmp_path / "copy"
    shutil.copytree(SHARED_MNIST, copy)
    (copy / "train-labels-idx1-ubyte.gz").write_bytes(b"junk")
    with pytest.raises(data.DataError, match="sha256"):
        data.seed_cache(copy, root=tmp_path / "cache")


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="unknown MNIST file"):
        data.fetch_mnist_file("cifar.tar.gz")
    with pytest.raises(ValueError, match="unknown sample image"):
        data.sample_image("lena")


def test_idx_parser_checks_its_header(tmp_path):
    good = tmp_path / "good.gz"
    good.write_bytes(gzip.compress(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))))
    assert data.read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 9]) + bytes(3)))
    with pytest.raises(data.DataError, match="promises"):
        data.read_idx(short)


def test_sample_image_is_a_real_photo():
    image = data.sample_image()
    assert image.shape == (600, 512) and 0 <= image.min() and image.max() <= 1 and image.std() > 0.1


def test_a_full_cache_disk_names_the_cache_not_the_source(tmp_path, monkeypatch):
    """shutil's copy names the source first (`filename`) and the full target second (`filename2`)."""
    import errno
    import os

    source = tmp_path / "source"
    source.mkdir()
    for name in data.MNIST_FILES:
        (source / name).write_bytes(b"x" * 100)
    monkeypatch.setattr(data, "MNIST_FILES", {n: data.sha256(source / n) for n in data.MNIST_FILES})

    def full_disk(out_fd, in_fd, offset, count):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", full_disk)
    cache = tmp_path / "cache"
    with pytest.raises(data.DataError) as err:
        data.seed_cache(source, root=cache)
    text = str(err.value)
    assert str(cache / "mnist") in text and "no space left on the disk" in text
    assert str(source) not in text


# The README's Colab offline step. On Colab the package is not installed: the chapter's install cell
# clones the repository into `dettmers-book/` beside the notebook and imports it from there, so a
# shell command (`!python -m book ...`) in the notebook's folder must be told where the clone is.
COLAB_SEED_COMMAND = 'PYTHONPATH="dettmers-book:$PYTHONPATH" python -m book data --seed {source}'


def test_the_command_names_the_folder_the_install_cell_clones_into():
    from book.tools.colab import CLONE_DIR

    assert f'PYTHONPATH="{CLONE_DIR}:' in COLAB_SEED_COMMAND


@pytest.fixture
def colab_folder(tmp_path):
    """/content as Colab has it: the clone beside the notebook, a `python` whose site-packages
    (numpy, torch, ...) do not hold the book (simulated with -S: no .pth, so no editable install)."""
    import os
    import site
    import sys

    content = tmp_path / "content"
    content.mkdir()
    (content / "dettmers-book").symlink_to(Path(__file__).resolve().parents[1])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(site.getsitepackages()),
           "DETTMERS_BOOK_DATA": str(tmp_path / "cache")}
    return content, env


@needs_mnist
def test_the_readme_colab_offline_step_works_from_the_notebooks_folder(colab_folder):
    import subprocess

    content, env = colab_folder
    as_it_was = subprocess.run(["python", "-m", "book", "data", "--seed", str(SHARED_MNIST)], cwd=content, env=env,
                               capture_output=True, text=True, timeout=300)
    assert as_it_was.returncode == 1 and "No module named book" in as_it_was.stderr   # the case
    done = subprocess.run(["bash", "-c", COLAB_SEED_COMMAND.format(source=SHARED_MNIST)], cwd=content, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "MNIST ready in" in done.stdout and "60000 training and 10000 test images" in done.stdout
