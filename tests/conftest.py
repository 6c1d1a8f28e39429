"""Shared fixtures: the repository root, the demo config, built stand-ins, tmp study configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_configs import write_study_config

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
    from iconicity_utils.demo.standins import build_for_config

    return build_for_config(demo_cfg)


@pytest.fixture
def make_config(tmp_path):
    """Write a study config with its outputs inside ``tmp_path`` and load it.

    See :func:`study_configs.write_study_config`; keyword arguments are merged into the config's
    sections, e.g. ``make_config(generation={"n_images": 1})``.
    """

    def _make(name: str = "test", **sections):
        return write_study_config(tmp_path, name, **sections)

    return _make
