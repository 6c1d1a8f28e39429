"""The rehearsal (configs/rehearsal.yaml): the paper config's five pipeline classes, end to end, offline.

One module fixture builds the rehearsal's stand-ins (into the repository's ``.cache/standins``,
idempotently), collects a handful of references from the demo's Wikidata snapshot (local oxigraph,
synthetic images), generates with all five models and scores the images, in a tmp folder; the
tests then check the config against the paper's, the images and their metadata, and the tables.
The timings are printed (``pytest -s``) and kept in ``rehearsal_timings.json`` in the tmp folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from study_configs import write_study_config

from iconicity_utils.config import load_config
from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.registry import Registry, content_digest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: the pipeline class of each rehearsal slot, in the paper config's order
CLASSES = [
    "StableDiffusionPipeline",
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusion3Pipeline",
    "FluxPipeline",
]
#: the scheduler each rehearsal stand-in ships, as its real model does
SCHEDULERS = {
    "rehearsal-sd15": "PNDMScheduler",
    "rehearsal-sd21": "DDIMScheduler",
    "rehearsal-sdxl": "EulerDiscreteScheduler",
    "rehearsal-sd35-medium": "FlowMatchEulerDiscreteScheduler",
    "rehearsal-flux1-schnell": "FlowMatchEulerDiscreteScheduler",
}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """Build, collect, generate, score; returns the config, the stage outputs and the timings."""
    from iconicity_utils.collect import collection
    from iconicity_utils.core.io import read_table
    from iconicity_utils.demo.standins import build_for_config
    from iconicity_utils.generate import generate
    from iconicity_utils.score import score

    folder = tmp_path_factory.mktemp("rehearsal")
    cfg = write_study_config(folder, name="rehearsal", base="rehearsal")
    seconds = {}
    t0 = time.perf_counter()
    build_for_config(cfg)
    seconds["build_standins"] = time.perf_counter() - t0
    t = time.perf_counter()
    refs = collection.collect_references(cfg, log=lambda _msg: None)
    seconds["collect"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = generate(cfg, progress=False)
    seconds["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    result = score(cfg)
    seconds["score"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    (folder / "rehearsal_timings.json").write_text(json.dumps(seconds, indent=2))
    print("\nrehearsal timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return {
        "cfg": cfg,
        "refs": refs,
        "summary": summary,
        "manifest": read_table(cfg.generations_manifest),
        "result": result,
        "seconds": seconds,
    }


# --------------------------------------------------------------------------------------------
# The config: the paper's shape
# --------------------------------------------------------------------------------------------


def test_rehearsal_has_the_paper_configs_shape():
    paper = load_config(REPO_ROOT / "configs" / "paper.yaml")
    rehearsal = load_config(REPO_ROOT / "configs" / "rehearsal.yaml")
    reg = Registry.for_config(rehearsal)
    assert len(rehearsal.models) == len(paper.models) == 5
    for real_name, stand_name, cls in zip(paper.models, rehearsal.models, CLASSES, strict=True):
        real, stand = reg.model(real_name), reg.model(stand_name)
        assert real.pipeline == stand.pipeline == cls, (real_name, stand_name)
        assert stand.is_standin and not real.is_standin
        # the call settings that change the code path are the paper's
        assert stand.guidance == real.guidance, stand_name
        assert stand.max_sequence_length == real.max_sequence_length, stand_name
        assert stand.variant == real.variant, stand_name
        assert stand.steps <= real.steps and (stand.height, stand.width) == (64, 64)
    flux = reg.model("rehearsal-flux1-schnell")
    assert (flux.steps, flux.guidance, flux.max_sequence_length) == (4, 0.0, 256)
    # the encoders: stand-ins of the paper's three backends and architectures
    for role in ("recognition", "realization", "copy_detection"):
        real = reg.encoder(getattr(paper.encoders, role))
        stand = reg.encoder(getattr(rehearsal.encoders, role))
        assert stand.is_standin and stand.backend == real.backend, role
    assert reg.encoder(rehearsal.encoders.realization).source == "vit_base_patch16_dinov3"
    assert reg.encoder(paper.encoders.realization).source.startswith("vit_base_patch16_dinov3.")
    # the paper's thresholds and grid (schema defaults in both)
    assert rehearsal.thresholds == paper.thresholds
    assert rehearsal.realization.grid == paper.realization.grid
    assert (rehearsal.realization.cells, rehearsal.realization.pool) == (
        paper.realization.cells,
        paper.realization.pool,
    )


def test_rehearsal_stand_ins_have_the_real_components(rehearsal):
    """What each saved stand-in is made of, read from the files from_pretrained reads."""
    reg = Registry.for_config(rehearsal["cfg"])

    def component(model: str, sub: str) -> dict:
        return json.loads((reg.standin_path(model) / sub / "config.json").read_text())

    def index(model: str) -> dict:
        return json.loads((reg.standin_path(model) / "model_index.json").read_text())

    sdxl = index("rehearsal-sdxl")
    assert sdxl["_class_name"] == "StableDiffusionXLPipeline"
    assert sdxl["text_encoder"][1] == "CLIPTextModel"
    assert sdxl["text_encoder_2"][1] == "CLIPTextModelWithProjection"
    unet = component("rehearsal-sdxl", "unet")
    assert unet["addition_embed_type"] == "text_time"
    te2 = component("rehearsal-sdxl", "text_encoder_2")
    assert (
        unet["projection_class_embeddings_input_dim"]
        == 6 * unet["addition_time_embed_dim"] + te2["projection_dim"]
    )
    weights = sorted(p.name for p in (reg.standin_path("rehearsal-sdxl") / "unet").glob("*.safetensors"))
    assert weights == ["diffusion_pytorch_model.fp16.safetensors"]  # only the variant: it must be asked for

    sd3 = index("rehearsal-sd35-medium")
    assert sd3["_class_name"] == "StableDiffusion3Pipeline"
    assert [sd3[k][1] for k in ("text_encoder", "text_encoder_2", "text_encoder_3")] == [
        "CLIPTextModelWithProjection",
        "CLIPTextModelWithProjection",
        "T5EncoderModel",
    ]
    assert sd3["tokenizer_3"][1].startswith("T5Tokenizer")
    transformer = component("rehearsal-sd35-medium", "transformer")
    assert transformer["_class_name"] == "SD3Transformer2DModel"
    assert transformer["dual_attention_layers"] == [0] and transformer["qk_norm"] == "rms_norm"
    assert component("rehearsal-sd35-medium", "vae")["latent_channels"] == 16

    flux = index("rehearsal-flux1-schnell")
    assert flux["_class_name"] == "FluxPipeline"
    assert (flux["text_encoder"][1], flux["text_encoder_2"][1]) == ("CLIPTextModel", "T5EncoderModel")
    ft = component("rehearsal-flux1-schnell", "transformer")
    assert ft["_class_name"] == "FluxTransformer2DModel" and ft["guidance_embeds"] is False
    assert ft["in_channels"] == 4 * component("rehearsal-flux1-schnell", "vae")["latent_channels"]

    sched = json.loads(
        (reg.standin_path("rehearsal-sd21") / "scheduler" / "scheduler_config.json").read_text()
    )
    assert sched["prediction_type"] == "v_prediction"
    assert component("rehearsal-sd21", "unet")["use_linear_projection"] is True


def test_t5_tokenizer_is_built_offline_and_deterministic(tmp_path):
    from transformers import AutoTokenizer

    from iconicity_utils.demo.tokenizers import t5_tokenizer

    tok = t5_tokenizer()
    assert tok.get_vocab() == t5_tokenizer().get_vocab()  # constructed, not trained: the same every build
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)  # T5's special ids
    for title in [
        "The Starry Night",
        "Amélie",
        "2001: A Space Odyssey",
        "Guernica",
        "Les Demoiselles d'Avignon",
    ]:
        ids = tok(title)["input_ids"]
        assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids, title
    assert tok.convert_ids_to_tokens(tok("The Night")["input_ids"]) == ["▁The", "▁Night", "</s>"]
    padded = tok("Psycho", padding="max_length", max_length=256, truncation=True)["input_ids"]
    assert len(padded) == 256 and padded[-1] == tok.pad_token_id
    tok.save_pretrained(tmp_path / "t5")
    back = AutoTokenizer.from_pretrained(tmp_path / "t5")
    assert type(back).__name__ == "T5Tokenizer"  # transformers 5: T5TokenizerFast is this class
    assert (
        back("The Starry Night by Vincent van Gogh")["input_ids"]
        == tok("The Starry Night by Vincent van Gogh")["input_ids"]
    )


# --------------------------------------------------------------------------------------------
# Generation and scoring, end to end
# --------------------------------------------------------------------------------------------


def test_rehearsal_collects_a_handful_of_references(rehearsal):
    refs = rehearsal["refs"]
    assert sorted(refs["kind"].value_counts().items()) == [("dynamic", 2), ("static", 3)]
    cfg = rehearsal["cfg"]
    for row in refs.itertuples():
        assert any(cfg.reference_dir(row.kind, row.slug).iterdir()), row.slug


def test_rehearsal_generates_with_every_pipeline_class(rehearsal):
    cfg, summary, manifest = rehearsal["cfg"], rehearsal["summary"], rehearsal["manifest"]
    reg = Registry.for_config(cfg)
    n_refs = len(rehearsal["refs"])
    assert (summary.total, summary.done, summary.failed) == (5 * n_refs * 2, 5 * n_refs * 2, 0)
    assert len(manifest) == 5 * n_refs * 2
    by_model = manifest.groupby("model")
    assert sorted(by_model.groups) == sorted(cfg.models)
    for model, cls in zip(cfg.models, CLASSES, strict=True):
        rows = by_model.get_group(model)
        spec = reg.model(model)
        assert set(rows["pipeline"]) == {cls}, model  # what ran, recorded in every image
        assert set(rows["scheduler"]) == {SCHEDULERS[model]}, model
        assert set(rows["steps"]) == {spec.steps} and set(rows["guidance"]) == {spec.guidance}
        # the resolved revision of a stand-in: the sha256 of its folder, not "main" or nothing
        assert set(rows["revision"]) == {content_digest(reg.standin_path(model))}, model
    assert set(manifest["note"]) == {STANDIN_LABEL}
    pixels = {}
    for row in manifest.itertuples():
        with Image.open(cfg.absolute(row.path)) as im:
            assert (im.size, im.mode) == ((64, 64), "RGB")
            assert im.text["revision"].startswith("sha256:") and im.text["note"] == STANDIN_LABEL
            arr = np.asarray(im, dtype=np.float32)
        assert arr.std() > 1.0, f"{row.path} is flat"
        pixels[(row.model, row.slug, row.index)] = arr
    # five models, five different images of the same unit (same seed)
    one = [pixels[(m, manifest.slug.iloc[0], 0)] for m in cfg.models]
    assert all(not np.array_equal(a, b) for i, a in enumerate(one) for b in one[i + 1 :])


def test_rehearsal_resumes_with_nothing_to_do(rehearsal):
    from iconicity_utils.generate import generate

    again = generate(rehearsal["cfg"], progress=False)
    assert (again.done, again.skipped, again.failed) == (0, again.total, 0)  # revisions and settings match


def test_rehearsal_scores_every_image(rehearsal):
    cfg, result, manifest = rehearsal["cfg"], rehearsal["result"], rehearsal["manifest"]
    pi = result.per_image
    assert len(pi) == len(manifest)
    assert set(pi["model"]) == set(cfg.models)
    sims = pi["cra_sim"].to_numpy(dtype=float)
    assert np.isfinite(sims).all() and (np.abs(sims) <= 1 + 1e-5).all()
    assert pi["vr"].notna().all()
    pr = result.per_reference
    assert len(pr) == 5 * len(rehearsal["refs"])
    assert set(result.per_model["model"]) == set(cfg.models)
    assert not result.skipped  # every baseline ran, SSCD included
    # the encoders' resolved revisions: the stand-ins' digests, recorded with the scores
    reg = Registry.for_config(cfg)
    assert result.encoders
    for info in result.encoders.values():
        assert info["revision"] == content_digest(reg.standin_path(info["encoder"]))
    from iconicity_utils.core.io import read_table
    from iconicity_utils.score.tables import PER_MODEL

    prov = read_table(cfg.results_dir / PER_MODEL).attrs["provenance"]
    assert prov["note"] == STANDIN_LABEL
    revs = prov["revisions"]
    assert set(revs["models"]) == set(cfg.models) and set(revs["encoders"]) == {
        "tiny-clip",
        "tiny-dinov3",
        "tiny-sscd",
    }
    assert all(
        r["resolved"].startswith("sha256:") for r in [*revs["models"].values(), *revs["encoders"].values()]
    )
    assert revs["lock"] is None


def test_rehearsal_time_fits_ci(rehearsal):
    """Recorded for the issue note; a generous bound so that a 10x regression is caught."""
    seconds = rehearsal["seconds"]
    assert seconds["generate"] + seconds["score"] < 300, seconds
