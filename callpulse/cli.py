"""The ``callpulse`` command: dev, worker, api, simulate."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from callpulse.queues import load_centre_config
from callpulse.settings import Settings
from stream.kpi.config import CentreConfig, ConfigError

cli = typer.Typer(
    help="Real-time contact-centre KPIs: call events through Kafka into live "
    "figures on REST, SSE and /metrics.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings_and_centre() -> tuple[Settings, CentreConfig]:
    settings = Settings()
    try:
        centre = load_centre_config(settings.queues_config)
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
) -> None:
    """Everything on one machine: embedded broker, worker, API and simulator."""
    from callpulse.dev import DevOptions, run_dev

    _settings_and_centre()  # refuse a bad queue config before starting anything
    code = run_dev(
        DevOptions(
            port=port,
            simulator=not no_simulator,
            broker_port=broker_port,
            speed=speed,
            backfill_s=backfill_s,
            log_dir=log_dir,
        )
    )
    raise typer.Exit(code)


@cli.command()
def worker() -> None:
    """The stream worker (Faust). Scale out by starting more with the same settings."""
    from stream.worker import run_worker

    settings, centre = _settings_and_centre()
    asyncio.run(_ensure_topics(settings))
    sys.argv = [sys.argv[0]]  # Faust's worker reads argv; ours are not its options
    run_worker(settings, centre)


@cli.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """The HTTP API: REST, SSE, /metrics and event ingest."""
    import uvicorn

    from api.main import create_app
    from api.services import Services

    settings, centre = _settings_and_centre()
    asyncio.run(_ensure_topics(settings))
    app = create_app(Services.connected(settings, centre))
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        access_log=False,
    )


@cli.command()
def simulate(
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second")] = 1.0,
    backfill_s: Annotated[float, typer.Option(help="Past seconds to simulate at once")] = 0.0,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this long")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
    scale: Annotated[float, typer.Option(help="Multiply call volume and agents")] = 1.0,
) -> None:
    """Realistic call-centre traffic into the events topic."""
    from callpulse.kafka import producer_acks
    from callpulse.simulator.producer import run_simulator
    from callpulse.simulator.profiles import default_centre

    settings = Settings()
    asyncio.run(_ensure_topics(settings))
    produced = asyncio.run(
        run_simulator(
            bootstrap_servers=settings.kafka_bootstrap,
            topic=settings.events_topic,
            centre=default_centre(scale),
            seed=seed,
            speed=speed,
            backfill_s=backfill_s,
            duration_s=duration_s,
            acks=producer_acks(settings),
        )
    )
    typer.echo(f"simulator: produced {produced} events")


async def _ensure_topics(settings: Settings) -> None:
    from callpulse.kafka import ensure_topics

    await ensure_topics(settings)


def main() -> None:
    cli()
