"""Stage 02 generation harness: seeds, batching, PNG metadata, resumption, SIGKILL, two processes, errors.

Every test writes into its own tmp folder; the stand-in pipelines come from the repository's
``.cache/standins`` (built once per session by the ``standins`` fixture).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from study_configs import write_study_config

from iconicity_utils.config import load_config
from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.core.launch import launch_command
from iconicity_utils.generate import gallery_figure, generate, load_prompts, run_subprocess, title_prompts
from iconicity_utils.generate.cli import main as cli_main
from iconicity_utils.generate.manifest import MANIFEST_COLUMNS
from iconicity_utils.generate.metadata import (
    PNG_FIELDS,
    check_image,
    encode_png,
    expected_metadata,
    read_png_metadata,
)
from iconicity_utils.generate.units import plan_units, unit_seed
from iconicity_utils.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[1]
TITLES = ["The Starry Night", "Mona Lisa", "The Scream", "Guernica", "Casablanca", "Psycho", "Metropolis"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def write_study(folder: Path, n_refs: int = 3, name: str = "gen", root: Path = REPO_ROOT, **generation):
    """A study config in ``folder`` (demo config, outputs inside ``folder``) plus a references table."""
    cfg = write_study_config(folder, name, root=root, generation=generation)
    refs = pd.DataFrame(
        {
            "slug": [f"ref-{i:02d}" for i in range(n_refs)],
            "kind": ["static" if i % 2 == 0 else "dynamic" for i in range(n_refs)],
            "label_clean": [f"{TITLES[i % len(TITLES)]} {i}" for i in range(n_refs)],
        }
    )
    write_table(refs, cfg.references_table, cfg)
    return cfg


def pngs(cfg) -> dict[str, bytes]:
    root = cfg.path("data", "generated")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def assert_complete(cfg, units, summary=None):
    """Every unit present exactly once, decodable, with matching metadata; the manifest agrees."""
    reg = Registry.for_config(cfg)
    for unit in units:
        path = cfg.generated_path(*unit.key)
        expected = expected_metadata(cfg, reg.model(unit.model), reg, unit)
        assert check_image(path, expected, "decode") is None
    root = cfg.path("data", "generated")
    on_disk = sorted(p for p in root.rglob("*.png"))
    assert len(on_disk) == len(units), "extra files (temporary or stray) under generated/"
    assert not [p for p in root.rglob(".*")], "temporary files were left behind"
    manifest = read_table(cfg.generations_manifest)
    assert len(manifest) == len(units)
    assert not manifest.duplicated(["model", "variant", "slug", "index"]).any()
    assert not manifest["path"].duplicated().any()
    assert sorted(map(tuple, manifest[["model", "variant", "slug", "index"]].values.tolist())) == sorted(
        u.key for u in units
    )
    if summary is not None:
        assert summary.manifest_rows == len(units)


@pytest.fixture(autouse=True)
def _standins(standins):
    """Every test here needs the stand-in pipelines."""


@pytest.fixture(scope="module")
def pipe_a():
    """The tiny-sd-a pipeline, run with one CPU thread (as the demo config does; far faster on a busy machine)."""
    import torch

    from iconicity_utils.registry import load_pipeline

    cfg = load_config(REPO_ROOT / "configs" / "demo.yaml")
    reg = Registry.for_config(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield reg.model("tiny-sd-a"), load_pipeline(reg.model("tiny-sd-a"), reg, "cpu")
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------


def test_hash_seed_matches_an_independent_computation():
    for variant, slug, index in [
        ("title", "the-starry-night", 0),
        ("synonym", "mona-lisa", 7),
        ("title", "é", 3),
    ]:
        text = "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in (variant, slug, index)) + "]"
        h = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) // 2
        assert unit_seed(variant, slug, index) == h
        assert unit_seed(variant, slug, index, base_seed=5) == (h + 5) % 2**63
    assert unit_seed("title", "a", 0, base_seed=2**63 - 1) < 2**63


def test_seeds_differ_between_units_and_index_mode_pairs_variants():
    seeds = {unit_seed(v, s, i) for v in ("title", "synonym") for s in ("a", "b", "c") for i in range(10)}
    assert len(seeds) == 60
    assert unit_seed("title", "a", 3, mode="index", base_seed=100) == 103
    assert unit_seed("title", "a", 3, mode="index") == unit_seed("synonym", "b", 3, mode="index")
    with pytest.raises(ValueError, match="unknown seed_mode 'rank'"):
        unit_seed("title", "a", 0, mode="rank")


def test_plan_is_independent_of_prompt_order_and_model(tmp_path):
    cfg = write_study(tmp_path, n_refs=4, n_images=3)
    table = title_prompts(cfg)
    a = plan_units(cfg, ["tiny-sd-a", "tiny-sd-b"], table)
    b = plan_units(cfg, ["tiny-sd-a", "tiny-sd-b"], table.sample(frac=1, random_state=3))
    assert a == b and [u.seed for u in a] == [u.seed for u in b]
    assert len(a) == 2 * 4 * 3 == len({u.key for u in a})
    by_key = {u.key: u.seed for u in a}
    # the seed depends on (variant, slug, index) only, not on the model
    assert all(by_key[("tiny-sd-a", v, s, i)] == by_key[("tiny-sd-b", v, s, i)] for _, v, s, i in by_key)
    assert all(u.seed == unit_seed(u.variant, u.slug, u.index) for u in a)


def test_same_unit_gives_the_same_bytes_in_separate_runs(tmp_path):
    cfg1 = write_study(tmp_path / "one", n_refs=2, n_images=2, batch_size=2)
    cfg2 = write_study(tmp_path / "two", n_refs=2, n_images=2, batch_size=2)
    generate(cfg1, models=["tiny-sd-a"], progress=False)
    generate(cfg2, models=["tiny-sd-a"], progress=False)
    one, two = pngs(cfg1), pngs(cfg2)
    assert len(one) == 4 and one == two
    # ... and different seeds give clearly different images
    a, b = (pixels(cfg1.generated_path("tiny-sd-a", "title", "ref-00", i)) for i in (0, 1))
    assert np.abs(a - b).mean() > 10


# --------------------------------------------------------------------------------------------
# batching
# --------------------------------------------------------------------------------------------


def test_batch_gets_exactly_the_noise_of_one_by_one(pipe_a):
    import torch

    spec, pipe = pipe_a
    channels = pipe.unet.config.in_channels
    side = spec.height // pipe.vae_scale_factor

    def latents(generator, n):
        return pipe.prepare_latents(n, channels, spec.height, spec.width, torch.float32, "cpu", generator)

    seeds = [11, 12, 13]
    batch = latents([torch.Generator("cpu").manual_seed(s) for s in seeds], 3)
    single = torch.cat([latents(torch.Generator("cpu").manual_seed(s), 1) for s in seeds])
    assert batch.shape == (3, channels, side, side)
    assert torch.equal(batch, single)
    by_hand = torch.randn((channels, side, side), generator=torch.Generator("cpu").manual_seed(11))
    assert torch.equal(single[0], by_hand * pipe.scheduler.init_noise_sigma)


def test_batch_equals_one_by_one_up_to_float_rounding(pipe_a):
    import torch

    spec, pipe = pipe_a
    prompts = ["The Starry Night", "Mona Lisa", "The Scream", "Guernica"]
    seeds = [1, 2, 3, 4]
    kwargs = {"num_inference_steps": spec.steps, "guidance_scale": spec.guidance, "height": 64, "width": 64}
    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    batch = pipe(prompts, generator=gens, output_type="np", **kwargs).images
    single = np.stack(
        [
            pipe(p, generator=torch.Generator("cpu").manual_seed(s), output_type="np", **kwargs).images[0]
            for p, s in zip(prompts, seeds, strict=True)
        ]
    )
    assert batch.shape == single.shape == (4, 64, 64, 3)
    assert np.abs(batch - single).max() < 1e-4
    # as 8-bit images (what is written): at most one level apart, in a tiny fraction of the values
    q_batch = np.round(batch * 255).astype(np.int16)
    q_single = np.round(single * 255).astype(np.int16)
    assert np.abs(q_batch - q_single).max() <= 1
    assert (q_batch != q_single).mean() < 0.01
    # the tolerance is far below the difference between two seeds
    other = pipe(prompts[0], generator=torch.Generator("cpu").manual_seed(99), output_type="np", **kwargs)
    assert np.abs(other.images[0] - single[0]).mean() > 0.02


def test_harness_batch_size_does_not_change_the_unit(tmp_path):
    cfg1 = write_study(tmp_path / "b1", n_refs=2, n_images=2, batch_size=1)
    cfg4 = write_study(tmp_path / "b4", n_refs=2, n_images=2, batch_size=4)
    for cfg in (cfg1, cfg4):
        generate(cfg, models=["tiny-sd-a"], progress=False)
    m1, m4 = read_table(cfg1.generations_manifest), read_table(cfg4.generations_manifest)
    assert m1["batch_size"].tolist() == [1] * 4 and m4["batch_size"].tolist() == [4] * 4
    assert m1["seed"].tolist() == m4["seed"].tolist()
    for rel in m1["path"]:
        name = Path(rel).relative_to(cfg1.path("data", "generated"))
        a, b = pixels(rel), pixels(cfg4.path("data", "generated") / name)
        assert np.abs(a - b).max() <= 1


# --------------------------------------------------------------------------------------------
# output: PNG metadata and the manifest
# --------------------------------------------------------------------------------------------


def test_png_metadata_and_manifest(tmp_path):
    import torch

    cfg = write_study(tmp_path, n_refs=2, n_images=2, batch_size=3, num_threads=1)
    threads = torch.get_num_threads()
    summary = generate(cfg, progress=False)
    assert torch.get_num_threads() == threads  # the config's thread count applies inside the run only
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (8, 8, 0, 0)
    assert summary.images_per_second > 0 and summary.generation_seconds > 0
    path = cfg.generated_path("tiny-sd-b", "title", "ref-01", 1)
    with Image.open(path) as im:
        text = dict(im.text)
        assert im.size == (64, 64) and im.mode == "RGB"
    required = ["prompt", "seed", "model_id", "revision", "pipeline", "steps", "guidance", "scheduler"]
    required += ["dtype", "device", "diffusers", "torch"]
    assert set(required) - {"revision"} <= set(text)  # revision is None for a local stand-in: omitted
    assert text["prompt"] == "Mona Lisa 1"
    assert int(text["seed"]) == unit_seed("title", "ref-01", 1)
    assert text["model_id"] == ".cache/standins/tiny-sd-b"
    assert text["pipeline"] == "StableDiffusionPipeline" and text["scheduler"] == "DDIMScheduler"
    assert (text["steps"], text["guidance"], text["dtype"], text["device"]) == ("8", "5.0", "float32", "cpu")
    assert (text["num_threads"], text["batch_size"]) == ("1", "1")  # the last unit: a short batch
    assert list(text) == [k for k in PNG_FIELDS if k in text]  # fixed order
    assert not any("time" in k or "date" in k for k in text)

    manifest = read_table(cfg.generations_manifest)
    assert list(manifest.columns) == MANIFEST_COLUMNS + ["note"]
    assert len(manifest) == 8
    row = manifest[(manifest.model == "tiny-sd-b") & (manifest.slug == "ref-01") & (manifest["index"] == 1)]
    assert row["seed"].item() == int(text["seed"]) and row["prompt"].item() == "Mona Lisa 1"
    assert Path(row["path"].item()) == path  # outside the project root: stored absolute
    assert manifest.attrs["provenance"]["stage"] == "02_generation"
    assert set(manifest["note"]) == {STANDIN_LABEL}


def test_manifest_paths_are_relative_inside_the_project_root(tmp_path):
    shutil.copytree(REPO_ROOT / "configs", tmp_path / "configs")  # the registry of this root
    cfg = write_study(tmp_path, n_refs=1, n_images=1, root=tmp_path)
    generate(cfg, models=["tiny-sd-a"], progress=False)
    manifest = read_table(cfg.generations_manifest)
    assert manifest["path"].tolist() == ["data/generated/tiny-sd-a/title/ref-00/0.png"]
    assert manifest["model_id"].tolist() == [str(REPO_ROOT / ".cache" / "standins" / "tiny-sd-a")]


def test_encode_png_is_deterministic_and_round_trips():
    image = Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3))
    meta = {"prompt": "Café naïve — ✓", "seed": 2**62 + 1, "guidance": 7.5, "revision": None, "model": "m"}
    a, b = encode_png(image, meta), encode_png(image, dict(reversed(meta.items())))
    assert a == b
    with pytest.raises(ValueError, match="unknown PNG metadata field"):
        encode_png(image, {"when": "now"})


def test_read_png_metadata_names_a_bad_file(tmp_path):
    bad = tmp_path / "0.png"
    bad.write_bytes(b"not a png at all, but long enough")
    with pytest.raises(OSError, match=str(bad)):
        read_png_metadata(bad)


def test_rerun_skips_everything_and_rebuilds_the_manifest_without_duplicates(tmp_path):
    cfg = write_study(tmp_path, n_refs=2, n_images=2, batch_size=4)
    first = generate(cfg, models=["tiny-sd-a"], progress=False)
    before = pngs(cfg)
    cfg.generations_manifest.unlink()
    second = generate(cfg, models=["tiny-sd-a"], progress=False)
    assert (first.done, second.done, second.skipped) == (4, 0, 4)
    assert pngs(cfg) == before
    assert_complete(cfg, plan_units(cfg, ["tiny-sd-a"], title_prompts(cfg)), second)
    assert cli_main(["--config", cfg.source, "--manifest-only"]) == 0
    assert len(read_table(cfg.generations_manifest)) == 4


# --------------------------------------------------------------------------------------------
# resumption: corrupt files and a real SIGKILL
# --------------------------------------------------------------------------------------------


def test_corrupt_truncated_and_stale_pngs_are_regenerated(tmp_path):
    cfg = write_study(tmp_path, n_refs=3, n_images=2, batch_size=1)
    generate(cfg, models=["tiny-sd-a"], progress=False)
    original = pngs(cfg)
    truncated = cfg.generated_path("tiny-sd-a", "title", "ref-00", 1)
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage = cfg.generated_path("tiny-sd-a", "title", "ref-01", 0)
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)
    stale = cfg.generated_path("tiny-sd-a", "title", "ref-02", 1)  # valid PNG, another unit's seed
    meta = read_png_metadata(stale)
    meta = {k: v for k, v in meta.items() if k in PNG_FIELDS}
    stale.write_bytes(encode_png(Image.open(stale).convert("RGB"), {**meta, "seed": 1}))
    orphan = truncated.parent / ".1.png.abc123.tmp.png"
    orphan.write_bytes(b"half")
    cfg.generations_manifest.unlink()

    summary = generate(cfg, models=["tiny-sd-a"], progress=False)
    assert (summary.done, summary.regenerated, summary.skipped, summary.failed) == (3, 3, 3, 0)
    assert summary.orphans_removed == 1 and not orphan.exists()
    assert pngs(cfg) == original  # batch_size 1: the regenerated files are byte-identical
    assert_complete(cfg, plan_units(cfg, ["tiny-sd-a"], title_prompts(cfg)), summary)


def test_header_mode_catches_truncation_without_decoding(tmp_path):
    cfg = write_study(tmp_path, n_refs=1, n_images=2, verify="header")
    generate(cfg, models=["tiny-sd-a"], progress=False)
    path = cfg.generated_path("tiny-sd-a", "title", "ref-00", 0)
    path.write_bytes(path.read_bytes()[:-5])
    summary = generate(cfg, models=["tiny-sd-a"], progress=False)
    assert (summary.regenerated, summary.skipped) == (1, 1)


def test_resume_after_sigkill(tmp_path):
    """A real generation process, killed with SIGKILL mid-run, then run again."""
    cfg = write_study(tmp_path / "killed", n_refs=15, n_images=2, batch_size=1)
    cmd = launch_command("generate", cfg.source, 1, ["--models", "tiny-sd-a", "--no-progress"])
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = cfg.path("data", "generated")
    deadline = time.monotonic() + 120
    try:
        while len(list(root.rglob("[0-9]*.png"))) < 4:  # finished images, not temporary files
            assert proc.poll() is None, (
                f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            )
            assert time.monotonic() < deadline, "no images after 120 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    units = plan_units(cfg, ["tiny-sd-a"], title_prompts(cfg))
    present = len(list(root.rglob("[0-9]*.png")))
    assert 4 <= present < len(units), f"the kill should land mid-run ({present} images)"
    assert not cfg.generations_manifest.exists(), "the manifest is written only after all units"

    summary = generate(cfg, models=["tiny-sd-a"], progress=False)
    assert summary.skipped + summary.done == len(units) == 30
    assert summary.skipped >= present - 1  # at most the file being written at the kill is bad
    assert summary.failed == 0
    assert_complete(cfg, units, summary)
    # an uninterrupted run gives the same bytes (batch_size 1: every image is independent)
    reference = write_study(tmp_path / "reference", n_refs=15, n_images=2, batch_size=1)
    generate(reference, models=["tiny-sd-a"], progress=False)
    assert pngs(cfg) == pngs(reference)


# --------------------------------------------------------------------------------------------
# distribution
# --------------------------------------------------------------------------------------------


def test_two_processes_under_accelerate_give_byte_identical_images(tmp_path):
    # generation.num_threads (1 in the demo config) fixes the CPU threads of every process
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    results = {}
    for n in (1, 2):
        cfg = write_study(tmp_path / f"p{n}", n_refs=5, n_images=2, batch_size=2)
        cmd = launch_command("generate", cfg.source, n, ["--models", "tiny-sd-a", "--no-progress"])
        run = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"({n} process" in run.stdout, run.stdout
        results[n] = (cfg, pngs(cfg), read_table(cfg.generations_manifest))
    (_, one, m1), (_, two, m2) = results[1], results[2]
    assert len(one) == 10 and one == two
    cols = [c for c in m1.columns if c != "path"]
    pd.testing.assert_frame_equal(m1[cols], m2[cols])


def test_launch_command():
    assert launch_command("generate", "c.yaml")[1:] == [
        "-m",
        "iconicity_utils",
        "generate",
        "--config",
        "c.yaml",
    ]
    cmd = launch_command("generate", "c.yaml", 3, ["--no-progress"], port=29999)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert (
        cmd[cmd.index("--num_processes") + 1] == "3" and cmd[cmd.index("--main_process_port") + 1] == "29999"
    )
    assert cmd[-6:] == ["-m", "iconicity_utils", "generate", "--config", "c.yaml", "--no-progress"]
    with pytest.raises(ValueError, match="num_processes"):
        launch_command("generate", "c.yaml", 0)


# --------------------------------------------------------------------------------------------
# prompts
# --------------------------------------------------------------------------------------------


def test_extra_prompt_variants_share_index_seeds(tmp_path):
    cfg = write_study(tmp_path, n_refs=2, n_images=2, seed_mode="index", base_seed=10)
    extra = pd.DataFrame(
        {
            "slug": ["ref-00", "ref-01"],
            "variant": "synonym",
            "prompt": ["The Star-Filled Evening", "Mona Liza"],
        }
    )
    table = pd.concat([title_prompts(cfg), extra])
    csv = tmp_path / "prompts.csv"
    table.to_csv(csv, index=False)
    assert (
        cli_main(["--config", cfg.source, "--models", "tiny-sd-a", "--prompts", str(csv), "--no-progress"])
        == 0
    )
    manifest = read_table(cfg.generations_manifest)
    assert sorted(set(manifest["variant"])) == ["synonym", "title"] and len(manifest) == 8
    seeds = manifest.pivot_table(index=["slug", "index"], columns="variant", values="seed")
    assert (seeds["synonym"] == seeds["title"]).all() and set(seeds["title"]) == {10, 11}
    assert cfg.generated_path("tiny-sd-a", "synonym", "ref-00", 1).is_file()
    # a later title-only run leaves the synonym images (and their manifest rows) alone
    summary = generate(cfg, models=["tiny-sd-a"], progress=False)
    assert (summary.total, summary.skipped, summary.manifest_rows) == (4, 4, 8)
    # variants filter a prompt table
    only = generate(cfg, models=["tiny-sd-a"], prompts=table, variants=["synonym"], progress=False)
    assert (only.total, only.skipped) == (4, 4)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pd.DataFrame({"slug": ["a"], "prompt": ["x"]}), "lacks column"),
        (pd.DataFrame({"slug": ["a"], "variant": ["v"], "prompt": ["  "]}), r"row 0 \(slug 'a'.*empty"),
        (pd.DataFrame({"slug": ["../up"], "variant": ["v"], "prompt": ["x"]}), "not a usable folder name"),
        (pd.DataFrame({"slug": [".hidden"], "variant": ["v"], "prompt": ["x"]}), "not a usable folder name"),
        (pd.DataFrame({"slug": ["a", "a"], "variant": ["v", "v"], "prompt": ["x", "y"]}), "more than one"),
    ],
)
def test_bad_prompt_tables_are_named(table, match):
    with pytest.raises(ValueError, match=match):
        load_prompts(table)


def test_prompt_selection_errors(tmp_path):
    cfg = write_study(tmp_path, n_refs=1, n_images=1)
    with pytest.raises(ValueError, match=r"variant\(s\) \['synonym'\] have no prompts"):
        generate(cfg, variants=["title", "synonym"], progress=False)
    with pytest.raises(ValueError, match="not in the prompt table"):
        generate(cfg, prompts=title_prompts(cfg), variants=["literal"], progress=False)
    with pytest.raises(ValueError, match="have no prompt in this run"):
        generate(cfg, slugs=["nope"], progress=False)
    with pytest.raises(FileNotFoundError, match="prompt table not found"):
        load_prompts(tmp_path / "missing.csv")
    cfg.references_table.unlink()
    with pytest.raises(FileNotFoundError, match="references.parquet"):
        generate(cfg, progress=False)
    assert not cfg.path("data", "generated").exists()


# --------------------------------------------------------------------------------------------
# errors: unknown model, unloadable weights, failing calls, missing device
# --------------------------------------------------------------------------------------------


def test_unknown_model_lists_the_known_ones(tmp_path):
    cfg = write_study(tmp_path, n_refs=1, n_images=1)
    with pytest.raises(KeyError, match=r"unknown diffusion model 'sd-9'; known models: \[.*'tiny-sd-a'"):
        generate(cfg, models=["sd-9"], progress=False)


def test_unloadable_weights_name_the_id_and_cause_and_keep_finished_images(tmp_path):
    broken = tmp_path / "weights" / "broken-sd"
    shutil.copytree(REPO_ROOT / ".cache" / "standins" / "tiny-sd-a", broken)
    for weights in (broken / "unet").glob("diffusion_pytorch_model.*"):
        weights.write_bytes(b"not a safetensors file")
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "configs" / "encoders.yaml", project / "configs" / "encoders.yaml")
    models = yaml.safe_load((REPO_ROOT / "configs" / "models.yaml").read_text())
    models["models"]["broken-sd"] = {**models["models"]["tiny-sd-a"], "source": str(broken)}
    models["models"]["broken-sd"].pop("standin")
    (project / "configs" / "models.yaml").write_text(yaml.safe_dump(models))
    cfg = write_study(project, n_refs=1, n_images=2, root=project)
    cfg = cfg.with_overrides(models=["tiny-sd-a", "broken-sd"])
    with pytest.raises(RuntimeError, match=r"'broken-sd' from '.*broken-sd'.*(Error|error)"):
        generate(cfg, progress=False)
    kept = sorted(
        p.relative_to(cfg.path("data", "generated")).as_posix() for p in cfg.path("data").rglob("*.png")
    )
    assert kept == ["tiny-sd-a/title/ref-00/0.png", "tiny-sd-a/title/ref-00/1.png"]


def test_failing_pipeline_calls_are_counted_and_the_cli_exits_nonzero(tmp_path):
    cfg = write_study(tmp_path, n_refs=2, n_images=1, batch_size=1)
    reg = Registry.for_config(cfg)
    bad = reg.model("tiny-sd-a").model_copy(update={"height": 60})  # SD needs multiples of 8
    reg = dataclasses.replace(reg, models={**reg.models, "tiny-sd-a": bad})
    summary = generate(cfg, models=["tiny-sd-a"], progress=False, registry=reg)
    assert (summary.total, summary.done, summary.failed) == (2, 0, 2)
    assert "divisible by 8" in summary.failures[0]["error"]
    assert summary.failures[0]["slug"] == "ref-00" and summary.manifest_rows == 0
    assert "2 failed" in str(summary)


def test_cuda_device_without_cuda_is_an_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error is for machines without it")
    cfg = write_study(tmp_path, n_refs=1, n_images=1, device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        generate(cfg, models=["tiny-sd-a"], progress=False)


def test_run_subprocess_and_gallery(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    cfg = write_study(tmp_path, n_refs=3, n_images=2)
    summary = run_subprocess(cfg, args=["--models", "tiny-sd-a", "--no-progress"], echo=False)
    assert (summary.done, summary.manifest_rows) == (6, 6)
    fig = gallery_figure(cfg, read_table(cfg.generations_manifest), n_refs=2)
    assert len(fig.axes) == 2 * 2  # (model, index) rows x references
    assert fig.axes[0].get_title() == "The Starry Night 0"
    with pytest.raises(RuntimeError, match="exited with status 2"):
        run_subprocess(cfg, args=["--no-such-flag"], echo=False)
