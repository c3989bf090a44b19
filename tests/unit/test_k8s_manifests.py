"""deploy/k8s validated offline: no cluster, no download.

The kustomization is rendered here (namespace, labels, images, ConfigMap and Secret generators:
the features it uses) and, where ``kubectl`` is installed, checked against ``kubectl kustomize``.
Every object is validated against the Kubernetes OpenAPI schemas that ship in the
``kubernetes-validate`` package (strict: unknown fields fail), the ServiceMonitor against the
Prometheus Operator's field list (tests/unit/schemas/). Then what the schemas cannot know: the
commands are real callpulse commands, every variable is a setting with an accepted value, the
names the objects use to find each other exist, and the workers keep RocksDB on their volumes.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

import tests.unit.test_deploy_files as deploy_checks
from api.alerts.config import load_alert_config
from callpulse.queues import load_centre_config
from callpulse.settings import Settings
from callpulse.tokens import entry_for, new_token

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"  # the oldest minor still commonly supported by cloud providers
SERVICE_MONITOR_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "servicemonitor-v1.schema.json").read_text("utf-8")
)
CLUSTER_SCOPED = {"Namespace"}
Object = dict[str, Any]


# --- rendering ----------------------------------------------------------------------------------


def load_documents(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def generated(kind: str, spec: Object) -> Object:
    data: dict[str, str] = {}
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for file in spec.get("files", []):
        data[Path(file).name] = (K8S / file).read_text(encoding="utf-8")
    obj: Object = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if kind == "Secret":
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        return {**obj, "type": "Opaque", "data": encoded}
    return {**obj, "data": data}


def containers(obj: Object) -> list[Object]:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    found: list[Object] = [*pod.get("initContainers", []), *pod.get("containers", [])]
    return found


def render(directory: Path = K8S) -> list[Object]:
    """What `kustomize build` makes of the kustomization, names without the hash suffix."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "images",
             "configMapGenerator", "secretGenerator"}  # fmt: skip
    assert set(spec) <= known, f"render() does not know {set(spec) - known}: extend it"
    objects = [
        doc for resource in spec["resources"] for doc in load_documents(directory / resource)
    ]
    objects += [generated("ConfigMap", item) for item in spec.get("configMapGenerator", [])]
    objects += [generated("Secret", item) for item in spec.get("secretGenerator", [])]
    images = {image["name"]: f"{image['newName']}:{image['newTag']}" for image in spec["images"]}
    for obj in objects:
        metadata = obj["metadata"]
        if obj["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = spec["namespace"]
        for label_set in spec.get("labels", []):
            metadata.setdefault("labels", {}).update(label_set["pairs"])
        for container in containers(obj):
            container["image"] = images.get(container["image"], container["image"])
    return objects


OBJECTS = render()


def one(kind: str, name: str) -> Object:
    matches = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def env_of(container: Object) -> dict[str, str]:
    """The container's environment: envFrom ConfigMaps and Secrets, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            secret = one("Secret", source["secretRef"]["name"])["data"]
            env.update({k: base64.b64decode(v).decode() for k, v in secret.items()})
    env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
    return env


WORKLOADS = [o for o in OBJECTS if o["kind"] in {"Deployment", "StatefulSet"}]
WORKLOAD_IDS = [f"{o['kind']}/{o['metadata']['name']}" for o in WORKLOADS]


# --- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj", [o for o in OBJECTS if o["kind"] != "ServiceMonitor"], ids=lambda o: o["kind"]
)
def test_objects_match_the_kubernetes_schemas(obj: Object) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"replicas": "two"}, "not of type"),  # a wrong type
        ({"replica": 2}, "was unexpected"),  # a misspelt field, caught only in strict mode
    ],
)
def test_the_validator_can_fail(change: Object, error: str) -> None:
    broken = json.loads(json.dumps(one("StatefulSet", "callpulse-worker")))
    broken["spec"].update(change)
    with pytest.raises(kubernetes_validate.ValidationError, match=error):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({}, True),  # as committed
        ({"interval": "5 seconds"}, False),  # not a Prometheus duration
        ({"prot": "http"}, False),  # a misspelt endpoint field
    ],
)
def test_service_monitor_matches_the_operator_fields(change: Object, valid: bool) -> None:
    monitor = json.loads(json.dumps(one("ServiceMonitor", "callpulse-api")))
    monitor["spec"]["endpoints"][0].update(change)
    errors = list(Draft202012Validator(SERVICE_MONITOR_SCHEMA).iter_errors(monitor))
    assert not errors if valid else errors, [e.message for e in errors]


def test_render_agrees_with_kubectl_kustomize() -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not installed: the renderer above is the only check")
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    theirs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def summary(objects: list[Object], strip_hash: bool) -> set[tuple[str, str, str, str]]:
        found = set()
        for obj in objects:
            name = obj["metadata"]["name"]
            if strip_hash and obj["kind"] in {"ConfigMap", "Secret"}:
                name = name.rsplit("-", 1)[0]
            images = ",".join(c["image"] for c in containers(obj))
            found.add((obj["kind"], name, obj["metadata"].get("namespace", ""), images))
        return found

    assert summary(theirs, strip_hash=True) == summary(OBJECTS, strip_hash=False)


# --- what the schemas cannot see -----------------------------------------------------------------


@pytest.mark.parametrize("workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_commands_are_real_callpulse_commands(workload: Object) -> None:
    for container in containers(workload):
        deploy_checks.assert_real_callpulse_command(container["command"], container["name"])


@pytest.mark.parametrize("workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_environment_is_settings_with_accepted_values(
    workload: Object, monkeypatch: pytest.MonkeyPatch
) -> None:
    for container in containers(workload):
        env = env_of(container)
        unknown = sorted(set(env) - set(deploy_checks.SETTINGS_ENV))
        assert not unknown, f"not settings: {unknown}"
        # The base's secrets are empty on purpose; an overlay sets real ones.
        assert env["CALLPULSE_TOKENS"] == "" and env["CALLPULSE_PSEUDONYM_KEY"] == ""
        env["CALLPULSE_TOKENS"] = entry_for(new_token(), ["read"]).line
        env["CALLPULSE_PSEUDONYM_KEY"] = "k" * 40
        for name in [key for key in deploy_checks.os.environ if key.startswith("CALLPULSE_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        Settings(_env_file=None)  # type: ignore[call-arg]  # raises on a wrong value


@pytest.mark.parametrize("workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_queue_file_is_mounted_where_the_setting_points(workload: Object) -> None:
    pod = workload["spec"]["template"]["spec"]
    for container in containers(workload):
        path = Path(env_of(container)["CALLPULSE_QUEUES_CONFIG"])
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        config_map = one("ConfigMap", volume["configMap"]["name"])
        assert path.name in config_map["data"], f"{path.name} not in {volume['configMap']}"


def test_queue_file_is_a_valid_configuration() -> None:
    centre = load_centre_config(K8S / "queues.yml")  # raises ConfigError naming the key
    load_alert_config(K8S / "queues.yml", centre)


@pytest.mark.parametrize("workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_selectors_match_their_pods(workload: Object) -> None:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    for kind in ("Service", "PodDisruptionBudget"):
        for other in [o for o in OBJECTS if o["kind"] == kind]:
            chosen = other["spec"]["selector"]
            chosen = chosen.get("matchLabels", chosen)
            if chosen.items() <= labels.items():
                break
        else:
            raise AssertionError(f"no {kind} selects {workload['metadata']['name']}")


def test_workers_keep_rocksdb_on_their_own_volumes() -> None:
    worker = one("StatefulSet", "callpulse-worker")
    (container,) = containers(worker)
    env = env_of(container)
    assert env["CALLPULSE_STORE"].startswith("rocksdb:")
    # Faust keeps its data directory in the working directory: the image's last WORKDIR.
    workdirs = [a for k, a in deploy_checks.dockerfile_instructions() if k == "WORKDIR"]
    claims = {c["metadata"]["name"] for c in worker["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(workdirs[-1]) in claims, f"{workdirs[-1]} is not on a persistent volume"
    # The image installs the rocksdb extra, and the volume is writable by the image's user.
    assert "['rocksdb']" in deploy_checks.DOCKERFILE.read_text(encoding="utf-8")
    users = [a for k, a in deploy_checks.dockerfile_instructions() if k == "USER"]
    pod_security = worker["spec"]["template"]["spec"]["securityContext"]
    assert str(pod_security["runAsUser"]) == users[-1].split(":")[0]
    assert str(pod_security["fsGroup"]) == users[-1].split(":")[1]
    # A worker beyond the partition count has nothing to do.
    assert worker["spec"]["replicas"] <= int(env["CALLPULSE_PARTITIONS"])
    assert worker["spec"]["serviceName"] == one("Service", "callpulse-worker")["metadata"]["name"]


def test_api_probes_service_autoscaler_and_monitor_fit_together() -> None:
    api = one("Deployment", "callpulse-api")
    (container,) = containers(api)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == deploy_checks.api_port({"command": container["command"]})
    routes = deploy_checks.api_paths()
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        action = container[probe]["httpGet"]
        assert action["path"] in routes and action["port"] in ports, probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # view recovered
    service = one("Service", "callpulse-api")
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert service_ports["http"]["targetPort"] in ports
    autoscaler = one("HorizontalPodAutoscaler", "callpulse-api")
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "callpulse-api")
    assert 2 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    assert container["resources"]["requests"]["cpu"], "a CPU target needs a CPU request"
    monitor = one("ServiceMonitor", "callpulse-api")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports and endpoint["path"] in routes


def test_every_referenced_config_map_and_secret_exists() -> None:
    for workload in WORKLOADS:
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                one("ConfigMap", volume["configMap"]["name"])
        for container in containers(workload):
            env_of(container)  # looks every envFrom source up
