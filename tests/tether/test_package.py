"""Import names and the command line: the layout of DESIGN.md, installed as one distribution."""

import os
import subprocess
import sys
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from tether.cli import app


def test_subpackages_import_under_tether():
    import tether.datasets
    import tether.hardware_configs
    import tether.policies
    import tether.robot_ws
    import tether.sim2real
    import tether.teleop

    for module in (tether.datasets, tether.policies, tether.robot_ws, tether.sim2real, tether.teleop):
        assert module.__name__.startswith("tether.")


def test_from_the_repository_root_an_installed_datasets_package_wins(tmp_path):
    # A regular package named `datasets` stands in for Hugging Face's (not a dependency here); the repository root
    # is the working directory, so it is first on sys.path, as for a notebook or script opened in the checkout.
    installed = tmp_path / "site" / "datasets"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("WHO = 'installed'\n")
    root = Path(__file__).resolve().parents[2]
    code = "import datasets, tether.datasets.store; print(datasets.WHO)"
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "installed"


def _all_commands(command, path: tuple[str, ...] = ()):
    yield path, command
    if hasattr(command, "commands"):  # a group (typer vendors its own click classes)
        for name, sub in command.commands.items():
            yield from _all_commands(sub, (*path, name))


def test_every_command_has_help():
    root = typer.main.get_command(app)
    runner = CliRunner()
    seen = []
    for path, _ in _all_commands(root):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
        seen.append(" ".join(path))
    assert {"sim expert", "sim check", "demo", "record", "train hil", "train-hil", "up", "node", "data info", "train sac"} <= set(seen)


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "tether.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train-hil" in result.stdout and "deprecated" in result.stdout
