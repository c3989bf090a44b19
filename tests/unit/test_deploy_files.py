"""Offline checks of the container files: Dockerfile, .dockerignore, docker-compose.yml, Prometheus.

There is no Docker engine in CI, so each file is checked against what it names: the callpulse CLI
commands and options, the settings behind every ``CALLPULSE_*`` variable, the API's routes and
port, the repository paths it copies or mounts. The compose file is also validated against the
compose-spec JSON schema when an installed package ships it (``check-jsonschema`` does).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from jsonschema import Draft202012Validator

from api.routes.health import router as health_router
from callpulse.cli import cli
from callpulse.settings import Settings
from callpulse.tokens import entry_for, new_token
from stream import validation

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"

ENV_PREFIX = "CALLPULSE_"
SETTINGS_ENV = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}
OPTION = re.compile(r"--[a-z0-9][a-z0-9-]*")
URL = re.compile(r"https?://([^/:'\"\s]+):(\d+)(/[^'\"\s]*)?")


# --- reading the files ---------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


COMPOSE: dict[str, Any] = load_yaml(COMPOSE_FILE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# Services built from this repository run callpulse; the others are stock images.
OWN_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile_cmd() -> list[str]:
    cmds = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    argv = json.loads(cmds[-1])  # exec form: signals reach callpulse, not a shell
    assert isinstance(argv, list), "CMD must be the exec (JSON array) form"
    return [str(arg) for arg in argv]


def copy_sources() -> list[str]:
    """Every source path of every COPY (not --from another stage)."""
    sources: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword not in {"COPY", "ADD"}:
            continue
        parts = [part for part in shlex.split(args) if not part.startswith("--")]
        assert "--from" not in args, "multi-stage COPY: extend this test"
        sources.extend(parts[:-1])
    return sources


def service_argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return dockerfile_cmd()
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in environment.items()}


# Values for the variables docker-compose.yml takes from the shell or .env, as a user sets them.
COMPOSE_INPUTS = {
    "CALLPULSE_TOKENS": entry_for(new_token(), ["read", "ingest"]).line,
    "CALLPULSE_PSEUDONYM_KEY": "a-long-random-key-only-for-this-test-0123456789",
}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, inputs: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` with ``inputs``."""

    def one(match: re.Match[str]) -> str:
        name, mode, rest = match.groups()
        if name in inputs:
            return inputs[name]
        assert mode != "?", f"${{{name}}} is required: {rest}"
        return rest if mode == "-" else ""

    return INTERPOLATION.sub(one, value)


def env_names_anywhere(node: Any) -> set[str]:
    """Every CALLPULSE_* name in the compose file: keys, ``NAME=value`` items, ``${NAME}``."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).startswith(ENV_PREFIX):
                found.add(str(key))
            found |= env_names_anywhere(value)
    elif isinstance(node, list):
        for item in node:
            found |= env_names_anywhere(item)
    elif isinstance(node, str):
        found |= set(re.findall(r"\b(CALLPULSE_[A-Z0-9_]+)\b", node))
    return found


def api_port(service: dict[str, Any]) -> int:
    """The port `callpulse api` listens on in this service: --port, else the setting."""
    argv = service_argv(service)
    for index, arg in enumerate(argv):
        if arg == "--port":
            return int(argv[index + 1])
        if arg.startswith("--port="):
            return int(arg.split("=", 1)[1])
    env = service_env(service)
    return int(env.get("CALLPULSE_API_PORT", Settings.model_fields["api_port"].default))


def api_services() -> list[str]:
    return [name for name in OWN_SERVICES if service_argv(SERVICES[name])[1:2] == ["api"]]


def api_paths() -> set[str]:
    return {route.path for route in health_router.routes}  # type: ignore[attr-defined]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test")
    return test if isinstance(test, str) else " ".join(str(part) for part in test or [])


def short_volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume; long syntax is read too."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), str(volume["target"])))
        else:
            source, _, rest = str(volume).partition(":")
            mounts.append((source, rest.split(":")[0]))
    return mounts


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


# --- the CLI -------------------------------------------------------------------------------


@functools.cache
def cli_help(command: str) -> str:
    """``callpulse COMMAND --help``, run for real; wide and plain so no option is cut."""
    env = {**os.environ, "COLUMNS": "240", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(
        [sys.executable, "-m", "callpulse", command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"callpulse {command} --help failed:\n{result.stderr}"
    return result.stdout


def assert_real_callpulse_command(argv: list[str], where: str) -> None:
    assert argv[:1] == ["callpulse"], f"{where}: runs {argv!r}, not the callpulse CLI"
    assert len(argv) >= 2, f"{where}: `callpulse` without a command only prints help"
    command, args = argv[1], argv[2:]
    help_text = cli_help(command)
    known = set(OPTION.findall(help_text))
    for arg in args:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            assert option in known, f"{where}: `callpulse {command}` has no option {option}"
    # Parse the whole command line as the CLI would (types, values), without running it.
    group = typer.main.get_command(cli)
    group.commands[command].make_context(command, list(args))  # type: ignore[attr-defined]


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_has_the_services_of_the_design() -> None:
    assert {
        "kafka", "worker-1", "worker-2", "api", "prometheus", "alertmanager", "grafana",
        "simulator",
    } <= set(SERVICES)  # fmt: skip
    commands = {name: service_argv(SERVICES[name])[1] for name in OWN_SERVICES}
    assert sorted(commands.values()) == ["api", "simulate", "worker", "worker"], commands


def test_secrets_come_from_the_user_and_are_required() -> None:
    """No token or key is committed, and `docker compose up` stops early without them."""
    for name in OWN_SERVICES:
        env = service_env(SERVICES[name])
        for variable in ("CALLPULSE_TOKENS", "CALLPULSE_PSEUDONYM_KEY"):
            if variable in env:
                assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env[variable]), (
                    f"{name}: {variable} must be ${{{variable}:?...}}, not {env[variable]!r}"
                )
    assert "CALLPULSE_TOKENS" in service_env(SERVICES["api"])
    assert "CALLPULSE_INSECURE" not in env_names_anywhere(COMPOSE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${X:-dflt}", "dflt"),  # unset with a default
        ("a${X}b", "ab"),  # unset without one: empty, as compose does
        ("${CALLPULSE_TOKENS:?set it}", COMPOSE_INPUTS["CALLPULSE_TOKENS"]),  # set by the user
    ],
)
def test_interpolation_follows_compose(value: str, expected: str) -> None:
    assert interpolate(value, COMPOSE_INPUTS) == expected


def test_interpolation_refuses_a_missing_required_value() -> None:
    with pytest.raises(AssertionError, match="required"):
        interpolate("${NOPE:?set NOPE}", {})


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_image_or_a_build(name: str) -> None:
    service = SERVICES[name]
    assert "image" in service or "build" in service, f"{name}: neither image nor build"
    if "build" in service:
        build = service["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"


@pytest.mark.parametrize("name", OWN_SERVICES)
def test_every_callpulse_command_is_a_real_cli_command(name: str) -> None:
    assert_real_callpulse_command(service_argv(SERVICES[name]), f"service {name}")


def test_every_callpulse_variable_is_a_setting() -> None:
    unknown = sorted(env_names_anywhere(COMPOSE) - set(SETTINGS_ENV))
    assert not unknown, f"not fields of callpulse.settings.Settings: {unknown}"


@pytest.mark.parametrize("name", OWN_SERVICES)
def test_every_callpulse_value_is_accepted_by_the_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(variable)
    env = {
        key: interpolate(value, COMPOSE_INPUTS)
        for key, value in service_env(SERVICES[name]).items()
        if key.startswith(ENV_PREFIX)
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    Settings(_env_file=None)  # type: ignore[call-arg]  # raises on a value of the wrong type


def test_callpulse_services_reach_kafka_on_an_advertised_listener() -> None:
    for name in OWN_SERVICES:
        bootstrap = service_env(SERVICES[name]).get("CALLPULSE_KAFKA_BOOTSTRAP")
        assert bootstrap, f"{name}: CALLPULSE_KAFKA_BOOTSTRAP unset (default is localhost)"
        for server in bootstrap.split(","):
            host, _, port = server.rpartition(":")
            assert host in SERVICES, f"{name}: {host} is not a compose service"
            advertised = service_env(SERVICES[host]).get("KAFKA_ADVERTISED_LISTENERS", "")
            assert f"//{host}:{port}" in advertised, (
                f"{name}: {server} is not among {host}'s advertised listeners {advertised!r}"
            )


def test_kafka_is_a_complete_kraft_single_node() -> None:
    env = service_env(SERVICES["kafka"])
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [voter.split("@")[0] for voter in voters] == [env["KAFKA_NODE_ID"]]
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    advertised = {item.split("://")[0] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert listeners <= set(protocols), "a listener without a security protocol"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert advertised <= listeners - {env["KAFKA_CONTROLLER_LISTENER_NAMES"]}
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # One broker: internal topics asking for three replicas would never be created.
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID: base64 UUID"
    data_dir = env["KAFKA_LOG_DIRS"]
    assert any(
        target == data_dir and not is_bind(source)
        for source, target in short_volumes(SERVICES["kafka"])
    ), "log dir not on a volume"


@pytest.mark.parametrize(
    "name", [name for name in sorted(SERVICES) if "profiles" not in SERVICES[name]]
)
def test_healthchecks_are_present(name: str) -> None:
    assert healthcheck_text(SERVICES[name]), f"{name}: no healthcheck"


def test_kafka_healthcheck_uses_a_script_of_the_image() -> None:
    assert re.search(
        r"/opt/kafka/bin/kafka-(broker-api-versions|topics)\.sh --bootstrap-server",
        healthcheck_text(SERVICES["kafka"]),
    )


@pytest.mark.parametrize("name", api_services())
def test_api_healthcheck_asks_the_api_without_curl(name: str) -> None:
    service = SERVICES[name]
    text = healthcheck_text(service)
    assert "curl" not in text and "wget" not in text, "python:3.11-slim has neither"
    match = URL.search(text)
    assert match, f"{name}: no URL in the healthcheck"
    assert int(match.group(2)) == api_port(service)
    assert match.group(3) in api_paths()
    published = [str(port).rsplit(":", 1)[-1] for port in service.get("ports", [])]
    assert str(api_port(service)) in published, f"{name}: API port not published"


def test_depends_on_waits_only_for_services_that_can_become_healthy() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        for target in depends:
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = depends[target].get("condition") if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert healthcheck_text(SERVICES[target]), (
                    f"{name} waits for {target} to be healthy, but it has no healthcheck"
                )


def test_volumes_are_named_or_existing_paths() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for source, _target in short_volumes(service):
            if is_bind(source):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_simulator_runs_only_under_its_profile() -> None:
    for name in OWN_SERVICES:
        if service_argv(SERVICES[name])[1] == "simulate":
            assert "simulator" in SERVICES[name].get("profiles", []), (
                f"{name}: fake traffic must not start with a plain `docker compose up`"
            )


def test_rocksdb_store_only_with_the_rocksdb_extra() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    installs_extra = "rocksdb]" in text or "['rocksdb']" in text
    for name in OWN_SERVICES:
        store = service_env(SERVICES[name]).get("CALLPULSE_STORE", "memory://")
        assert installs_extra or not store.startswith("rocksdb:"), (
            f"{name}: {store} needs the image to install callpulse[rocksdb]"
        )


def compose_spec_schema() -> dict[str, Any] | None:
    """The compose-spec schema vendored by check-jsonschema, found without importing it."""
    try:
        distribution = importlib.metadata.distribution("check-jsonschema")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or []:
        if str(file).endswith("vendor/compose-spec.json"):
            schema: dict[str, Any] = json.loads(
                Path(str(distribution.locate_file(file))).read_text("utf-8")
            )
            return schema
    return None


def test_compose_file_matches_the_compose_spec_schema() -> None:
    schema = compose_spec_schema()
    if schema is None:
        pytest.skip("no compose-spec schema installed (pip install check-jsonschema)")
    errors = sorted(Draft202012Validator(schema).iter_errors(COMPOSE), key=str)
    assert not errors, "\n".join(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors
    )


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_the_api_service() -> None:
    config = load_yaml(PROMETHEUS_FILE)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["callpulse"]
    assert job.get("scrape_interval", config.get("global", {}).get("scrape_interval")) == "5s"
    assert job.get("metrics_path", "/metrics") in api_paths()
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets
    for target in targets:
        host, _, port = target.rpartition(":")
        assert host in api_services(), f"{target}: {host} is not a compose service running the API"
        assert int(port) == api_port(SERVICES[host]), f"{target}: the API listens elsewhere"


def test_prometheus_service_loads_this_config() -> None:
    service = SERVICES["prometheus"]
    assert str(service["image"]).startswith("prom/prometheus")
    wanted = "/etc/prometheus/prometheus.yml"  # the image's --config.file
    mounted = {
        (ROOT / source).resolve(): target
        for source, target in short_volumes(service)
        if is_bind(source)
    }
    assert mounted.get(PROMETHEUS_FILE) == wanted or mounted.get(PROMETHEUS_FILE.parent) == str(
        Path(wanted).parent
    ), mounted
    assert "command" not in service or any(
        f"--config.file={wanted}" in arg for arg in service_argv(service)
    )


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def test_dockerfile_cmd_is_a_real_command_serving_the_api_on_all_interfaces() -> None:
    argv = dockerfile_cmd()
    assert_real_callpulse_command(argv, "Dockerfile CMD")
    assert argv[1] == "api" and "0.0.0.0" in argv


def test_dockerfile_base_and_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_installs_dependencies_before_copying_the_code() -> None:
    keywords = [
        (keyword, args) for keyword, args in dockerfile_instructions() if keyword in {"COPY", "RUN"}
    ]
    copies = [index for index, (keyword, _) in enumerate(keywords) if keyword == "COPY"]
    first, second = copies[0], copies[1]
    assert keywords[first][1].split() == ["pyproject.toml", "./"], "copy pyproject.toml alone"
    assert any("pip install" in args for _, args in keywords[first + 1 : second]), (
        "install the dependencies between copying pyproject.toml and the code"
    )


def test_dockerfile_copies_every_package_and_the_event_schemas() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        pattern.rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    sources = {source.rstrip("/") for source in copy_sources()}
    assert packages <= sources, f"not copied: {packages - sources}"
    # stream.validation reads schemas from a directory beside the package, not package data.
    schemas = validation.DEFAULT_SCHEMAS_DIR.resolve().relative_to(ROOT)
    assert any(schemas.is_relative_to(source) for source in sources), f"{schemas} not copied"
    if not any(schemas.is_relative_to(package) for package in packages):
        runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
        assert any(str(schemas) in args for args in runs), (
            f"a non-editable install does not carry {schemas}: the Dockerfile must place it"
        )
        # ...and the build proves it: the validator loads its schemas in the finished image.
        assert "EventValidator()" in runs[-1], "the last RUN should smoke-test the validator"


def dockerignore_excludes(path: str, patterns: list[str] | None = None) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    if patterns is None:
        lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        patterns = [
            line.strip() for line in lines if line.strip() and not line.strip().startswith("#")
        ]
    prefixes = ["/".join(path.split("/")[: end + 1]) for end in range(path.count("/") + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = ["*", "!api", "**/__pycache__"]
    assert dockerignore_excludes("tests/test_x.py", patterns)
    assert not dockerignore_excludes("api/main.py", patterns)
    assert dockerignore_excludes("api/routes/__pycache__/x.pyc", patterns)


def test_build_context_holds_what_the_dockerfile_copies_and_little_else() -> None:
    for source in copy_sources():
        matches = list(ROOT.glob(source))
        if not any(char in source for char in "*?["):
            assert matches, f"COPY {source}: not in the repository"
        for match in matches:
            files = (
                [match]
                if match.is_file()
                else [
                    file
                    for file in match.rglob("*")
                    if file.is_file() and "__pycache__" not in file.parts
                ]
            )
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                assert not dockerignore_excludes(relative), f".dockerignore drops {relative}"
    for junk in (
        ".git/HEAD",
        "tests/__init__.py",
        ".venv/bin/python",
        ".env",
        "callpulse-data/x",
        "stream/__pycache__/x.pyc",
    ):
        assert dockerignore_excludes(junk), f"{junk} would be sent to the Docker daemon"
