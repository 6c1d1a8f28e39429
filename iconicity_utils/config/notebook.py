"""Helpers for the numbered notebooks: load the config, show the stand-in banner.

Notebooks stay thin: the first code cell (tagged ``parameters``) names the config, then
``cfg = notebook.setup(config)`` loads it.  A relative config path is looked up from the current
folder first, then from the project root, so a notebook opened in ``notebooks/`` and one run by
papermill from the root both find ``configs/demo.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from iconicity_utils.config import StudyConfig, load_config
from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.registry import PROJECT_ROOT, is_standin_config

__all__ = ["setup", "resolve_config_path"]


def resolve_config_path(config: str | Path) -> Path:
    path = Path(config)
    if path.is_absolute() or path.exists():
        return path
    candidate = PROJECT_ROOT / path
    if candidate.exists():
        return candidate
    raise FileNotFoundError(f"study config not found: {config} (looked in {Path.cwd()} and {PROJECT_ROOT})")


def setup(config: str | Path, **overrides: dict) -> StudyConfig:
    """Load the study config for a notebook, apply section overrides, set the figure style."""
    from iconicity_utils.core.plotting import set_style

    cfg = load_config(resolve_config_path(config))
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    set_style()
    banner = f"config: {cfg.name} ({cfg.source})"
    if is_standin_config(cfg):
        banner += f"\n*** {STANDIN_LABEL} ***"
    print(banner)
    return cfg
