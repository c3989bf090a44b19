"""The ``callpulse`` command: dev, worker, api, simulate, token."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError

from api.alerts.config import load_alert_config
from callpulse.pseudonym import key_problem
from callpulse.queues import load_centre_config
from callpulse.settings import Settings
from callpulse.simulator.understaff import SPEC_HELP as UNDERSTAFF_HELP
from callpulse.simulator.understaff import UnderstaffPlan
from callpulse.tokens import SCOPES, TokenConfigError, entry_for, load_entries, new_token
from stream.kpi.config import CentreConfig, ConfigError

cli = typer.Typer(
    help="Real-time contact-centre KPIs: call events through Kafka into live "
    "figures on REST, SSE and /metrics.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # Without the input: a mistyped setting may be a secret (a token, a password).
        for error in exc.errors(include_input=False, include_url=False):
            where = "_".join(str(part) for part in error["loc"]).upper()
            name = f"CALLPULSE_{where}" if where else "settings"
            typer.echo(f"callpulse: {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def _refuse_insecure(settings: Settings, command: str, *, serves_http: bool) -> None:
    """Stop unless tokens (for the API) and a real pseudonym key are configured, or told not to."""
    problems = []
    if serves_http:
        try:
            entries = load_entries(settings.tokens, settings.tokens_file)
        except TokenConfigError as exc:
            typer.echo(f"callpulse {command}: {exc}", err=True)
            raise typer.Exit(2) from None
        if not entries:
            problems.append(
                "no API tokens are configured (CALLPULSE_TOKENS or CALLPULSE_TOKENS_FILE; "
                "`callpulse token` makes one)"
            )
    key = key_problem(settings.pseudonym_key.get_secret_value())
    if key:
        problems.append(f"{key} (callers would be hashed with the public development key)")
    if not problems:
        return
    if settings.insecure:
        typer.echo(f"callpulse {command}: CALLPULSE_INSECURE=true: {'; '.join(problems)}", err=True)
        return
    typer.echo(
        f"callpulse {command}: refusing to start: {'; '.join(problems)}. See docs/SECURITY.md, "
        "or set CALLPULSE_INSECURE=true to run anyway (development only).",
        err=True,
    )
    raise typer.Exit(2)


def _settings_and_centre() -> tuple[Settings, CentreConfig]:
    settings = _settings()
    try:
        centre = load_centre_config(settings.queues_config)
        load_alert_config(settings.queues_config, centre)  # the file's `alerts:` section
    except ConfigError as exc:
        typer.echo(f"callpulse: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings, centre


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    no_simulator: Annotated[
        bool, typer.Option("--no-simulator", help="Start without simulated traffic")
    ] = False,
    broker_port: Annotated[
        int | None, typer.Option(help="Embedded broker port (default: any free port)")
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulated time speed once live")] = 1.0,
    backfill_s: Annotated[
        float,
        typer.Option(help="Seconds of past traffic simulated at once, so windows fill immediately"),
    ] = 900.0,
    log_dir: Annotated[Path, typer.Option(help="Where the children's logs go")] = Path(
        ".callpulse-dev"
    ),
    understaff: Annotated[
        str | None,
        typer.Option(help=f"Understaff a simulated queue so its alerts fire: {UNDERSTAFF_HELP}"),
    ] = None,
) -> None:
    """Everything on one machine: embedded broker, worker, API and simulator."""
    from callpulse.dev import DevOptions, run_dev
    from callpulse.simulator.profiles import default_centre

    _settings_and_centre()  # refuse a bad queue config before starting anything
    _understaff_plan(understaff, [queue.name for queue in default_centre().queues])
    code = run_dev(
        DevOptions(
            port=port,
            simulator=not no_simulator,
            broker_port=broker_port,
            speed=speed,
            backfill_s=backfill_s,
            log_dir=log_dir,
            understaff=understaff,
        )
    )
    raise typer.Exit(code)


@cli.command()
def worker() -> None:
    """The stream worker (Faust). Scale out by starting more with the same settings."""
    from stream.worker import run_worker

    settings, centre = _settings_and_centre()
    _refuse_insecure(settings, "worker", serves_http=False)
    asyncio.run(_ensure_topics(settings))
    sys.argv = [sys.argv[0]]  # Faust's worker reads argv; ours are not its options
    run_worker(settings, centre)


@cli.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    loop: Annotated[
        str, typer.Option(help="Event loop: asyncio, or uvloop (see docs/PERFORMANCE.md)")
    ] = "asyncio",
) -> None:
    """The HTTP API: REST, SSE, /metrics and event ingest."""
    event_loop = _api_loop(loop)
    import uvicorn

    from api.main import create_app
    from api.services import Services

    settings, centre = _settings_and_centre()
    _refuse_insecure(settings, "api", serves_http=True)
    asyncio.run(_ensure_topics(settings))
    app = create_app(Services.connected(settings, centre))
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        access_log=False,
        # uvloop's libuv accepts one connection per loop turn: with 200 clients busy, new
        # connections waited seconds in the accept queue (the p99 tail of docs/PERFORMANCE.md).
        # asyncio's loop accepts every waiting connection at once.
        loop=event_loop,
        # Open SSE streams (wallboards) never end by themselves: without a limit, SIGTERM
        # would wait for every wallboard to go away. They reconnect to another replica.
        timeout_graceful_shutdown=3,
    )


API_LOOPS = ("asyncio", "uvloop")


def _api_loop(name: str) -> Literal["asyncio", "uvloop"]:
    if name == "asyncio":
        return "asyncio"
    if name == "uvloop":
        return "uvloop"
    raise typer.BadParameter(f"--loop must be one of {', '.join(API_LOOPS)}")


@cli.command()
def simulate(
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second")] = 1.0,
    backfill_s: Annotated[float, typer.Option(help="Past seconds to simulate at once")] = 0.0,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this long")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
    scale: Annotated[float, typer.Option(help="Multiply call volume and agents")] = 1.0,
    understaff: Annotated[
        str | None, typer.Option(help=f"Understaff a queue for a while, {UNDERSTAFF_HELP}")
    ] = None,
) -> None:
    """Realistic call-centre traffic into the events topic."""
    from callpulse.simulator.producer import producer_options, run_simulator
    from callpulse.simulator.profiles import default_centre

    settings = _settings()  # a bad Kafka security setting: a clear message, not a traceback
    plan = _understaff_plan(understaff, [queue.name for queue in default_centre(scale).queues])
    asyncio.run(_ensure_topics(settings))
    produced = asyncio.run(
        run_simulator(
            kafka=producer_options(settings),  # TLS and SASL as every other client
            topic=settings.events_topic,
            centre=default_centre(scale),
            seed=seed,
            speed=speed,
            backfill_s=backfill_s,
            duration_s=duration_s,
            on_live_tick=plan,
        )
    )
    typer.echo(f"simulator: produced {produced} events")


def _understaff_plan(spec: str | None, queues: list[str]) -> UnderstaffPlan | None:
    if spec is None:
        return None
    try:
        plan = UnderstaffPlan.parse(spec)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--understaff") from None
    if plan.queue not in queues:
        message = f"no simulated queue {plan.queue!r} (there are {', '.join(queues)})"
        raise typer.BadParameter(message, param_hint="--understaff")
    return plan


@cli.command()
def token(
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"Scope of the token: {', '.join(SCOPES)} (repeat for several)"),
    ] = None,
) -> None:
    """A new random API token, and the hash line that configures it (the token is not kept)."""
    secret = new_token()
    try:
        entry = entry_for(secret, scope or ["read"])
    except TokenConfigError as exc:
        typer.echo(f"callpulse token: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"token {secret}")
    typer.echo(f"hash  {entry.line}")
    typer.echo(
        "Give the token to its client (header 'Authorization: Bearer <token>'). Put the hash "
        "line in CALLPULSE_TOKENS (comma-separated) or CALLPULSE_TOKENS_FILE (one a line).",
        err=True,
    )


async def _ensure_topics(settings: Settings) -> None:
    from callpulse.kafka import ensure_topics

    await ensure_topics(settings)


def _add_ingest() -> None:
    # Imported here: the adapters' commands use this module's settings helpers.
    from callpulse.adapters.commands import ingest_app

    cli.add_typer(ingest_app, name="ingest")


_add_ingest()


def main() -> None:
    cli()
