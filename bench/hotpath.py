"""The profile scenario: py-spy on the worker while it drains a pre-filled topic, both modes.

Separate from the throughput runs (a sampler costs the worker some CPU). py-spy samples only
while the worker holds the GIL (``--gil``), so shares are of the Python time the worker spends,
not of the time it waits for the broker; ``Drain.describe`` gives CPU against wall time.
The raw stacks are kept (``<out>/profile-<mode>.txt``) for flame graphs
(``flamegraph.pl``, or https://www.speedscope.app reads them as they are).
"""

from __future__ import annotations

from bench import profiles
from bench.drain import drain_callpulse, fill
from bench.infra import Processes, callpulse_env
from bench.options import Options
from bench.profiles import Bucket
from bench.report import Result
from bench.throughput import messages, traffic

HOT_PATH = (
    Bucket("stage 1 (stream.ingress), all of it", r"ingress\.py:"),
    # A one-object message is parsed in validate_batch itself (its own line, not a frame).
    Bucket("  decode of arrays and bad messages (orjson)", r"decode\.py:decode_message$"),
    Bucket("  validation (schema + checks)", r"validation\.py:EventValidator\.validate$"),
    # The Pseudonymiser's methods only: the module's import at startup is not the hot path.
    Bucket("  pseudonymise callers", r"pseudonym\.py:(Pseudonymiser\.|is_pseudonym)"),
    Bucket("  forward: encode + producer.send (routed, DLQ)", r"ingress\.py:.*_send$"),
    Bucket("stage 2 (aggregate agent), all of it", r"worker\.py:.*aggregate$"),
    Bucket(
        "  MessageProcessor.process_batch", r"processor\.py:MessageProcessor\.process(_batch)?$"
    ),
    Bucket(
        "    table writes (Faust on_key_set, changelog send_soon)",
        r"faust/tables/table\.py:Table\.on_key_set$",
    ),
    Bucket("    table writes (stream.changelog: store + encode)", r"changelog\.py:RunWrites\."),
    Bucket(
        "  changelog sends (stream.changelog.ChangelogWriter)", r"changelog\.py:ChangelogWriter\."
    ),
    Bucket("    accumulator merge/to_json/from_json", r"accumulator\.py:.*(merge|json)"),
    Bucket("    retention expiry scans", r"expir"),
    Bucket("Faust stream/consumer machinery", r"faust/(streams|channels|transport/consumer)\.py"),
    Bucket(
        "Faust producer buffer + aiokafka producer", r"faust/transport/producer|aiokafka/producer"
    ),
    Bucket("aiokafka consumer (fetch, record decode)", r"aiokafka/(consumer|record)"),
    Bucket("offset commits", r"faust/transport/consumer\.py:.*[Cc]ommit"),
    Bucket("Faust JSON codec (changelog values)", r"faust/(serializers|utils/json)"),
    Bucket("logging", r"/logging/"),
)


def hotpath(options: Options) -> list[Result]:
    for per_message, events in (
        (1, options.profile_single_events),
        (options.per_message, options.profile_batched_events),
    ):
        _profile(options, per_message, events)
    return []


def _profile(options: Options, per_message: int, events: int) -> None:
    name = f"profile-{per_message}"
    raw = options.out_dir / f"{name}.txt"
    with Processes(options.out_dir / "logs", name) as processes:
        bootstrap = processes.start_broker()
        env = callpulse_env(bootstrap, name, options.partitions)
        spec = traffic(events, options.queues, prefix=f"p{per_message}-")
        filled = fill(
            bootstrap,
            env["CALLPULSE_EVENTS_TOPIC"],
            options.partitions,
            messages(spec, per_message),
        )
        run = drain_callpulse(processes, env, filled, profile_to=raw)
    if not raw.exists():
        return
    samples = profiles.parse_collapsed(raw.read_text())
    rate = "no rate" if run.rate is None else f"{run.rate:,.0f} events/s under the profiler"
    sections = [
        f"## profile: {per_message} event(s)/message, {events:,} events, {rate}",
        run.describe(),
        f"{profiles.total(samples):,} samples (worker holding the GIL)",
        profiles.format_shares(
            "hot path (inclusive)", profiles.inclusive_shares(samples, HOT_PATH)
        ),
        profiles.format_shares("self time by package", profiles.self_shares(samples)[:12]),
        profiles.format_shares("self time, top functions", profiles.top_functions(samples, 20)),
    ]
    text = "\n\n".join(sections)
    (options.out_dir / f"{name}-summary.txt").write_text(text + "\n")
    print(text, flush=True)
