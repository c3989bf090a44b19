"""``callpulse ingest ...`` as the command line sees it; ``ingest_cli`` does the work.

The CLI loads this module on every start, so it imports nothing heavy: Kafka clients, the
validator and the adapters load when an ingest command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ingest_app = typer.Typer(
    help="Feed PBX and contact-centre data into callpulse (docs/ADAPTERS.md).",
    no_args_is_help=True,
)


@ingest_app.command("asterisk-queue-log")
def asterisk_queue_log(
    path: Annotated[str, typer.Argument(help="queue_log file, directory of rotated files, or -")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep reading as Asterisk appends")
    ] = False,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Skip lines before this time (RFC 3339 or epoch seconds; default: the "
            "retention, older events would be refused)",
        ),
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option(help="Remember the position here, and resume from it")
    ] = None,
    poll_s: Annotated[float, typer.Option(help="How often to look for new lines")] = 0.25,
) -> None:
    """Asterisk's queue_log: calls and queue members to contract events."""
    from callpulse.adapters.ingest_cli import run_queue_log

    run_queue_log(path, follow, from_, state_file, poll_s)


@ingest_app.command("twilio")
def twilio_file(
    file: Annotated[str, typer.Argument(help="TaskRouter callbacks: JSON, JSON array, NDJSON, -")],
) -> None:
    """Exported Twilio TaskRouter event callbacks, in time order."""
    from callpulse.adapters.ingest_cli import run_payloads

    run_payloads("twilio", file)


@ingest_app.command("amazon-connect")
def amazon_connect_file(
    file: Annotated[str, typer.Argument(help="Contact records: JSON, NDJSON, Firehose objects, -")],
) -> None:
    """Amazon Connect contact records (CTRs) as Kinesis or Firehose delivered them."""
    from callpulse.adapters.ingest_cli import run_payloads

    run_payloads("amazon-connect", file)


@ingest_app.command("generic")
def generic_file(
    file: Annotated[str, typer.Argument(help="Payloads: JSON, JSON array, NDJSON, or -")],
    mapping: Annotated[str, typer.Option(help="Name of the mapping under 'generic:'")],
) -> None:
    """Any JSON payloads, through a field mapping of the adapters configuration."""
    from callpulse.adapters.ingest_cli import run_payloads

    run_payloads("generic", file, mapping)
