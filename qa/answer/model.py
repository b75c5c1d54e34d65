"""The fitted answerability artifact: a logistic regression over `FEATURES`, its threshold, and the follow-up decision.

`make train` (`python -m qa.answer.train`) rebuilds `answerability.json` from the fitting data
only; its sha256 is checked before use, as the bundled model's is, so an edited or stale file is
refused with the command that rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ConfigError

ARTIFACT = Path(__file__).with_name("answerability.json")
ARTIFACT_SHA256 = "a0e9310eac64d5338bed38dc31d2ce844a7333441c1d851055ed885437190acf"


@dataclass(frozen=True)
class Logistic:
    """A standardised logistic regression: p = sigmoid(((x - mean) / scale) · coef + intercept)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Logistic:
        return cls(
            features=tuple(data["features"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "coef": [round(float(v), 6) for v in self.coef],
            "intercept": round(float(self.intercept), 6),
        }

    def predict(self, rows: np.ndarray) -> np.ndarray:
        z = ((rows - self.mean) / self.scale) @ self.coef + self.intercept
        probability: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        return probability


@dataclass(frozen=True)
class Artifact:
    """What `make train` fitted: the sentence scorer, its abstention threshold, the runner-up's floor, and the follow-up decision."""

    answer: Logistic
    threshold: float
    second_floor: float
    follow_up: Logistic
    follow_up_threshold: float
    meta: dict[str, Any]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=4)
def load_artifact(path: Path = ARTIFACT, expected: str | None = None) -> Artifact:
    """Read and check the artifact; a missing, altered or mismatched one is a ConfigError saying how to rebuild it."""
    expected = ARTIFACT_SHA256 if expected is None else expected
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"The answerability model {path} is missing ({exc.strerror}). Run `make train` to build it.") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise ConfigError(
            f"The answerability model {path} has sha256 {digest[:12]}…, expected {expected[:12]}…; "
            "it was changed or rebuilt differently. Restore it from git or run `make train`."
        )
    data = json.loads(raw)
    artifact = Artifact(
        answer=Logistic.from_dict(data["answer"]),
        threshold=float(data["threshold"]),
        second_floor=float(data["second_floor"]),
        follow_up=Logistic.from_dict(data["follow_up"]),
        follow_up_threshold=float(data["follow_up_threshold"]),
        meta=data.get("meta", {}),
    )
    return artifact


def require_features(model: Logistic, features: Sequence[str], path: Path = ARTIFACT) -> Logistic:
    """`model`, if it was fitted on exactly these features (the caller computes them); else a ConfigError saying to rebuild."""
    if list(model.features) != list(features):
        raise ConfigError(f"The answerability model {path} was fitted on other features than this code computes. Run `make train`.")
    return model
