"""Import names and the command line: the layout of DESIGN.md, installed as one distribution."""

import subprocess
import sys

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


def test_bare_datasets_name_is_not_this_project(tmp_path):
    # Run from a neutral folder so the repository root is not on sys.path.
    code = (
        "import importlib.util, tether.datasets as ours\n"
        "spec = importlib.util.find_spec('datasets')\n"
        "assert spec is None or spec.origin != ours.__file__, spec\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


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
