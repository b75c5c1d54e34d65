"""The quality floors `make test` gates on, read from one file (`eval/floors.json`).

The Makefile runs `qa eval --gate NAME`, `tests/test_seed_quality.py` checks the same floors with the
same metrics, and a test holds the README's statement of them to this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import ConfigError
from qa.metrics import NUMERIC
from qa.settings import PROJECT_ROOT

FLOORS_FILE = PROJECT_ROOT / "eval" / "floors.json"


@dataclass(frozen=True)
class Gate:
    """One gate: a gold set (and split) and the bounds its summary must hold."""

    name: str
    gold: Path
    split: str | None = None
    floors: dict[str, float] = field(default_factory=dict)  # metric >= value
    ceilings: dict[str, float] = field(default_factory=dict)  # metric <= value

    def describe(self) -> str:
        """`answer_contains ≥ 0.96, false_abstain_rate ≤ 0.04`: how the README states the bounds."""
        return ", ".join([f"{m} ≥ {v:g}" for m, v in self.floors.items()] + [f"{m} ≤ {v:g}" for m, v in self.ceilings.items()])


def load_gates(path: Path = FLOORS_FILE) -> dict[str, Gate]:
    """Every gate of the floors file, by name; a malformed file is a ConfigError naming what to fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read the quality floors in {path} ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object of gates.")
    return {name: _gate(name, spec, path) for name, spec in data.items() if name != "about"}


def load_gate(name: str, path: Path = FLOORS_FILE) -> Gate:
    gates = load_gates(path)
    if name not in gates:
        raise ConfigError(f"No gate {name!r} in {path}: use one of {', '.join(gates) or 'none'}.")
    return gates[name]


def _gate(name: str, spec: Any, path: Path) -> Gate:
    if not isinstance(spec, dict) or not isinstance(spec.get("gold"), str):
        raise ConfigError(f"{path}: gate {name!r} needs a `gold` path.")
    bounds: list[dict[str, float]] = []
    for key in ("min", "max"):
        values = spec.get(key) or {}
        if not isinstance(values, dict) or any(m not in NUMERIC or not isinstance(v, (int, float)) for m, v in values.items()):
            raise ConfigError(f"{path}: gate {name!r} `{key}` must map metrics ({', '.join(NUMERIC)}) to numbers.")
        bounds.append({m: float(v) for m, v in values.items()})
    gold = Path(spec["gold"])
    return Gate(name=name, gold=gold if gold.is_absolute() else PROJECT_ROOT / gold, split=spec.get("split"),
                floors=bounds[0], ceilings=bounds[1])
