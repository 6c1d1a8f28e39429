"""One way for tests to write a study config: a shipped config with outputs in a tmp folder."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_study_config(
    folder: Path, name: str = "test", root: Path = REPO_ROOT, base: str = "demo", **sections
):
    """Write ``folder/configs/<name>.yaml`` and load it.

    The config is ``configs/<base>.yaml`` (the demo by default) with its data/results/figures/cache roots inside
    ``folder`` (tests never touch the repository's outputs), stand-ins from the repository's
    ``.cache/standins`` (built once per session) and the project root ``root`` (the registry is
    read from ``root/configs``).  ``sections`` are merged into the YAML sections
    (``generation={"n_images": 1}``), nested mappings too (``collection={"http": {"max_retries": 0}}``);
    a non-mapping value replaces the key.
    """
    from iconicity_utils.config.study import load_config, merge_sections

    data = yaml.safe_load((REPO_ROOT / "configs" / f"{base}.yaml").read_text())
    data["name"] = name
    data["paths"] = {
        "data": str(folder / "data"),
        "results": str(folder / "results"),
        "figures": str(folder / "figures"),
        "cache": str(folder / "cache"),
        "standins": str(REPO_ROOT / ".cache" / "standins"),
        "root": str(root),
    }
    data["collection"]["snapshot"] = str(REPO_ROOT / data["collection"]["snapshot"])
    data = merge_sections(data, sections)
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    path = folder / "configs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)
