"""The `tether` command line. Each command group lives in its own module and registers here.

`main` is the one error boundary: whatever a command raises ends as one plain line on stderr (never a
traceback, never a panel wrapped at the terminal's width) and an exit code that says whose fault it was:
2 for bad input (a usage error, a bad rig, checkpoint, store or argument, an output that exists),
1 for a runtime failure (a device, a timeout, the disk) or a bug, 130 for Ctrl-C.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
import traceback

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from tether.cli import calibrate, data, demo, deploy, robot, sim, train, train_sim
from tether.cli.eval import eval_command
from tether.errors import BadInput
from tether.types import DeviceError

TRACEBACK_ENV = "TETHER_TRACEBACK"
"""Set to 1 to see the traceback of an unexpected error (as --verbose does)."""
MAX_MESSAGE_CHARS = 500
"""An error line is cut here, so no input (a YAML alias bomb, a huge value) can flood the terminal."""

app = typer.Typer(
    help="tether: collect demos, train with a human in the loop, and deploy, on a robot or its MuJoCo twin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sim.app, name="sim")
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(calibrate.app, name="calibrate")
app.command("eval")(eval_command)
app.command("demo")(demo.demo)
app.command("deploy")(deploy.deploy)
app.command("record")(robot.record)
train.app.command("hil")(robot.train_hil)
train.app.command("sim")(train_sim.train_sim)
# The names of the previous release, kept one more release.
app.command("train-hil", deprecated=True, help="Deprecated: use `tether train hil`.")(robot.train_hil)
app.command("train-sim", deprecated=True, help="Deprecated: use `tether train sim`.")(train_sim.train_sim)
app.command("up")(robot.up)
app.command("node")(robot.node)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"tether {importlib.metadata.version('tether')}")
        raise typer.Exit()


@app.command("rigs")
def rigs() -> None:
    """List the rigs that ship with tether (give one by name to --rig, or a YAML path of your own)."""
    from tether.config import load_rig, rig_names

    for name in rig_names():
        rig = load_rig(name)
        cameras = ", ".join(f"{c.name} ({c.backend})" for c in rig.cameras) or "none"
        typer.echo(f"{name}: arm {rig.arm.backend}, cameras {cameras}, teleop {rig.teleop.device}, task {rig.task.name}")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging; tracebacks of unexpected errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print tether's version and exit."),
) -> None:
    if verbose:
        os.environ[TRACEBACK_ENV] = "1"
    # tether's own progress at INFO; other libraries only warn, so their chatter never mixes with an error line.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tether").setLevel(logging.DEBUG if verbose else logging.INFO)


def one_line(text: object) -> str:
    """`text` as one line: whitespace (newlines included) collapsed, length bounded."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[:MAX_MESSAGE_CHARS] + " [...]"


def _domain_bad_input() -> tuple[type[Exception], ...]:
    """The packages' own errors about a user's data, imported only once something failed."""
    from tether.datasets.store import StoreError
    from tether.robot_ws.calibration import CalibrationError
    from tether.sim2real.arm_log import LogError

    return StoreError, LogError, CalibrationError


def exit_code(error: Exception) -> int | None:
    """2 for bad input, 1 for a runtime failure, None for an error no check anticipated (a bug)."""
    if isinstance(error, (BadInput, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return 2
    if isinstance(error, (DeviceError, TimeoutError, OSError)):
        return 1
    return 2 if isinstance(error, _domain_bad_input()) else None


def _report(error: Exception) -> int:
    """Print one line for `error` and return the exit code."""
    code = exit_code(error)
    if code is None:
        if os.environ.get(TRACEBACK_ENV) == "1":
            traceback.print_exception(error)
        hint = f"--verbose or {TRACEBACK_ENV}=1 shows the traceback"
        print(f"error: unexpected {type(error).__name__}: {one_line(error)} ({hint})", file=sys.stderr)
        return 1
    print(f"error: {one_line(error)}", file=sys.stderr)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run one command line (default: sys.argv) and return its exit code; prints at most one error line."""
    try:
        code = app(args=argv, prog_name="tether", standalone_mode=False)
    except NoArgsIsHelpError:
        return 2  # the help was printed
    except ClickException as error:  # usage errors and BadParameter: name the command they belong to
        where = f"{error.ctx.command_path}: " if getattr(error, "ctx", None) is not None else ""
        print(f"error: {where}{one_line(error.format_message())}", file=sys.stderr)
        return error.exit_code
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the boundary: every error ends as one line and a code
        return _report(error)
    return code if isinstance(code, int) else 0


def main(argv: list[str] | None = None) -> None:
    """The `tether` console script."""
    sys.exit(run(argv))
