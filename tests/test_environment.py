"""pyproject.toml and environment.yml must agree, and pin torch/torchvision together."""

from __future__ import annotations

import tomllib
import yaml
from packaging.requirements import Requirement


def _norm(req: str) -> tuple[str, str]:
    r = Requirement(req)
    return r.name.lower().replace("_", "-"), str(r.specifier)


def _pyproject(repo_root):
    data = tomllib.loads((repo_root / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    reqs = data["project"]["dependencies"] + extras["demo"] + extras["dev"]
    return {_norm(r) for r in reqs}


def _environment(repo_root):
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_norm(r) for r in pip if not r.startswith("-")}, env


def test_environment_yml_agrees_with_pyproject(repo_root):
    env_reqs, env = _environment(repo_root)
    py_reqs = _pyproject(repo_root)
    assert env_reqs - py_reqs == set(), "in environment.yml but not pyproject.toml"
    assert py_reqs - env_reqs == set(), "in pyproject.toml but not environment.yml"
    assert "--editable ." in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def test_torch_pair_is_pinned(repo_root):
    reqs = dict(_pyproject(repo_root))
    assert reqs["torch"] == "==2.14.1"
    assert reqs["torchvision"] == "==0.29.1"


def test_python_floor_agrees(repo_root):
    data = tomllib.loads((repo_root / "pyproject.toml").read_text())
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert Requirement("python" + data["project"]["requires-python"]).specifier.contains(py.split("=")[1])


def test_demo_only_packages_are_not_runtime_dependencies(repo_root):
    """The science package runs without the demo's endpoint and the benchmarks' baseline."""
    data = tomllib.loads((repo_root / "pyproject.toml").read_text())
    runtime = {_norm(r)[0] for r in data["project"]["dependencies"]}
    assert not runtime & {"oxigraph", "pyoxigraph", "duckdb"}
    assert {_norm(r)[0] for r in data["project"]["optional-dependencies"]["demo"]} == {
        "oxigraph",
        "pyoxigraph",
    }
