"""Where the results came from: model sources (with trust_remote_code flagged), the perturber, seeds, data
settings and sizes, library versions, the summary's metadata, run times, and the config as run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.parquet_io import read_metadata
from .load import load_benchmarks

SOURCE_KEYS = ("path", "gguf", "repo", "hf_id", "name_or_path", "url")


def _plain(value: Any) -> Any:
    """A JSON-safe plain copy (dict subclasses such as Snakemake's config become dicts)."""
    return json.loads(json.dumps(value, default=str))


def config_text(config: Mapping[str, Any]) -> str:
    """The config as YAML (JSON when PyYAML is missing)."""
    plain = _plain(dict(config))
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with Snakemake
        return json.dumps(plain, indent=2)
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


def _find_seeds(value: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, sub in value.items():
            name = f"{prefix}{key}"
            if "seed" in str(key).lower() and not isinstance(sub, Mapping):
                found[name] = sub
            else:
                found.update(_find_seeds(sub, name + "."))
    return found


def short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_plain(value), sort_keys=True)


def model_sources(config: Mapping[str, Any]) -> pd.DataFrame:
    """``model, source, options, trust_remote_code`` for every model in ``config['models']``."""
    rows = []
    for name, entry in (config.get("models") or {}).items():
        if isinstance(entry, Mapping):
            key = next((k for k in SOURCE_KEYS if k in entry), None)
            source = f"{key}: {short(entry[key])}" if key else "(not given)"
            options = ", ".join(f"{k}={short(v)}" for k, v in entry.items() if k not in (key, "trust_remote_code"))
            trust = entry.get("trust_remote_code") is True
        else:
            source, options, trust = short(entry), "", False
        rows.append({"model": str(name), "source": source, "options": options, "trust_remote_code": trust})
    return pd.DataFrame(rows, columns=["model", "source", "options", "trust_remote_code"])


@dataclass
class Provenance:
    models: pd.DataFrame
    perturber: dict[str, str]
    perturber_trusts_code: bool
    seeds: dict[str, Any]
    data: dict[str, str]
    data_sizes: dict[str, int]
    versions: dict[str, str]
    meta: dict[str, str]
    runtimes: pd.DataFrame
    config_text: str

    def trusted_code_warning(self) -> str:
        """One line naming every model (and the perturber) run with ``trust_remote_code: true``; empty if none."""
        names = list(self.models.loc[self.models["trust_remote_code"].astype(bool), "model"])
        if self.perturber_trusts_code:
            names.append("perturber")
        if not names:
            return ""
        return f"trust_remote_code: true for {', '.join(names)}: code from the model repository was executed."


def collect_provenance(
    config: Mapping[str, Any], summary: Path, benchmarks: Mapping[str, Path], data_sizes: Mapping[str, int] | None
) -> Provenance:
    meta = read_metadata(summary)
    versions = meta.get("versions") if isinstance(meta.get("versions"), Mapping) else {}
    perturb = config.get("perturb") or {}
    perturb = perturb if isinstance(perturb, Mapping) else {"model": perturb}
    data = config.get("data") or {}
    data = data if isinstance(data, Mapping) else {"data": data}
    seeds = _find_seeds(config)
    if "seed" in meta and meta["seed"] is not None:
        seeds.setdefault("(summary.parquet seed)", meta["seed"])
    return Provenance(
        models=model_sources(config),
        perturber={str(k): short(v) for k, v in perturb.items()},
        perturber_trusts_code=perturb.get("trust_remote_code") is True,
        seeds=seeds,
        data={str(k): short(v) for k, v in data.items()},
        data_sizes={str(k): int(v) for k, v in (data_sizes or {}).items()},
        versions={str(k): str(v) for k, v in versions.items()},
        meta={k: short(meta[k]) for k in ("stage", "config_hash") if k in meta},
        runtimes=load_benchmarks(benchmarks),
        config_text=config_text(config),
    )
