"""The `tether` command line. Each command group lives in its own module and registers here."""

from __future__ import annotations

import logging

import typer

from tether.cli import calibrate, data, demo, deploy, robot, sim, train, train_sim
from tether.cli.eval import eval_command

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
app.command("train-hil")(robot.train_hil)
app.command("train-sim")(train_sim.train_sim)
app.command("up")(robot.up)
app.command("node")(robot.node)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s"
    )


def main() -> None:
    app()
