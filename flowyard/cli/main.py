"""The ``flowyard`` command.

Sub-command modules import their heavy dependencies inside the command
functions, so ``flowyard --help`` never loads the server, SQLAlchemy or the
HTTP client.
"""

from __future__ import annotations

import sys

import typer

from flowyard._version import __version__
from flowyard.cli import admin
from flowyard.cli import artifact as artifact_cmd
from flowyard.cli import concurrency_limit as concurrency_limit_cmd
from flowyard.cli import config as config_cmd
from flowyard.cli import deploy as deploy_cmd
from flowyard.cli import deployment as deployment_cmd
from flowyard.cli import doctor as doctor_cmd
from flowyard.cli import flow_run as flow_run_cmd
from flowyard.cli import server as server_cmd
from flowyard.cli import work_pool as work_pool_cmd
from flowyard.cli._errors import run_app

app = typer.Typer(
    rich_markup_mode=None,
    name="flowyard",
    help="Flowyard: self-hosted workflow orchestration with managed execution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(server_cmd.app, name="server")
app.command("dispatcher")(server_cmd.dispatcher)
app.add_typer(work_pool_cmd.app, name="work-pool")
app.command("deploy")(deploy_cmd.deploy)
app.command("init")(deploy_cmd.init)
app.add_typer(deployment_cmd.app, name="deployment")
app.add_typer(flow_run_cmd.app, name="flow-run")
app.add_typer(artifact_cmd.app, name="artifact")
app.add_typer(concurrency_limit_cmd.app, name="concurrency-limit")
app.command("usage")(admin.usage)
app.add_typer(admin.workspace_app, name="workspace")
app.add_typer(admin.api_key_app, name="api-key")
app.add_typer(admin.variable_app, name="variable")
app.add_typer(admin.secret_app, name="secret")
app.add_typer(admin.profile_app, name="profile")
app.command("login")(admin.login)
app.add_typer(config_cmd.app, name="config")
app.command("doctor")(doctor_cmd.doctor)


@app.command("version")
def version() -> None:
    """Print the Flowyard version."""
    typer.echo(__version__)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    if debug:
        import os

        os.environ["FLOWYARD_DEBUG"] = "1"


def main() -> None:
    sys.exit(run_app(app))
