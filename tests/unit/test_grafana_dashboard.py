"""The Grafana dashboard JSON is exactly what deploy/grafana/dashboard.py generates, and it fits
the provisioning beside it. (tests/integration/test_grafana_queries.py runs its queries.)"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
PROVISIONING = GRAFANA / "provisioning"


def load_generator() -> ModuleType:
    """deploy/ is not a package: load the generator from its file."""
    spec = importlib.util.spec_from_file_location("callpulse_dashboard", GRAFANA / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
DASHBOARD: dict[str, Any] = json.loads(GENERATOR.OUTPUT.read_text(encoding="utf-8"))
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def test_committed_json_is_what_the_generator_makes() -> None:
    assert GENERATOR.OUTPUT.read_text(encoding="utf-8") == GENERATOR.render(), (
        "deploy/grafana/dashboards/callpulse.json is stale: run python deploy/grafana/dashboard.py"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "callpulse.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(GENERATOR, "OUTPUT", stale)
    assert GENERATOR.main(["--check"]) == 1
    assert GENERATOR.main([]) == 0  # regenerating fixes it
    assert GENERATOR.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("section", "panel_titles"),
    [
        ("Queues now", {"Calls waiting", "Service level ($window)", "Agents available"}),
        ("Service level and abandonment", {"Service level against target ($window window)"}),
        ("Traffic and waits", {"Wait before answer (quantiles)", "Calls per minute"}),
        ("Agents", {"Agents by state"}),
        ("Pipeline health", {"Events processed per second", "Consumer lag and API targets"}),
    ],
)
def test_each_section_the_issue_asks_for_is_there(section: str, panel_titles: set[str]) -> None:
    sections: dict[str, set[str]] = {}
    current = ""
    for panel in DASHBOARD["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
        else:
            sections.setdefault(current, set()).add(panel["title"])
    assert panel_titles <= sections.get(section, set()), sections


def test_panels_have_unique_ids_queries_and_no_overlap() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in PANELS:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_variables_used_are_defined() -> None:
    defined = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    used: set[str] = set()
    for panel in PANELS:
        text = panel["title"] + " ".join(target["expr"] for target in panel["targets"])
        used |= set(re.findall(r"\$(?!__)(\w+)", text))
    assert used <= defined, used - defined


def test_provisioned_datasource_is_the_dashboards_default() -> None:
    datasources = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    uids = {source["uid"] for source in datasources if source["type"] == "prometheus"}
    variable = next(v for v in DASHBOARD["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] in uids


def test_dashboard_provider_reads_a_directory() -> None:
    providers = yaml.safe_load(
        (PROVISIONING / "dashboards" / "callpulse.yml").read_text(encoding="utf-8")
    )["providers"]
    assert [provider["type"] for provider in providers] == ["file"]
    assert providers[0]["options"]["path"].startswith("/")
