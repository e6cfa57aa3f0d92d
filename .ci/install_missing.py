#!/usr/bin/env python3
"""Install the book into a python that brings its own torch (a GPU runner, Colab): `make ... SYSTEM=1`.

Only the requirements that are not installed at all are installed (a package the machine already has
is kept at its version: never replace a CUDA torch, numpy or transformers with the CPU pins), then the
book itself in editable mode. `--bundle DIR` installs from a folder of wheels (no network: nothing can
be downloaded on such a machine); `--make-bundle DIR` makes that folder here, with the MNIST files.
Standard library only: it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEVER = {"torch", "torchvision", "torchaudio"}   # the machine's own build, always


def requirements() -> list[tuple[str, str]]:
    out = []
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
        if m and m.group(1).lower() not in NEVER:
            out.append((m.group(1), m.group(2)))
    return out


def missing() -> list[str]:
    need = []
    for name, version in requirements():
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            need.append(f"{name}=={version}")
    return need


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", help="install from this folder of wheels, offline")
    ap.add_argument("--make-bundle", metavar="DIR", help="download the wheels and copy MNIST into DIR")
    args = ap.parse_args()
    if args.make_bundle:
        target = Path(args.make_bundle)
        (target / "wheels").mkdir(parents=True, exist_ok=True)
        pip("download", "-q", "--no-deps", "-d", str(target / "wheels"),
            *[f"{n}=={v}" for n, v in requirements()])
        for source in (ROOT.parent / "shared" / "data" / "mnist", ROOT / ".data" / "mnist"):
            if source.is_dir():
                shutil.copytree(source, target / "mnist", dirs_exist_ok=True)
                break
        print(f"bundle in {target}: {len(list((target / 'wheels').iterdir()))} wheels"
              + (", MNIST" if (target / "mnist").is_dir() else ", no MNIST found to copy"))
        return 0
    if "torch" not in {d.metadata["Name"].lower() for d in metadata.distributions()}:
        print("this python has no torch: SYSTEM=1 is for a machine that brings its own (use plain make)",
              file=sys.stderr)
        return 2
    need = missing()
    source = ["--no-index", "--find-links", args.bundle] if args.bundle else []
    if need:
        print(f"installing what this python lacks: {' '.join(need)}")
        pip("install", "-q", "--no-deps", *source, *need)
    pip("install", "-q", "--no-deps", "--no-build-isolation", *source, "-e", str(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
