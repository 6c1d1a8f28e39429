"""Shared fixtures: the repository root, the demo config, built stand-ins, tmp study configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_cfg():
    from iconicity_utils.config import load_config

    return load_config(REPO_ROOT / "configs" / "demo.yaml")


@pytest.fixture(scope="session")
def standins(demo_cfg):
    """Build (idempotently) every stand-in the demo config uses; returns their folders."""
    from iconicity_utils.standins import build_for_config

    return build_for_config(demo_cfg)


@pytest.fixture
def make_config(tmp_path):
    """Write a study config into ``tmp_path/configs/`` and load it.

    The config is the demo config with its data/results/figures/cache roots inside ``tmp_path``
    (so tests never touch the repository's outputs) and stand-ins taken from the repository's
    ``.cache/standins`` (built once per session).  Keyword arguments replace whole sections or
    top-level keys, e.g. ``make_config(generation={"n_images": 1})`` (merged into the section).
    """
    from iconicity_utils.config import load_config

    def _make(name: str = "test", **overrides):
        data = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())
        data["name"] = name
        data["paths"] = {
            "data": str(tmp_path / "data"),
            "results": str(tmp_path / "results"),
            "figures": str(tmp_path / "figures"),
            "cache": str(tmp_path / "cache"),
            "standins": str(REPO_ROOT / ".cache" / "standins"),
            "root": str(REPO_ROOT),
        }
        if data.get("collection", {}).get("snapshot"):
            data["collection"]["snapshot"] = str(REPO_ROOT / data["collection"]["snapshot"])
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        cfg_dir = tmp_path / "configs"
        cfg_dir.mkdir(exist_ok=True)
        path = cfg_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_config(path)

    return _make
