"""Resumable full-mode sweeps: `python -m book.chapters.sparse`.

Each run of a sweep trains one configuration with `training.train(..., checkpoint=...)`: its whole
state is saved after every epoch, atomically, so a killed run resumes after its last finished epoch
and ends with the bits it would have had uninterrupted. A finished run becomes one row of the sweep's
work file (`_build/sparse_full/<plan>.json`), with its provenance: the commit and digest of the
training code, torch's version, the numerics profile's status (`book.core.numerics.status()`), the
device and the wall time. A sweep skips the runs its work file already holds, so the command that
started it also continues it; two processes may share a work file (a lock guards it, and a run that
another process is training is left to it).

The plans (`training.FULL_PLAN`, the specialization study) publish their rows to the committed
evidence `results/sparse/<plan>.json` as they finish (`publish`), with a description that says which
runs stand behind the file, which are still missing, and the command that continues the sweep:

    python -m book.chapters.sparse --plan lenet300:0,1 ablation specialization lenet300 lenet5
    python -m book.chapters.sparse --publish lenet300
    python -m book.chapters.sparse --model lenet300 --epochs 3 --densities 0.1 --out runs.json
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from book.chapters.sparse import algorithm, conv1, fused_sgd, native, pooling, training
from book.chapters.sparse.training import (ABLATIONS, FULL_PLAN, MODELS, SPECIALIZATION_PLAN, MnistData, RunConfig,
                                           train)
from book.core import evidence, numerics, provenance
from book.core.registry import REPO_ROOT

WORK_DIR = REPO_ROOT / "_build" / "sparse_full"
KEY_FIELDS = ("model", "density", "seed", "epochs", "growth", "redistribution", "train_subset", "test_subset")
PLANS = (*FULL_PLAN, "specialization")
# The training code whose bits a row stands for: a checkpoint made by other code is not resumed. The
# compiled kernels are part of it (they are written to give torch's bits, but the digest does not assume it).
CODE_FILES = (Path(algorithm.__file__), Path(training.__file__), Path(native.__file__), Path(conv1.__file__),
              Path(pooling.__file__), Path(fused_sgd.__file__),
              *(native.source(m.NAME) for m in (conv1, pooling, fused_sgd)))
CODE_DIGEST = hashlib.sha256(b"".join(p.read_bytes() for p in CODE_FILES)).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Rows, work files and provenance
# ----------------------------------------------------------------------------------------------
def run_key(row: dict[str, Any] | RunConfig) -> tuple:
    """What identifies a run: the configuration fields a sweep varies (a row or a RunConfig)."""
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    defaults = RunConfig()
    return tuple(float(get(k)) if k == "density" else get(k, getattr(defaults, k)) for k in KEY_FIELDS)


def slug(cfg: RunConfig) -> str:
    subset = f"_n{cfg.train_subset}" if cfg.train_subset else ""
    return (f"{cfg.model}_d{cfg.density:g}_s{cfg.seed}_e{cfg.epochs}_{cfg.growth}_{cfg.redistribution}"
            f"{subset}")


def read_rows(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock on `path` (a lock file); yields False when `blocking` is off and another
    process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_json_atomic(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def add_row(path: Path, row: dict[str, Any]) -> None:
    """Append a finished run's row to the work file `path` (under its lock; a row of the same run
    already there is replaced)."""
    path = Path(path)
    with _locked(path.with_name(path.name + ".lock")):
        rows = [r for r in read_rows(path) if run_key(r) != run_key(row)]
        _write_json_atomic(path, {"runs": rows + [row]})


def process_provenance(device: str) -> dict[str, Any]:
    """What a row made in this process records about where it came from (taken at start)."""
    commit = provenance.git_commit()
    changed = []
    with contextlib.suppress(Exception):
        import subprocess

        changed = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no",
                                  "--", *map(str, CODE_FILES)], capture_output=True, text=True,
                                 timeout=10).stdout.split("\n")
    return {"commit": commit["commit"], "training_code_digest": CODE_DIGEST,
            "training_code_uncommitted": any(line.strip() for line in changed),
            "torch": torch.__version__, "numerics": numerics.status(), "device": str(device),
            "device_name": provenance.device_name(device)}


# ----------------------------------------------------------------------------------------------
# Running a sweep
# ----------------------------------------------------------------------------------------------
def configs(model: str, densities, seeds, epochs: int, **fixed: Any) -> list[RunConfig]:
    """The runs of one sweep, seed by seed (each seed's densities in the order given)."""
    return [RunConfig(model=model, density=float(d), epochs=epochs, seed=s, **fixed) for s in seeds for d in densities]


def run_one(cfg: RunConfig, data: MnistData, out: Path, checkpoints: Path, *, device: str = "cpu",
            log=print, origin: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Train `cfg` (resuming its checkpoint if there is one) and add its row to `out`. Returns the
    row, or None when the run is already in `out` or another process is training it."""
    if any(run_key(r) == run_key(cfg) for r in read_rows(out)):
        log(f"{slug(cfg)}: already finished in {out}, skipped")
        return None
    ckpt = checkpoints / f"{slug(cfg)}.pt"
    side = ckpt.with_suffix(".json")    # which code made the checkpoint, and each start of the run
    with _locked(ckpt.with_suffix(".lock"), blocking=False) as mine:
        if not mine:
            log(f"{slug(cfg)}: being trained by another process, skipped")
            return None
        if any(run_key(r) == run_key(cfg) for r in read_rows(out)):   # finished while we waited
            return None
        origin = origin or process_provenance(device)
        starts = []
        meta = json.loads(side.read_text()) if ckpt.exists() and side.exists() else {}
        if ckpt.exists() and meta.get("training_code_digest") != CODE_DIGEST:
            # resumed, the run would not have the bits of one run of either code: start it again
            os.replace(ckpt, ckpt.with_suffix(".stale.pt"))
            log(f"{slug(cfg)}: checkpoint made by other training code (digest {meta.get('training_code_digest')}, "
                f"this code {CODE_DIGEST}) moved to {ckpt.with_suffix('.stale.pt').name}; starting the run again")
        if ckpt.exists():
            starts = meta["starts"]
            done = torch.load(ckpt, map_location="cpu", weights_only=False)["epochs_done"]
            log(f"{slug(cfg)}: resuming after epoch {done} from {ckpt}")
        else:
            done = 0
        starts.append({"after_epoch": done, "commit": origin["commit"],
                       "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        _write_json_atomic(side, {"training_code_digest": CODE_DIGEST, "starts": starts})
        wall = time.perf_counter()

        def progress(epoch: int, seconds: float) -> None:
            if (epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs or epoch == done:
                log(f"{slug(cfg)}: epoch {epoch + 1}/{cfg.epochs} ({seconds:.1f} s)")

        run = train(cfg, data, device=device, progress=progress, checkpoint=ckpt)
        row = {"model": cfg.model, "density": cfg.density, "seed": cfg.seed, "epochs": cfg.epochs,
               "growth": cfg.growth, "redistribution": cfg.redistribution, "train_subset": cfg.train_subset,
               "test_subset": cfg.test_subset, "test_error": run.test_error,
               "final_layer_density": run.sparse.layer_densities(),
               "train_seconds": round(sum(run.epoch_seconds), 1),
               "provenance": {**origin, "wall_s": round(time.perf_counter() - wall, 1),
                              "train_seconds": round(sum(run.epoch_seconds), 1), "starts": starts}}
        if cfg.model == "lenet5":   # the trained net's class specialization (sparse-6 at the sweep's budget)
            from book.chapters.sparse.analysis import specialization_summary

            n = cfg.test_subset or len(data.x_test)
            row["specialization"] = specialization_summary(run.model, data.x_test[:n], data.y_test[:n])
        add_row(out, row)
        os.replace(ckpt, ckpt.with_suffix(".final.pt"))   # the trained net, kept for later scoring
        side.unlink(missing_ok=True)
        log(f"{slug(cfg)}: test error {run.test_error:.4f} ({row['train_seconds']} s of training)")
        return row


def run_sweep(cfgs: list[RunConfig], out: Path, *, checkpoints: Path | None = None, device: str = "cpu",
              data: MnistData | None = None, log=print, after_each=None) -> list[dict[str, Any]]:
    out = Path(out)
    checkpoints = Path(checkpoints) if checkpoints is not None else out.with_name(out.stem + "_checkpoints")
    data = data if data is not None else MnistData.load(device)
    origin = process_provenance(device)
    rows = []
    for cfg in cfgs:
        row = run_one(cfg, data, out, checkpoints, device=device, log=log, origin=origin)
        if row is not None:
            rows.append(row)
            if after_each is not None:
                after_each()
    return rows


# ----------------------------------------------------------------------------------------------
# The plans behind the committed evidence, and publishing them
# ----------------------------------------------------------------------------------------------
# Runs added to a plan because some of its runs diverged (sparse-13): LeNet-5-Caffe's seed 0 ended at
# chance at 5 % and at 10 %, so the claims about trained nets (sparse-3, sparse-6) had one seed
# there. Seed 2 is trained at those densities and, to pair it, dense. At 1 % both seeds 0 and 1
# diverged, so sparse-3 had no trained run there: seeds 2 and 3 are trained at 1 %. The diverged
# runs stay in the evidence: sparse-13 reads them. Kept here, not in `training.FULL_PLAN`, so the
# training code's digest (and every checkpoint made under it) stays valid.
REPLACEMENT_RUNS: dict[str, list[dict[str, Any]]] = {
    "lenet5": [dict(model="lenet5", densities=[1.0, 0.1, 0.05], seeds=[2], epochs=100),
               dict(model="lenet5", densities=[0.01], seeds=[2, 3], epochs=100)],
}


def _spec_configs(spec: dict[str, Any]) -> list[RunConfig]:
    fixed = {k: spec[k] for k in ("growth", "redistribution") if k in spec}
    return [c for d in spec["densities"] for c in configs(spec["model"], [d], spec["seeds"], spec["epochs"], **fixed)]


def plan_configs(name: str) -> list[RunConfig]:
    """The runs of a plan, density by density (all seeds of a density, then the next: the verdicts
    want both seeds of a density before a third density); a replacement seed (REPLACEMENT_RUNS)
    comes with the other seeds of its density."""
    if name == "specialization":
        p = SPECIALIZATION_PLAN
        return [c for d in p["densities"] for c in configs("lenet5", [d], p["seeds"], p["epochs"])]
    found = [c for spec in FULL_PLAN[name] for c in _spec_configs(spec)]
    extra = [c for spec in REPLACEMENT_RUNS.get(name, ()) for c in _spec_configs(spec)]
    if extra:
        order = list(dict.fromkeys(float(c.density) for c in found))
        unknown = sorted({c.density for c in extra} - set(order))
        if unknown:
            raise ValueError(f"replacement runs of plan {name!r} at densities {unknown} the plan does not sweep")
        found = sorted(found + extra, key=lambda c: order.index(float(c.density)))   # stable: seeds in order
    return found


def work_file(name: str, work_dir: Path = WORK_DIR) -> Path:
    return Path(work_dir) / f"{name}.json"


def continue_command(name: str) -> str:
    return f"python -m book.chapters.sparse --plan {name}"


def _describe_replacements(name: str) -> str:
    return "; ".join(f"seeds {spec['seeds']} at densities {', '.join(f'{d:g}' for d in spec['densities'])}"
                     for spec in REPLACEMENT_RUNS.get(name, ())) + (
        ", in place of diverged runs" if name == "lenet5" else "")


def _describe(name: str, rows: list[dict[str, Any]], missing: list[RunConfig]) -> str:
    groups: dict[tuple, list[int]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["growth"], r["redistribution"], r["epochs"], r["density"]), []).append(r["seed"])
    parts = [f"{m} {g}/{rd} growth/redistribution, {e} epochs, density {d:g}: seeds {sorted(s)}"
             for (m, g, rd, e, d), s in sorted(groups.items(), key=lambda kv: (kv[0][:4], -kv[0][4]))]
    intro = training.specialization_description() + ". " if name == "specialization" else ""
    text = intro + (f"{name}: runs of the plan `book.chapters.sparse.training` "
            f"{'SPECIALIZATION_PLAN' if name == 'specialization' else f'FULL_PLAN[{name!r}]'}"
            + (f" (with `book.chapters.sparse.sweeps` REPLACEMENT_RUNS[{name!r}]: "
               f"{_describe_replacements(name)})" if REPLACEMENT_RUNS.get(name) else "")
            + f", the paper's MNIST "
            f"setup on all 60,000 training images, made by `python -m book.chapters.sparse` under the numerics "
            f"profile (each row's provenance says which commit, code digest, torch, profile status, device and "
            f"wall time); finished: " + "; ".join(parts))
    if missing:
        text += (f". Not finished yet ({len(missing)} of {len(missing) + len(rows)} planned runs): "
                 + ", ".join(f"density {c.density:g} seed {c.seed}"
                             + (f" ({c.growth}/{c.redistribution})" if name == "ablation" else "")
                             for c in missing)
                 + f"; continue with: {continue_command(name)}")
    return text


# A plan's file is replaced once every density (and variant) of it has this many seeds finished: the
# chapter's paired comparisons need matching seeds. LeNet-5-Caffe's runs are published as they land
# (the chapter says how many runs stand behind each of its rows) once the densities its verdicts
# compare (dense and 5 %) have a run each.
PUBLISH_MIN_SEEDS = {"lenet300": 2, "ablation": 5, "specialization": 3, "lenet5": 0}
PUBLISH_NEEDS_DENSITIES = {"lenet5": (1.0, 0.05)}


def committed_rows(name: str) -> list[dict[str, Any]]:
    """The finished runs of plan `name` in its committed evidence (results/sparse/<name>.json)."""
    if not evidence.exists("sparse", name):
        return []
    data = evidence.load("sparse", name).data
    return list(data.get("rows" if name == "specialization" else "runs", []))


def adopt_committed(name: str, work_dir: Path = WORK_DIR) -> int:
    """Add the committed runs of plan `name` to its work file where the work file lacks them; returns
    how many it added. The work file lives in the ignored `_build/`, so on a fresh clone it is empty:
    without this the continue command would train the committed runs again, and its first publish
    would replace the committed evidence with the few runs made since."""
    out = work_file(name, work_dir)
    with _locked(out.with_name(out.name + ".lock")):
        have = read_rows(out)
        keys = {run_key(r) for r in have}
        new = [r for r in committed_rows(name) if run_key(r) not in keys]
        if new:
            _write_json_atomic(out, {"runs": new + have})
    return len(new)


def publish(name: str, work_dir: Path = WORK_DIR, *, force: bool = False) -> Path | None:
    """Store the finished runs of plan `name` as results/sparse/<name>.json (replacing what the file
    held, though never dropping a committed run: those are adopted into the work file first), with
    provenance, once every density has PUBLISH_MIN_SEEDS[name] seeds (any number with `force`); None
    when it does not publish."""
    adopt_committed(name, work_dir)
    out = work_file(name, work_dir)
    with _locked(out.with_name(out.name + ".lock")):   # two processes publishing: the later sees all rows
        return _publish(name, read_rows(out), force=force)


def _publish(name: str, rows: list[dict[str, Any]], force: bool = False) -> Path | None:
    planned = plan_configs(name)
    keys = {run_key(c) for c in planned}
    rows = [r for r in rows if run_key(r) in keys]
    if not rows:
        return None
    seeds_per_group: dict[tuple, int] = {}
    for c in planned:
        seeds_per_group.setdefault(run_key(c)[:2] + run_key(c)[4:], 0)
    for r in rows:
        seeds_per_group[run_key(r)[:2] + run_key(r)[4:]] += 1
    if not force and min(seeds_per_group.values()) < PUBLISH_MIN_SEEDS[name]:
        return None
    if not force and not all(any(abs(r["density"] - d) < 1e-12 for r in rows)
                             for d in PUBLISH_NEEDS_DENSITIES.get(name, ())):
        return None
    done = {run_key(r) for r in rows}
    missing = [c for c in planned if run_key(c) not in done]
    rows.sort(key=lambda r: (r["model"], r["growth"], r["redistribution"], -r["density"], r["seed"]))
    description = _describe(name, rows, missing)
    data: dict[str, Any] = {"description": description, "commands": [continue_command(name)],
                            "missing": [{"density": c.density, "seed": c.seed, "growth": c.growth,
                                         "redistribution": c.redistribution, "epochs": c.epochs} for c in missing]}
    if name == "specialization":
        data["rows"] = rows
    else:
        data["runs"] = rows
    return evidence.save("sparse", name, data, command=continue_command(name),
                         device=rows[-1]["provenance"]["device"],
                         wall_s=sum(r["provenance"]["wall_s"] for r in rows),
                         note="wall_s: the sum of the rows' wall times (the runs ran in separate processes; "
                              "each row's provenance holds its own)")


def run_specialization_one(cfg: RunConfig, data: MnistData, out: Path, *, device: str, origin: dict[str, Any],
                           log=print) -> dict[str, Any] | None:
    """One run of the specialization study (3 epochs, no checkpoint needed): trains and scores it."""
    from book.chapters.sparse.analysis import specialization_runs

    if any(run_key(r) == run_key(cfg) for r in read_rows(out)):
        log(f"specialization {slug(cfg)}: already finished, skipped")
        return None
    with _locked(out.with_name(f"{out.stem}_{slug(cfg)}.lock"), blocking=False) as mine:
        if not mine or any(run_key(r) == run_key(cfg) for r in read_rows(out)):
            log(f"specialization {slug(cfg)}: being trained by another process (or finished), skipped")
            return None
        start = time.perf_counter()
        row = specialization_runs([cfg.density], [cfg.seed], cfg.epochs, data, model=cfg.model)[0]
        row.update({"growth": cfg.growth, "redistribution": cfg.redistribution, "train_subset": None,
                    "test_subset": None,
                    "provenance": {**origin, "wall_s": round(time.perf_counter() - start, 1)}})
        add_row(out, row)
    log(f"specialization {slug(cfg)}: test error {row['test_error']:.4f}, conv_mean {row['conv_mean']:.4f}")
    return row


def run_plan(name: str, *, seeds=None, densities=None, device: str = "cpu", work_dir: Path = WORK_DIR,
             log=print, publish_each: bool = True, data: MnistData | None = None) -> None:
    """Run (or continue) the plan `name`, restricted to `seeds`/`densities` when given; publishes the
    committed evidence after each finished run."""
    cfgs = [c for c in plan_configs(name) if (seeds is None or c.seed in seeds)
            and (densities is None or any(abs(c.density - d) < 1e-12 for d in densities))]
    out = work_file(name, work_dir)
    adopted = adopt_committed(name, work_dir)
    if adopted:
        log(f"{name}: {adopted} finished runs taken from the committed evidence into {out}")
    def after() -> None:
        path = publish(name, work_dir)
        log(f"published {path}" if path else f"{name}: not published yet (a density has fewer than "
            f"{PUBLISH_MIN_SEEDS[name]} seeds, or {PUBLISH_NEEDS_DENSITIES.get(name, ())} no run, finished)")
    after = after if publish_each else None
    data = data if data is not None else MnistData.load(device)
    if name == "specialization":
        origin = process_provenance(device)
        for cfg in cfgs:
            if run_specialization_one(cfg, data, out, device=device, origin=origin, log=log) and after:
                after()
        return
    run_sweep(cfgs, out, checkpoints=Path(work_dir) / "checkpoints", device=device, log=log, after_each=after,
              data=data)


def rerun_evidence(name: str, device: str = "cpu", work_dir: str | None = None) -> "Any":
    """Run (or continue) the plan `name` of FULL_PLAN (or the specialization study) and store it as
    committed evidence, replacing the file in results/sparse/. Hours on a CPU for the 100-epoch plans;
    finished runs in the work folder are kept, an interrupted one resumes from its checkpoint."""
    folder = Path(work_dir) if work_dir else WORK_DIR
    run_plan(name, device=device, work_dir=folder, publish_each=False)
    return publish(name, folder, force=True)


def parse_plan(text: str) -> tuple[str, list[int] | None]:
    """`NAME` or `NAME:SEED,SEED` (a plan restricted to some seeds)."""
    name, _, seeds = text.partition(":")
    if name not in PLANS:
        raise argparse.ArgumentTypeError(f"no plan {name!r}: one of {', '.join(PLANS)}")
    return name, [int(x) for x in seeds.split(",")] if seeds else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m book.chapters.sparse", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=parse_plan, nargs="+",
                        help="run or continue committed plans, in order, in this one process: NAME or "
                             f"NAME:SEED,SEED, NAME one of {', '.join(PLANS)} (results/sparse/NAME.json); "
                             "processes started with the same plans share the runs")
    parser.add_argument("--publish", choices=PLANS, help="only re-publish a plan's finished runs")
    parser.add_argument("--model", default="lenet300", choices=sorted(MODELS))
    parser.add_argument("--densities", type=float, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--growth", default="momentum", choices=algorithm.GROWTH_MODES)
    parser.add_argument("--redistribution", default="momentum", choices=algorithm.REDISTRIBUTION_MODES)
    parser.add_argument("--train-subset", type=int, default=None, help="first N training images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", default=str(WORK_DIR), help="work files and checkpoints of --plan")
    parser.add_argument("--out", help="work file of an ad hoc sweep (without --plan)")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(f"{_dt.datetime.now():%H:%M:%S} {text}", flush=True)

    if numerics.enabled() and not numerics.in_force():
        numerics.check_in_force()
    if args.publish:
        log(f"published {publish(args.publish, Path(args.work_dir), force=True)}")
    elif args.plan:
        log(f"plans {[n for n, _ in args.plan]}: {shlex.join(['python', '-m', 'book.chapters.sparse', *(sys.argv[1:] if argv is None else argv)])}")
        data = MnistData.load(args.device)
        for name, seeds in args.plan:
            run_plan(name, seeds=seeds or args.seeds, densities=args.densities, device=args.device,
                     work_dir=Path(args.work_dir), log=log, data=data)
    else:
        if not args.out:
            parser.error("give --plan NAME, --publish NAME, or --out FILE for an ad hoc sweep")
        cfgs = configs(args.model, args.densities or [1.0, 0.2, 0.1, 0.05, 0.02, 0.01], args.seeds or [0],
                       args.epochs, growth=args.growth, redistribution=args.redistribution,
                       train_subset=args.train_subset)
        run_sweep(cfgs, Path(args.out), device=args.device, log=log)


__all__ = ["ABLATIONS", "CODE_DIGEST", "main", "publish", "run_one", "run_plan", "run_sweep", "run_key", "plan_configs"]
