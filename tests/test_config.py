"""Config validation: bad configs fail with errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iconicity_utils.config import ConfigError, load_config


def _write(tmp_path, repo_root, mutate):
    data = yaml.safe_load((repo_root / "configs" / "demo.yaml").read_text())
    mutate(data)
    data.setdefault("paths", {})["root"] = str(repo_root)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_shipped_configs_load(repo_root, name):
    cfg = load_config(repo_root / "configs" / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.thresholds.tau_cra_static == 0.70
    assert cfg.thresholds.tau_cra_dynamic == 0.75
    assert cfg.thresholds.tau_reuse == 0.60
    assert cfg.realization.grid == (4, 4)
    assert cfg.root == repo_root


def test_paper_config_names_the_five_models_and_paper_encoders(repo_root):
    cfg = load_config(repo_root / "configs" / "paper.yaml")
    assert cfg.models == ["sd15", "sd21", "sdxl", "sd35-medium", "flux1-schnell"]
    assert cfg.collection.endpoint == "https://query.wikidata.org/sparql"
    text = (repo_root / "configs" / "paper.yaml").read_text()
    assert "OUR choice" in text  # the model list is ours, and the file says so


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d["thresholds"].update(tau_reuse=1.5), "thresholds.tau_reuse", "outside [0.0, 1.0]"),
        (lambda d: d["thresholds"].update(tau_cra_static=-0.1), "thresholds.tau_cra_static", "outside"),
        (
            lambda d: d["thresholds"].update(tau_cra_dynamic="high"),
            "thresholds.tau_cra_dynamic",
            "expected float",
        ),
        (lambda d: d["thresholds"].update(comparison="=>"), "thresholds.comparison", "expected one of"),
        (lambda d: d["generation"].update(n_images=0), "generation.n_images", "outside"),
        (lambda d: d["generation"].update(n_images=2.5), "generation.n_images", "expected int"),
        (lambda d: d["generation"].update(n_images=True), "generation.n_images", "expected int"),
        (lambda d: d["generation"].update(colour=1), "generation.colour", "unknown key"),
        (lambda d: d["realization"].update(grid=[4]), "realization.grid", "list of 2 items"),
        (lambda d: d["realization"].update(cells="patches"), "realization.cells", "expected one of"),
        (lambda d: d.update(models=["tiny-sd-a", "nope"]), "models[1]", "unknown model 'nope'"),
        (lambda d: d["encoders"].update(realization="dino-xl"), "encoders.realization", "unknown encoder"),
        (lambda d: d.pop("models"), "models", "required key is missing"),
        (lambda d: d.update(models="tiny-sd-a"), "models", "expected a list"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path, repo_root, mutate, key, problem):
    path = _write(tmp_path, repo_root, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml.*not valid YAML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml")


def test_overrides_are_validated_too(demo_cfg):
    cfg = demo_cfg.with_overrides(generation={"n_images": 5})
    assert cfg.generation.n_images == 5 and demo_cfg.generation.n_images == 4
    with pytest.raises(ConfigError, match="thresholds.tau_reuse"):
        demo_cfg.with_overrides(thresholds={"tau_reuse": 2})


def test_layout_paths(demo_cfg, repo_root):
    assert demo_cfg.references_table == repo_root / "data/demo/processed/references.parquet"
    p = demo_cfg.generated_path("tiny-sd-a", "title", "the_starry_night", 3)
    assert demo_cfg.relative(p) == "data/demo/generated/tiny-sd-a/title/the_starry_night/3.png"
    assert demo_cfg.absolute(demo_cfg.relative(p)) == p
    assert demo_cfg.tau_cra("static") == 0.70 and demo_cfg.tau_cra("dynamic") == 0.75
    with pytest.raises(ValueError, match="unknown reference kind"):
        demo_cfg.tau_cra("moving")


def test_paper_constants_are_the_defaults_and_not_repeated_in_the_configs(repo_root, demo_cfg):
    from iconicity_utils.config.sections import CollectionConfig, RealizationConfig, Thresholds
    from iconicity_utils.core import constants

    assert Thresholds().tau_cra_static == constants.TAU_CRA["static"]
    assert Thresholds().tau_cra_dynamic == constants.TAU_CRA["dynamic"]
    assert Thresholds().tau_reuse == constants.TAU_REUSE
    assert Thresholds().comparison in constants.COMPARISONS
    r = RealizationConfig()
    assert (r.grid, r.k_gen, r.cells, r.pool) == (constants.GRID, constants.K_GEN, "crop", "mean_all")
    assert CollectionConfig().phash_threshold == constants.PHASH_MAX_DISTANCE
    for name in ("demo", "paper"):
        data = yaml.safe_load((repo_root / "configs" / f"{name}.yaml").read_text())
        assert not {"tau_cra_static", "tau_cra_dynamic", "tau_reuse"} & set(data["thresholds"]), name
        assert not {"grid", "k_gen"} & set(data["realization"]), name
        assert "phash_threshold" not in data["collection"], name
    assert demo_cfg.realization.k_gen == 50 and demo_cfg.collection.phash_threshold == 18
    for kind in constants.KINDS:
        assert demo_cfg.tau_cra(kind) == constants.TAU_CRA[kind]


def test_sections_are_frozen_and_strict(demo_cfg):
    from pydantic import ValidationError

    from iconicity_utils.config.sections import RealizationConfig, RetryPolicy, Thresholds

    with pytest.raises(ValidationError):
        demo_cfg.thresholds.tau_reuse = 0.5
    with pytest.raises(ValidationError):
        RealizationConfig(k_gen=True)
    with pytest.raises(ValidationError):
        RealizationConfig(k_gen=50.0)
    assert Thresholds(tau_reuse=1).tau_reuse == 1.0 and isinstance(Thresholds(tau_reuse=1).tau_reuse, float)
    assert isinstance(demo_cfg.generation.variants, list) and demo_cfg.realization.grid == (4, 4)
    assert RetryPolicy(user_agent="me/0.1 (me@example.org)").max_retries == 5


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (
            lambda d: d["collection"]["http"].update(user_agent="  "),
            "collection.http.user_agent",
            "User-Agent",
        ),
        (lambda d: d["collection"]["http"].update(timeout_s=0), "collection.http.timeout_s", "outside > 0"),
        (lambda d: d["collection"]["http"].update(max_retries=-1), "collection.http.max_retries", "outside"),
        (
            lambda d: d["collection"]["http"].update(backoff_base_s=-1),
            "collection.http.backoff_base_s",
            "outside",
        ),
        (
            lambda d: d["collection"]["http"].update(backoff_cap_s=-1.0),
            "collection.http.backoff_cap_s",
            "outside",
        ),
        (
            lambda d: d["collection"].update(max_retries=1),
            "collection.max_retries",
            "key of 'collection.http'",
        ),
        (
            lambda d: d["collection"].update(phash_threshold=65),
            "collection.phash_threshold",
            "outside [0, 64]",
        ),
        (lambda d: d["collection"].update(snapshot=None), "collection.snapshot", "needs a snapshot"),
        (lambda d: d["encoders"].update(precision="fp16"), "encoders.precision", "needs a CUDA device"),
        (lambda d: d["realization"].update(grid=[0, 4]), "realization.grid[0]", "outside >= 1"),
        (lambda d: d["generation"].update(num_threads="4"), "generation.num_threads", "expected int or null"),
        (lambda d: d.update(models=["tiny-sd-a", "tiny-sd-a"]), "models", "duplicate model ids"),
        (lambda d: d.update(models=[]), "models", "at least one diffusion model"),
        (lambda d: d.update(thresholds=0.7), "thresholds", "expected a mapping"),
    ],
)
def test_more_bad_configs_name_key_and_file(tmp_path, repo_root, mutate, key, problem):
    path = _write(tmp_path, repo_root, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert str(path) in str(info.value)
    assert problem in info.value.problem


def test_overrides_merge_nested_sections_and_keep_the_source(demo_cfg):
    cfg = demo_cfg.with_overrides(collection={"http": {"max_retries": 0}}, realization={"grid": [2, 2]})
    assert cfg.collection.http.max_retries == 0 and cfg.realization.grid == (2, 2)
    assert cfg.collection.http.backoff_cap_s == demo_cfg.collection.http.backoff_cap_s
    assert cfg.source == demo_cfg.source and cfg.root == demo_cfg.root
    assert demo_cfg.collection.http.max_retries == 3  # the original is unchanged
    with pytest.raises(ConfigError, match="collection.http.timeout_s"):
        demo_cfg.with_overrides(collection={"http": {"timeout_s": -1}})


def test_section_dump_is_json_ready(demo_cfg):
    import json

    dumped = demo_cfg.section_dump("thresholds", "realization")
    assert set(dumped) == {"thresholds", "realization"}
    assert dumped["realization"]["grid"] == [4, 4] and dumped["thresholds"]["tau_reuse"] == 0.60
    json.dumps(demo_cfg.section_dump())
    with pytest.raises(KeyError, match="nope"):
        demo_cfg.section_dump("nope")


@pytest.mark.parametrize(
    "key", ["batch_size", "num_workers", "on_bad_image", "cache_dtype", "n_bootstrap", "flush_every"]
)
def test_an_engine_key_under_realization_names_its_new_place(demo_cfg, tmp_path, key):
    """The scoring engine's keys moved from realization: to scoring:; an old config stops, saying where."""
    data = yaml.safe_load(Path(demo_cfg.source).read_text(encoding="utf-8"))
    data["realization"][key] = data["scoring"].pop(key, 1)
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        ConfigError,
        match=rf"old\.yaml: key 'realization\.{key}': moved to the scoring section: write it as scoring\.{key}",
    ):
        load_config(path)
