"""Stand-in builders: tiny random-weight models, saved and reopened like hub models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iconicity_utils import registry
from iconicity_utils.demo import standins as standins_module
from iconicity_utils.demo.tokenizers import clip_tokenizer
from iconicity_utils.registry import Registry
from iconicity_utils.registry.encoders import EncoderLoadError, load_encoder


def test_tokenizer_matches_open_clip():
    import open_clip

    tok = clip_tokenizer()
    text = "The Starry Night by Vincent van Gogh"
    ids = tok(text)["input_ids"]
    assert ids == [49406, 518, 30963, 930, 638, 10357, 2451, 19697, 49407]
    ref = open_clip.tokenize([text])[0]
    assert ids == ref[ref != 0].tolist()
    assert len(tok) == 49408


def test_demo_standins_are_built_once(standins, demo_cfg):
    reg = Registry.for_config(demo_cfg)
    names = {p.name for p in standins}
    assert names == {"tiny-sd-a", "tiny-sd-b", "tiny-clip", "tiny-dino", "tiny-sscd"}
    stamps = {p: (p / standins_module.STAMP).stat().st_mtime_ns for p in standins}
    again = standins_module.build_for_config(demo_cfg)  # idempotent: nothing rebuilt
    assert {p: (p / standins_module.STAMP).stat().st_mtime_ns for p in again} == stamps
    stamp = json.loads((reg.standin_path("tiny-sd-a") / "standin.json").read_text())
    assert stamp["builder"] == "tiny-sd" and "not a scientific model" in stamp["note"]


def test_pipeline_reopens_through_from_pretrained(standins, demo_cfg):
    reg = Registry.for_config(demo_cfg)
    spec = reg.model("tiny-sd-a")
    pipe = registry.load_pipeline(spec, reg, device="cpu")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.tokenizer("The Seventh Seal")["input_ids"][0] == 49406

    def run(p):
        g = torch.Generator("cpu").manual_seed(0)
        return p(
            "The Seventh Seal", num_inference_steps=2, height=64, width=64, generator=g, output_type="np"
        ).images

    first = run(pipe)
    assert first.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(first, run(registry.load_pipeline(spec, reg)))


def test_two_demo_models_differ(standins, demo_cfg):
    reg = Registry.for_config(demo_cfg)
    a = registry.load_pipeline(reg.model("tiny-sd-a"), reg)
    b = registry.load_pipeline(reg.model("tiny-sd-b"), reg)
    assert a.unet.config.block_out_channels != b.unet.config.block_out_channels
    ta = a.text_encoder.get_input_embeddings().weight
    tb = b.text_encoder.get_input_embeddings().weight
    assert not torch.equal(ta[:, :8], tb[:, :8])  # different seeds


def test_builds_are_deterministic(tmp_path):
    reg = Registry.load(standins_dir=tmp_path)
    spec = reg.encoder("tiny-dino")
    first = torch.load(standins_module.build_standin(spec, reg) / "weights.pt")
    second = torch.load(standins_module.build_standin(spec, reg, force=True) / "weights.pt")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-dino"])
def test_encoder_loads_the_saved_weights(standins, demo_cfg, name):
    reg = Registry.for_config(demo_cfg)
    enc = load_encoder(name, reg)
    saved = torch.load(reg.standin_path(name) / "weights.pt")
    state = enc.model.state_dict()
    common = [k for k in saved if k in state]
    assert len(common) >= len(saved) - 2 and common
    assert all(torch.equal(saved[k], state[k]) for k in common)
    assert enc.info["standin"] is True and enc.info["weights"].endswith("weights.pt")


def test_unbuilt_standin_is_an_error_not_a_fallback(tmp_path):
    reg = Registry.load(standins_dir=tmp_path / "empty")
    with pytest.raises(EncoderLoadError, match="tiny-clip.*has not been built"):
        load_encoder("tiny-clip", reg)
    with pytest.raises(RuntimeError, match="tiny-sd-a.*has not been built"):
        registry.load_pipeline(reg.model("tiny-sd-a"), reg)


def test_non_standin_cannot_be_built(tmp_path):
    reg = Registry.load(standins_dir=tmp_path)
    with pytest.raises(ValueError, match="not a stand-in"):
        standins_module.build_standin(reg.model("sd15"), reg)


# ---- the rehearsal's builders (issue 13) --------------------------------------------------------


def test_clip_tokenizer_pad_token_for_tokenizer_2():
    tok, tok2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    assert tok.pad_token == "<|endoftext|>" and tok2.pad_token == "!" and tok2.pad_token_id == 0
    text = "The Starry Night"
    assert tok(text)["input_ids"] == tok2(text)["input_ids"]  # same vocabulary, only padding differs
    assert tok2(text, padding="max_length", max_length=8)["input_ids"][-1] == 0


def test_rehearsal_builders_are_deterministic(tmp_path):
    from iconicity_utils.registry import content_digest

    reg = Registry.load(standins_dir=tmp_path)
    spec = reg.model("rehearsal-flux1-schnell")
    first = content_digest(standins_module.build_standin(spec, reg))
    assert content_digest(standins_module.build_standin(spec, reg, force=True)) == first
    stamp = json.loads((reg.standin_path(spec.name) / standins_module.STAMP).read_text())
    assert stamp["builder"] == "tiny-flux"


def test_rehearsal_builder_options_are_checked(tmp_path):
    reg = Registry.load(standins_dir=tmp_path)
    bad_scheduler = reg.model("rehearsal-sd15").model_copy(
        update={"name": "bad-sched", "standin": {"builder": "tiny-sd", "scheduler": "euler"}}
    )
    with pytest.raises(ValueError, match="unknown standin.scheduler 'euler'"):
        standins_module.build_standin(bad_scheduler, reg)
    bad_variant = reg.model("rehearsal-sdxl").model_copy(update={"name": "bad-variant", "variant": "int8"})
    with pytest.raises(ValueError, match="variant 'fp16' or 'bf16', not 'int8'"):
        standins_module.build_standin(bad_variant, reg)
    assert not any(p.name.startswith(".bad") for p in tmp_path.iterdir())  # atomic: no half-built folder
