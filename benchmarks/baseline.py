"""Before/after figures in one run: a benchmark module run in a child process, with one tether subpackage
taken from an earlier git revision (extracted with `git archive`) in place of the working tree's.

    folder = extract_package("f9a22a5", "datasets", tmp)     # tmp/f9a22a5/datasets
    run_module("benchmarks.dataset_io", ["--write-only"], override=("tether.datasets", folder))

The child prints one JSON object as its last line of stdout; `run_module` returns it. Everything else
(the rest of tether, the benchmark script, the libraries) is the current code, so the difference between
two children is the subpackage's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BOOTSTRAP = """
import importlib.machinery, importlib.util, os, runpy, sys
name, folder, module = sys.argv[1:4]
if folder:
    import tether
    init = folder + "/__init__.py"  # revisions from before the folders became namespace packages have one
    if os.path.exists(init):
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[folder])
    else:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [folder]
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    if spec.loader is not None:
        spec.loader.exec_module(package)
    setattr(tether, name.rsplit(".", 1)[1], package)
sys.argv = [module, *sys.argv[4:]]
runpy.run_module(module, run_name="__main__")
"""


def extract_package(revision: str, folder: str, into: Path) -> Path:
    """The repository's `folder` at `revision`, written under `into`; errors name the revision."""
    target = into / revision
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, folder], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"baseline {revision}: git archive failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / folder


def run_module(module: str, args: list[str], override: tuple[str, Path] | None = None) -> dict:
    """Run `python -m module args` in a child (with `override` = (package name, folder) swapped in)."""
    name, folder = override if override else ("", "")
    command = [sys.executable, "-c", BOOTSTRAP, name, str(folder), module, *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
