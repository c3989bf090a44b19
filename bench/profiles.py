"""Reading py-spy's collapsed stacks: where a worker's CPU time goes, in named buckets.

``py-spy record --format raw --full-filenames`` writes one line per distinct stack:
``frame;frame;...;frame count``, outermost frame first, each frame ``function (path:line)``.
Idle samples (the event loop waiting in ``select``) are left out by py-spy unless asked, so the
percentages here are shares of the CPU time the worker really used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    path: str

    @property
    def package(self) -> str:
        return package_of(self.path)


@dataclass(frozen=True, slots=True)
class Sample:
    frames: tuple[Frame, ...]  # outermost first
    count: int


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "")
    return Frame(match["function"], match["path"])


def parse_collapsed(text: str) -> list[Sample]:
    samples: list[Sample] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples.append(Sample(tuple(parse_frame(f) for f in stack.split(";")), int(count)))
    return samples


def package_of(path: str) -> str:
    """``faust``, ``aiokafka``, ``asyncio``, ``stream`` or ``stream/kpi``... for a file path."""
    parts = path.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    for ours in ("stream", "api", "callpulse", "bench"):
        if ours in parts:
            index = len(parts) - 1 - parts[::-1].index(ours)
            nested = parts[index + 1 : -1]
            return f"{ours}/{nested[0]}" if nested else ours
    python = next((i for i, part in enumerate(parts) if re.fullmatch(r"python3\.\d+", part)), None)
    if python is not None and python + 1 < len(parts):
        return parts[python + 1].removesuffix(".py")
    return path or "?"


def total(samples: Iterable[Sample]) -> int:
    return sum(sample.count for sample in samples)


def self_shares(samples: Sequence[Sample]) -> list[tuple[str, float]]:
    """Share of samples whose innermost frame is in each package, largest first."""
    counts: dict[str, int] = {}
    for sample in samples:
        package = sample.frames[-1].package if sample.frames else "?"
        counts[package] = counts.get(package, 0) + sample.count
    return _shares(counts, total(samples))


@dataclass(frozen=True, slots=True)
class Bucket:
    """A named part of the hot path: a sample is in it when any frame matches ``pattern``
    (``function`` or ``path:function``, a regular expression searched in ``path:function``)."""

    name: str
    pattern: str


def inclusive_shares(
    samples: Sequence[Sample], buckets: Sequence[Bucket]
) -> list[tuple[str, float]]:
    """Share of samples inside each bucket (buckets may nest, so shares can add past 100 %)."""
    counts = {bucket.name: 0 for bucket in buckets}
    compiled = [(bucket.name, re.compile(bucket.pattern)) for bucket in buckets]
    for sample in samples:
        keys = [f"{f.path}:{f.function}" for f in sample.frames]
        for name, regex in compiled:
            if any(regex.search(key) for key in keys):
                counts[name] += sample.count
    return _shares(counts, total(samples), keep_order=True)


def top_functions(samples: Sequence[Sample], limit: int = 15) -> list[tuple[str, float]]:
    """The functions with the most self time, as ``package:function``."""
    counts: dict[str, int] = {}
    for sample in samples:
        if sample.frames:
            leaf = sample.frames[-1]
            name = f"{leaf.package}:{leaf.function}"
            counts[name] = counts.get(name, 0) + sample.count
    return _shares(counts, total(samples))[:limit]


def _shares(
    counts: dict[str, int], whole: int, *, keep_order: bool = False
) -> list[tuple[str, float]]:
    if whole == 0:
        return [(name, 0.0) for name in counts]
    items = list(counts.items())
    if not keep_order:
        items.sort(key=lambda item: (-item[1], item[0]))
    return [(name, 100.0 * count / whole) for name, count in items]


def format_shares(title: str, shares: Sequence[tuple[str, float]]) -> str:
    lines = [f"{title}:"]
    lines += [f"  {share:5.1f} %  {name}" for name, share in shares]
    return "\n".join(lines)
