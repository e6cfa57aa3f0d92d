"""Failure semantics (issue 12): an interrupted, killed or misconfigured run never publishes, loses or
leaves anything wrong. Tiny stand-in notebooks in a temporary notebooks/ and _build/; each kernel
start takes a second or two."""
import errno
import gzip
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

import book
import book.tools.paths
from book.core import registry as chapters
from book.core import data
from book.core import evidence
from book.tools import execute, paths, runner, signals, site
from book.tools.locks import build_lock
from book.core import session
from book.tools.cli import main
from book.core.registry import REPO_ROOT

OK_BODY = """
import book
S = book.start("conv", quick=QUICK, device=DEVICE, seed=SEED)
for cid in S.ledger.missing():
    S.ledger.check(cid, post=3, measured=3, fails_if="never")
S.ledger.finish()
"""


def _notebook(*bodies: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('QUICK = True\nDEVICE = "auto"\nSEED = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# stand-in"), params] + [nbformat.v4.new_code_cell(b) for b in bodies]
    return nb


def _sandbox_paths(root: Path) -> dict:
    build = root / "_build"
    return {"NOTEBOOK_DIR": root / "notebooks", "BUILD_DIR": build, "EXECUTED_DIR": build / "executed",
            "LEDGER_DIR": build / "ledgers", "FAILED_DIR": build / "failed", "LOCK_DIR": build / ".locks",
            "SITE_DIR": build / "site", "RESULTS_DIR": root / "results"}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """The registry, the runner and the evidence store pointed at a temporary tree."""
    paths = _sandbox_paths(tmp_path)
    paths["NOTEBOOK_DIR"].mkdir()
    monkeypatch.setattr(chapters, "NOTEBOOK_DIR", paths["NOTEBOOK_DIR"])
    for name in ("BUILD_DIR", "EXECUTED_DIR", "LEDGER_DIR", "FAILED_DIR", "LOCK_DIR", "SITE_DIR"):
        monkeypatch.setattr(book.tools.paths, name, paths[name])
    monkeypatch.setattr(evidence, "RESULTS_DIR", paths["RESULTS_DIR"])
    monkeypatch.setenv("BOOK_LEDGER_DIR", str(paths["LEDGER_DIR"]))
    monkeypatch.setenv("BOOK_RUN_COMMAND", "test")
    nbformat.write(_notebook(OK_BODY), paths["NOTEBOOK_DIR"] / "conv.ipynb")
    return tmp_path


def _write(sandbox: Path, name: str, *bodies: str) -> Path:
    path = sandbox / "notebooks" / f"{name}.ipynb"
    nbformat.write(_notebook(*bodies), path)
    return path


def _no_partial_files(sandbox: Path) -> bool:
    return not [p for p in sandbox.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


# -- 1. stale or partial executed copies ---------------------------------------------------------
def test_a_failed_run_removes_the_last_good_copy_and_keeps_its_own_in_failed(sandbox, capsys):
    assert main(["run", "conv", "--no-progress"]) == 0
    executed, ledger = paths.EXECUTED_DIR / "conv.ipynb", paths.LEDGER_DIR / "conv.json"
    assert executed.exists() and ledger.exists()
    _write(sandbox, "conv", OK_BODY, "raise RuntimeError('broke after the ledger')")
    assert main(["run", "conv", "--no-progress"]) == 1
    assert "broke after the ledger" in capsys.readouterr().out
    assert not executed.exists() and not ledger.exists(), "nothing of a failed run looks current"
    failed = nbformat.read(paths.FAILED_DIR / "conv.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in failed.cells for o in c.get("outputs", []))
    assert (paths.FAILED_DIR / "conv.json").exists()
    assert _no_partial_files(sandbox)
    # a build never shows what did not succeed in it: the committed notebook is the page
    assert site.page_source(chapters.CHAPTERS["conv"], executed=["conv"]) == sandbox / "notebooks" / "conv.ipynb"


def test_a_build_stages_fresh_copies_only(sandbox, monkeypatch):
    """A previous build's executed copy is never staged, and every staged notebook gets a new mtime:
    Sphinx keeps a page whose source looks older than its last read (which once showed the last
    build's run in a later --no-execute build)."""
    conv = chapters.CHAPTERS["conv"]
    paths.EXECUTED_DIR.mkdir(parents=True)
    nbformat.write(_notebook("print('an earlier build')"), paths.EXECUTED_DIR / "conv.ipynb")
    os.utime(sandbox / "notebooks" / "conv.ipynb", (1_000_000, 1_000_000))
    before = time.time() - 1
    staged_site, sources = site.stage_site(executed=[])
    staged = staged_site / "notebooks" / "conv.ipynb"
    assert sources["conv"] == conv.notebook and staged.read_bytes() == conv.notebook.read_bytes()
    assert staged.stat().st_mtime >= before


# -- 1 and 4: Ctrl-C, for real, in a subprocess ---------------------------------------------------
DRIVER = """
import sys
from pathlib import Path
from book.core import registry as chapters
from book.core import evidence
from book.tools import paths
from book.tools.cli import main
root = Path(sys.argv[1])
build = root / "_build"
chapters.NOTEBOOK_DIR = root / "notebooks"
paths.BUILD_DIR, paths.EXECUTED_DIR, paths.LEDGER_DIR = build, build / "executed", build / "ledgers"
paths.FAILED_DIR, paths.LOCK_DIR, paths.SITE_DIR = build / "failed", build / ".locks", build / "site"
evidence.RESULTS_DIR = root / "results"
sys.exit(main(sys.argv[2:]))
"""

SLOW_BODY = """
import os, pathlib, time
pathlib.Path(os.environ["PID_FILE"] + ".new").write_text(str(os.getpid()))
os.replace(os.environ["PID_FILE"] + ".new", os.environ["PID_FILE"])
time.sleep(120)
"""


def _interrupt_a_run(sandbox: Path, args: list[str], sig=signal.SIGINT) -> tuple[subprocess.CompletedProcess, int]:
    """Run `python -m book ARGS` on the sandbox, send `sig` once the slow cell runs, return what it printed
    and the kernel's pid."""
    driver = sandbox / "driver.py"
    driver.write_text(DRIVER)
    pid_file = sandbox / "kernel.pid"
    env = dict(os.environ, PID_FILE=str(pid_file))
    proc = subprocess.Popen([sys.executable, str(driver), str(sandbox), *args, "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert pid_file.exists(), proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), int(pid_file.read_text())


def _gone(pid: int, within: float = 15) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_prints_a_summary_exits_130_and_publishes_nothing(sandbox):
    _write(sandbox, "brain", SLOW_BODY)
    paths.EXECUTED_DIR.mkdir(parents=True)
    stale = paths.EXECUTED_DIR / "brain.ipynb"
    nbformat.write(_notebook("print('last week')"), stale)   # an earlier run's copy
    done, kernel = _interrupt_a_run(sandbox, ["run", "conv", "brain"])
    assert done.returncode == 130, done
    assert "Traceback" not in done.stderr + done.stdout
    assert "interrupted" in done.stdout and re.search(r"conv\s+ok", done.stdout)
    assert re.search(r"brain\s+STOPPED", done.stdout)
    assert not stale.exists(), "an interrupted chapter leaves no executed copy, not even an old one"
    assert (paths.EXECUTED_DIR / "conv.ipynb").exists()
    assert (paths.FAILED_DIR / "brain.ipynb").exists()
    assert _no_partial_files(sandbox)
    assert _gone(kernel), "the kernel outlived the interrupted run"


def test_ctrl_c_during_inplace_leaves_the_notebook_as_it_was(sandbox):
    source = _write(sandbox, "brain", "print('before')", SLOW_BODY)
    committed = source.read_bytes()
    done, kernel = _interrupt_a_run(sandbox, ["run", "brain", "--inplace"])
    assert done.returncode == 130 and "interrupted" in done.stdout and "untouched" in done.stdout
    assert source.read_bytes() == committed
    assert _no_partial_files(sandbox) and _gone(kernel)


def test_sigterm_cleans_up_like_ctrl_c(sandbox):
    _write(sandbox, "brain", SLOW_BODY)
    done, kernel = _interrupt_a_run(sandbox, ["run", "brain"], sig=signal.SIGTERM)
    assert done.returncode == 143 and "terminated" in done.stdout
    assert not (paths.EXECUTED_DIR / "brain.ipynb").exists() and (paths.FAILED_DIR / "brain.ipynb").exists()
    assert _gone(kernel)


# -- 2. --inplace writes back only a complete, successful run --------------------------------------
def test_inplace_never_writes_a_failed_run_back(sandbox, capsys):
    source = _write(sandbox, "brain", "print('fine')", "raise ValueError('half way')")
    committed = source.read_bytes()
    assert main(["run", "brain", "--inplace", "--no-progress"]) == 1
    assert source.read_bytes() == committed
    assert "half way" in nbformat.read(paths.FAILED_DIR / "brain.ipynb", as_version=4).cells[-1].outputs[0]["evalue"]


def test_inplace_on_a_full_disk_leaves_the_notebook_whole(sandbox, monkeypatch, capsys):
    source = sandbox / "notebooks" / "conv.ipynb"
    committed = source.read_bytes()
    real_write = nbformat.write

    def write(nb, path, *args, **kwargs):
        if str(path).endswith(".tmp"):   # the copy that would replace the notebook: half written, then full
            Path(path).write_text("{\"cells\": [")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(nb, path, *args, **kwargs)

    monkeypatch.setattr(nbformat, "write", write)
    assert main(["run", "conv", "--inplace", "--no-progress"]) == 1
    assert "no space left" in capsys.readouterr().out
    assert source.read_bytes() == committed and _no_partial_files(sandbox)


def test_inplace_keeps_an_edit_made_while_it_ran(sandbox, capsys):
    """The user saved the notebook in Jupyter while the refresh ran: their edit wins."""
    source = _write(sandbox, "brain", "open('brain.ipynb', 'a').write('\\n')  # the user's save")
    assert main(["run", "brain", "--inplace", "--no-progress"]) == 1
    assert "changed while it ran" in capsys.readouterr().out
    edited = source.read_bytes()
    assert edited.endswith(b"\n\n") and b'"outputs": []' in edited


# -- 4. sentences, not tracebacks ------------------------------------------------------------------
def _fake_outcome(chapter, parameters, **kwargs):
    paths.EXECUTED_DIR.mkdir(parents=True, exist_ok=True)
    (paths.EXECUTED_DIR / f"{chapter.name}.ipynb").write_text("{}")
    if chapter.name != "conv":
        raise KeyboardInterrupt
    return execute.Outcome(chapter.name, True, 1.0, {"reproduced": 12})


def test_interrupted_summary_says_what_ran_and_what_did_not(sandbox, monkeypatch, capsys):
    for name in ("brain", "sparse"):
        _write(sandbox, name, "pass")
    monkeypatch.setattr(execute, "execute_chapter", _fake_outcome)
    assert main(["run", "--no-progress"]) == 130
    out = capsys.readouterr().out
    assert out.startswith("interrupted") and "12 reproduced" in out
    assert re.search(r"brain\s+STOPPED", out) and "not run: sparse" in out


def test_interrupted_evidence_run_leaves_results_untouched(sandbox, monkeypatch, capsys):
    _write(sandbox, "brain", "pass")
    results = sandbox / "results" / "conv"
    results.mkdir(parents=True)
    (results / "ledger.json").write_text('{"old": true}')
    monkeypatch.setattr(execute, "execute_chapter", _fake_outcome)
    assert main(["evidence", "conv", "brain", "--no-progress"]) == 130
    assert [p.name for p in results.iterdir()] == ["ledger.json"]
    assert (results / "ledger.json").read_text() == '{"old": true}'


def test_an_interrupt_is_held_until_a_rename_pair_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals.interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("both renames")
    assert done == ["both renames"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_unwritable_build_is_one_line_naming_the_path(sandbox, capsys):
    (sandbox / "_build").write_text("not a folder")      # works as root too, unlike chmod
    assert main(["run", "conv", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(sandbox / "_build") in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_build_is_one_line_naming_the_path(sandbox, capsys):
    build = sandbox / "_build"
    build.mkdir()
    build.chmod(0o500)
    try:
        assert main(["run", "conv", "--no-progress"]) == 2
    finally:
        build.chmod(0o700)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(build) in err


def test_a_second_run_of_the_same_chapter_is_refused(sandbox, capsys):
    """Two commands running one chapter would clobber each other's executed copy and ledger; the
    second is refused at once. Other chapters (and a killed holder's lock) are not blocked."""
    paths.LOCK_DIR.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(paths.LOCK_DIR / "conv.lock")!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"pid 4242: python -m book run conv --full")
        print("locked", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", "conv", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "chapter 'conv' is in use by another" in err and "python -m book run conv --full" in err
        assert not paths.EXECUTED_DIR.exists()
        with build_lock(["brain", "book"]):   # other chapters, and the book, are free
            pass
    finally:
        holder.kill()
        holder.wait()
    with build_lock(["conv"]):   # released with its holder: no stale lock
        with build_lock(["conv", "book"]):   # and reentrant in one process (build = run + render)
            pass


def test_missing_extras_are_refused_before_the_run_and_in_the_notebook(sandbox, monkeypatch, capsys):
    _write(sandbox, "int8", "import book\nbook.start('int8', quick=QUICK, device=DEVICE, seed=SEED)")
    monkeypatch.setitem(session.EXTRA_MODULES, "int8", ("json", "no_such_module_for_the_test"))
    assert main(["run", "int8", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "dettmers-book[int8]"' in err and "no_such_module_for_the_test" in err
    assert not paths.EXECUTED_DIR.exists(), "refused before any kernel started"
    assert main(["run", "--no-progress"]) == 2      # all chapters: says how to run the others
    assert "python -m book run conv" in capsys.readouterr().err
    with pytest.raises(ImportError, match=r'dettmers-book\[int8\]'):
        book.start("int8", quick=True, device="cpu", seed=0)
    book.start("conv", quick=True, device="cpu", seed=0)   # chapters without extras are unaffected


def test_the_extras_map_matches_pyproject():
    import tomllib

    groups = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for chapter in chapters.CHAPTERS.values():
        for extra in chapter.extras:
            wanted = {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].replace("-", "_").lower() for r in groups[extra]}
            assert set(session.EXTRA_MODULES[extra]) == wanted


# -- 5. the data cache -----------------------------------------------------------------------------
@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Four tiny IDX files standing in for MNIST (their sums replace the real ones), a cache and no
    reachable mirror."""
    source = tmp_path / "source"
    source.mkdir()
    sums = {}
    for name in data.MNIST_FILES:
        n = 6 if name.startswith("train") else 2
        if "images" in name:
            raw = bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(n * 784)
        else:
            raw = bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(range(n))
        (source / name).write_bytes(gzip.compress(raw, mtime=0))
        sums[name] = data.sha256(source / name)
    monkeypatch.setattr(data, "MNIST_FILES", sums)
    monkeypatch.setattr(data, "MNIST_MIRRORS", ((tmp_path / "no-mirror").as_uri() + "/",))
    cache = tmp_path / "cache"
    monkeypatch.setenv("DETTMERS_BOOK_DATA", str(cache))
    return source, cache


def test_data_command_verifies_both_splits(fake_mnist, capsys):
    source, cache = fake_mnist
    assert main(["data", "--seed", str(source)]) == 0
    assert "6 training and 2 test images" in capsys.readouterr().out
    victim = cache / "mnist" / "t10k-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-10])    # the test split, which was never checked
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert "was corrupt" in err and "removed" in err and str(victim) in err
    assert str(cache) in err and "DETTMERS_BOOK_DATA" in err and "python -m book data --seed DIR" in err
    assert not victim.exists()
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(set(data.MNIST_FILES) - {victim.name}), \
        "a failed download leaves no temporary file"
    assert main(["data", "--seed", str(source)]) == 0     # the way out the message names


def test_an_unwritable_data_cache_is_one_line(fake_mnist, monkeypatch, capsys):
    source, cache = fake_mnist
    cache.write_text("not a folder")
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the data cache" in err and str(cache) in err
    assert main(["data", "--seed", str(source)]) == 2


# -- 6. parameters that cannot work ----------------------------------------------------------------
@pytest.mark.parametrize("name,value,says", [
    ("SEED", "-1", "SEED=-1"), ("SEED", str(2**32), "SEED=4294967296"),
    ("DEVICE", "meta", "DEVICE='meta'"), ("DEVICE", "cuda:7", "DEVICE='cuda:7'"), ("DEVICE", "mps", "DEVICE='mps'"),
])
def test_impossible_parameters_are_refused_before_a_kernel_starts(sandbox, capsys, name, value, says):
    import torch

    if value == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has mps")
    if value == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    assert main(["run", "conv", "-p", name, value, "--no-progress"]) == 2
    assert says in capsys.readouterr().err
    assert not paths.EXECUTED_DIR.exists()


def test_session_refuses_them_too():
    with pytest.raises(ValueError, match="SEED=4294967296"):
        book.start("conv", quick=True, device="cpu", seed=2**32)
    with pytest.raises(ValueError, match="SEED=-3"):
        book.start("conv", quick=True, device="cpu", seed=-3)
    with pytest.raises(ValueError, match="not one a chapter computes on"):
        book.start("conv", quick=True, device="meta", seed=0)
    book.start("conv", quick=True, device="cpu", seed=2**32 - 1)


# -- 7. the nbval sanitizer ------------------------------------------------------------------------
def _patterns() -> dict:
    from nbval.plugin import get_sanitize_patterns

    return dict(get_sanitize_patterns((REPO_ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8")))


def test_the_site_packages_pattern_is_linear_and_masks_what_it_did():
    patterns = _patterns()
    assert patterns["⟨[^⟩\\n]*⟩"] == "⟨volatile⟩"      # the ledger's own mask stays
    regex = next(r for r in patterns if "site-packages" in r)

    def sanitize(text):
        return re.sub(regex, patterns[regex], text)

    start = time.perf_counter()
    for text in ("/a" * 5000, "a/" * 5000, "/" * 10_000, "/" + "a/" * 5000 + "site-packages/x.py"):
        sanitize(text)
    assert time.perf_counter() - start < 1.0   # the old (/[^...]+)+ took ~2 s at 44 characters, x4 per 2 more
    old = r"""(/[^\s:'"]+)+/site-packages/"""
    for text in ["x '/home/u/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning",
                 "\x1b[0;32m/home/u/.venv/lib/site-packages/a.py\x1b[0m", "(/a/b/site-packages/c) and /d/site-packages/e",
                 "foo/usr/lib/site-packages/x", "/a/site-packages/b/site-packages/c", "a:/x/y/site-packages/z", "/a/b/c"]:
        assert sanitize(text) == re.sub(old, "<site-packages>/", text)
    assert sanitize("File /opt/py/lib/python3.11/site-packages/torch/x.py") == "File <site-packages>/torch/x.py"


# -- cases nobody listed ---------------------------------------------------------------------------
def test_a_kernel_that_dies_fails_its_chapter_and_the_next_still_runs(sandbox, capsys):
    _write(sandbox, "brain", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # the OOM killer")
    assert main(["run", "brain", "conv", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "kernel died" in out and re.search(r"conv\s+ok", out)
    assert not (paths.EXECUTED_DIR / "brain.ipynb").exists() and (paths.FAILED_DIR / "brain.ipynb").exists()


def test_a_notebook_deleted_before_its_turn_fails_that_chapter_only(sandbox, monkeypatch, capsys):
    _write(sandbox, "brain", "pass")
    real = execute.execute_chapter

    def delete_then_run(chapter, parameters, **kwargs):
        (sandbox / "notebooks" / "conv.ipynb").unlink(missing_ok=True)   # deleted while brain... ran first
        return real(chapter, parameters, **kwargs)

    monkeypatch.setattr(execute, "execute_chapter", delete_then_run)
    assert main(["run", "conv", "--no-progress"]) == 1
    assert "was removed before it could run" in capsys.readouterr().out


def test_a_relative_data_cache_means_the_same_folder_inside_the_kernel(sandbox, monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("DETTMERS_BOOK_DATA", "my-cache")
    _write(sandbox, "brain", "import book.core.data\nprint('CACHE=' + str(book.core.data.data_dir().resolve()))")
    assert main(["run", "brain", "--no-progress"]) == 0
    nb = nbformat.read(paths.EXECUTED_DIR / "brain.ipynb", as_version=4)
    assert f"CACHE={elsewhere / 'my-cache'}" in nb.cells[-1].outputs[0]["text"]


# -- issue 20: messages that name the real cause and the file ----------------------------------------
def test_a_full_build_names_the_file_in_build_not_the_page_it_copies(sandbox, monkeypatch, capsys):
    """Staging copies each page into _build/site; a full disk there was reported against the source
    (results/conv/conv.ipynb), since a copy's OSError names its source first."""
    real_sendfile = os.sendfile

    def sendfile(out_fd, in_fd, offset, count):
        if os.readlink(f"/proc/self/fd/{out_fd}").endswith(".ipynb"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", sendfile)
    assert main(["build", "--no-execute"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the disk" in err
    assert f"cannot write {paths.SITE_DIR / 'notebooks' / 'conv.ipynb'}" in err
    assert f"{sandbox / 'notebooks' / 'conv.ipynb'}:" not in err


def test_a_full_disk_from_any_copy_names_the_target():
    from book.tools.cli import _os_error

    err = OSError(errno.ENOSPC, "No space left on device")
    err.filename, err.filename2 = "results/conv/conv.ipynb", "_build/site/notebooks/conv.ipynb"
    assert _os_error(err) == "_build/site/notebooks/conv.ipynb: no space left on the disk"


POOL_SCRIPT = """
import sys
import book
from book.chapters.parallel import pool

if __name__ == "__main__":
    try:
        with pool.Pool(2) as p:
            print("started", flush=True)
            if sys.argv[1] == "crash":
                p.run(pool.crash_on_rank, 1, "the worker's own error")
            else:
                p.run(pool.busy_for, 60)
    except pool.WorkerFailed as err:
        print("error:", str(err).splitlines()[0], file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
"""


@pytest.mark.parametrize("case", ["crash", "ctrl-c while starting", "ctrl-c while computing"])
def test_a_failed_pool_prints_one_error_not_its_workers_tracebacks(tmp_path, case):
    """Ctrl-C reaches the whole process group (a terminal's, or Jupyter's interrupt): each worker used
    to print its KeyboardInterrupt traceback, and a crashed worker its traceback a second time."""
    script = tmp_path / "pool_case.py"
    script.write_text(POOL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), "crash" if case == "crash" else "busy"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "started"
    if case != "crash":
        time.sleep(0.3 if "starting" in case else 8)
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert ("worker 1 of 2 raised in crash_on_rank" in lines[0]) if case == "crash" else lines[0] == "interrupted"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    deadline = time.time() + 10   # multiprocessing's resource tracker ends once its pipe closes
    while time.time() < deadline:
        leftover = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not leftover:
            break
        time.sleep(0.2)
    assert not leftover, f"processes of the pool outlived it: {leftover}"
