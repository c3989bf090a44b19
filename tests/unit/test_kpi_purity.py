"""The KPI core is pure: importing it pulls in no framework, only the standard library.

Each check runs in a fresh interpreter, so modules other tests imported cannot hide a leak.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import stream.kpi

FORBIDDEN = ("faust", "fastapi", "prometheus_client", "aiokafka", "starlette", "pydantic")
REPO_ROOT = Path(__file__).resolve().parents[2]
CORE_MODULES = sorted(
    f"stream.kpi.{info.name}" for info in pkgutil.iter_modules(stream.kpi.__path__)
)

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()}))
"""


def modules_after_importing(*names: str) -> dict[str, str | None]:
    """Every module loaded in a fresh interpreter after importing ``names``, with its file."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *names],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
    )
    loaded: dict[str, str | None] = json.loads(result.stdout)
    return loaded


def framework_modules(loaded: dict[str, str | None]) -> list[str]:
    return sorted(name for name in loaded if name.split(".")[0] in FORBIDDEN)


def test_the_core_has_the_expected_modules() -> None:
    # If a module is added, it is imported below too; this only guards against an empty list.
    assert {"stream.kpi.accumulator", "stream.kpi.formulas", "stream.kpi.windows"} <= set(
        CORE_MODULES
    )


@pytest.mark.parametrize(
    "names",
    [
        ("stream.kpi",),  # the package alone
        *((name,) for name in CORE_MODULES),  # each module alone, in its own interpreter
        tuple(CORE_MODULES),  # all of them together
    ],
    ids=lambda names: names[0] if len(names) == 1 else "all",
)
def test_importing_the_core_pulls_in_no_framework(names: tuple[str, ...]) -> None:
    assert framework_modules(modules_after_importing(*names)) == []


def test_the_core_imports_only_the_standard_library() -> None:
    # Compared with a bare interpreter, so that what `site` loads (.pth finders) is not counted.
    baseline = modules_after_importing()
    added = {
        name: path
        for name, path in modules_after_importing(*CORE_MODULES).items()
        if name not in baseline
    }
    outside = {
        name
        for name, path in added.items()
        if path is not None  # built-in modules have no file
        and not is_standard_library(path)
        and name.split(".")[0] != "stream"
    }
    assert outside == set()


def is_standard_library(path: str) -> bool:
    resolved = Path(path).resolve()
    roots = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")}
    # In a virtualenv platstdlib is the venv's lib/pythonX.Y, which holds site-packages too.
    return "site-packages" not in resolved.parts and any(
        resolved.is_relative_to(root) for root in roots
    )


def test_the_stdlib_check_tells_a_package_from_the_standard_library() -> None:
    assert is_standard_library(json.__file__)
    assert not is_standard_library(pytest.__file__)


@pytest.mark.parametrize("name", ["stream.records", "stream.processor"])
def test_the_processor_is_pure_of_faust_too(name: str) -> None:
    # stream.processor applies messages to any mapping; the Faust glue lives elsewhere.
    assert framework_modules(modules_after_importing(name)) == []


def test_the_probe_would_see_a_framework() -> None:
    # Guard against a probe that can never fail: a framework imported is a framework seen.
    assert "prometheus_client" in framework_modules(modules_after_importing("prometheus_client"))
