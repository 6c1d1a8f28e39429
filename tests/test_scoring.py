"""Scoring a study and a user's folders: every row kept, scores equal to the front doors and to a
re-implementation of the authors' loops, cache reuse (no forward pass), resume, clear errors and
no silent fallback; aggregation and bootstrap CIs against independent computations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scoring_fixtures as sf
from authors_reimpl import authors_cra, authors_vr
from scoring_fixtures import noise, permuted, photo

from iconicity_utils.core.constants import TAU_CRA, TAU_REUSE
from iconicity_utils.core.images import split_grid
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.metrics.realization import cell_mode_agreement, visual_reuse
from iconicity_utils.metrics.recognition import recognition
from iconicity_utils.registry import STANDIN_LABEL, Registry
from iconicity_utils.registry.encoders import EncoderError, EncoderLoadError, embed_images, load_encoder
from iconicity_utils.score import BadInputError, ScoringInputError, score, score_folders, score_images
from iconicity_utils.score import tables as score_tables
from iconicity_utils.score.cli import main as score_main
from iconicity_utils.score.inputs import SKIPPED, reference_files
from iconicity_utils.score.tables import PER_MODEL, PER_REFERENCE
from iconicity_utils.score.writer import PER_IMAGE

ENCODERS = ("tiny-clip", "tiny-dino", "tiny-sscd")
REQUIRED = [
    "model", "variant", "slug", "kind", "path", "seed", "cra_sim", "cra_tau", "cra_pass", "vr", "vr_mean",
    "vr_max", "vr_p90", "vi", "vr_cells", "clip_cos", "dino_cos", "sscd_cos", "phash_dist", "ssim",
    "cra_encoder", "vr_encoder", "sscd_encoder", "vr_cells_mode", "vr_pool", "comparison",
]  # fmt: skip


def load_all(cfg):
    reg = Registry.for_config(cfg)
    return {n: load_encoder(n, reg) for n in ENCODERS}


@pytest.fixture(scope="module")
def study(tmp_path_factory, standins):
    cfg = sf.study_config(tmp_path_factory.mktemp("study"))
    sf.make_study(cfg)
    encoders = load_all(cfg)
    strict = cfg.with_overrides(thresholds={"tau_cra_static": 0.999, "tau_cra_dynamic": 0.999})
    result = score(strict, encoders=encoders)
    return cfg, encoders, result


def test_every_generated_image_gets_a_row(study):
    cfg, _, res = study
    manifest = read_table(cfg.generations_manifest)
    df = res.per_image
    assert len(df) == len(manifest) == 18
    assert set(zip(df.model, df.slug, df["index"], strict=True)) == set(
        zip(manifest.model, manifest.slug, manifest["index"], strict=True)
    )
    assert not df["cra_pass"].all() and df["cra_pass"].any()  # failing rows are kept too
    assert [c for c in REQUIRED if c not in df.columns] == []
    assert (
        df["seed"].tolist()
        == manifest.set_index(["model", "slug", "index"])
        .loc[list(zip(df.model, df.slug, df["index"], strict=True)), "seed"]
        .tolist()
    )
    assert set(df["path"]) == set(manifest["path"])  # paths as stored in the manifest
    # static references use their first file only; dynamic ones every still
    assert set(df.loc[df.slug == "persistence", "n_ref"]) == {1}
    assert set(df.loc[df.slug == "seventh_seal", "n_ref"]) == {3}
    assert (df["cra_tau"] == 0.999).all() and set(df["vr_cells_mode"]) == {"crop"}


def test_copies_and_permuted_copies(study):
    df = study[2].per_image
    copies = df[df["index"] == 0]
    assert copies["cra_pass"].all() and (copies["vr"] == 1).all() and (copies["vi"] == 0).all()
    for col in ("cra_sim", "clip_cos", "dino_cos", "sscd_cos", "ssim"):
        np.testing.assert_allclose(copies[col], 1.0, atol=1e-5)
    assert (copies["phash_dist"] == 0).all()
    perm = df[(df["index"] == 1) & df.slug.isin(["starry_night", "seventh_seal"])]
    assert (perm["vr"] == 1).all()  # every shuffled cell still matches a reference cell
    np.testing.assert_allclose(np.stack(perm["vr_cells"]), 1.0, atol=1e-5)


def _oracle_cells(encoder, paths) -> np.ndarray:
    """Cell embeddings computed image by image, outside the engine: crop, preprocess, embed."""
    import torch

    from iconicity_utils.core.images import open_rgb

    out = []
    for p in paths:
        x = torch.stack([encoder.preprocess(c) for c in split_grid(open_rgb(p), (4, 4))])
        out.append(encoder.embed_batch(x).numpy())
    return np.stack(out)


def test_engine_equals_an_image_by_image_computation(study):
    """The cached, batched engine gives what embedding each image on its own and the pure maths give."""
    cfg, encoders, res = study
    for (_model, slug), g in res.per_image.groupby(["model", "slug"]):
        kind = g["kind"].iloc[0]
        refs = reference_files(cfg.reference_dir(kind, slug), kind)
        gens = [cfg.absolute(p) for p in g["path"]]
        clip = encoders["tiny-clip"]
        rec = recognition(embed_images(clip, gens), embed_images(clip, refs), kind=kind, tau=0.999)
        np.testing.assert_allclose(g["cra_sim"], rec.cra_sim, atol=1e-6)
        assert g["cra_pass"].tolist() == rec.cra_pass.tolist()
        dino = encoders["tiny-dino"]
        vr = visual_reuse(_oracle_cells(dino, gens), _oracle_cells(dino, refs))
        np.testing.assert_allclose(np.stack(g["vr_cells"]), vr.m, atol=1e-6)
        np.testing.assert_allclose(g["vr"], vr.vr)


def test_per_reference_aggregates_by_hand(study):
    cfg, encoders, res = study
    pi, pr = res.per_image, res.per_reference
    assert len(pr) == 6 and (pr["n_images"] == 3).all()
    for row in pr.itertuples():
        g = pi[(pi.model == row.model) & (pi.slug == row.slug)]
        p, vi = g["cra_pass"].to_numpy(), g["vi"].to_numpy()
        assert row.cra == pytest.approx(p.mean())
        assert row.crt == pytest.approx(sum(a * b for a, b in zip(p, vi, strict=True)) / len(p))
        assert row.n_recognised == p.sum()
        assert (np.isnan(row.vi_mean) and not p.any()) or row.vi_mean == pytest.approx(vi[p].mean())
        e = embed_images(encoders["tiny-clip"], [cfg.absolute(x) for x in g["path"]])
        pairs = [float(e[i] @ e[j]) for i in range(3) for j in range(i + 1, 3)]
        assert row.consistency == pytest.approx(np.mean(pairs), abs=1e-6)
    pm = res.per_model
    assert set(pm["kind"]) == {"static", "dynamic"} and set(pm["metric"]) >= {"cra", "vi_mean", "crt"}
    for row in pm.itertuples():
        vals = pr[(pr.model == row.model) & (pr.kind == row.kind)][row.metric].dropna()
        assert row.n_refs == len(vals)
        if len(vals):
            assert row.mean == pytest.approx(vals.mean())
            assert row.ci_low - 1e-12 <= row.mean <= row.ci_high + 1e-12


def test_tables_are_written_labelled_with_provenance(study):
    cfg, _, res = study
    for name in (PER_IMAGE, PER_REFERENCE, PER_MODEL):
        df = read_table(cfg.results_dir / name)
        assert (df["note"] == STANDIN_LABEL).all()
        prov = df.attrs["provenance"]
        settings = prov["settings"]
        assert settings["realization"]["cells"] == "crop" and settings["thresholds"]["comparison"] == ">"
        assert settings["thresholds"]["tau_cra_static"] == 0.999  # the effective values, overrides included
        assert prov["encoders"]["recognition"]["encoder"] == "tiny-clip"
        assert prov["encoders"]["realization"]["fingerprint"]
    back = read_table(cfg.results_dir / PER_IMAGE)
    np.testing.assert_allclose(np.stack(back["vr_cells"]), np.stack(res.per_image["vr_cells"]))


def test_rescoring_uses_the_cache_and_no_encoder(study):
    cfg, encoders, first = study
    calls = {n: e.calls for n, e in encoders.items()}
    again = score(cfg, encoders=encoders, write=False)  # config thresholds 0.70 / 0.75
    assert again.forward_calls == 0 and again.counts["images"] == 0
    assert {n: e.calls for n, e in encoders.items()} == calls
    import iconicity_utils.registry.encoders as enc_module

    def no_loading(*a, **k):
        raise AssertionError("a fully cached re-score must not load any encoder")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(enc_module, "load_encoder", no_loading)
        cold = score(cfg, write=False)  # encoders described (fingerprints), never loaded
    assert (
        cold.forward_calls == 0
        and cold.per_image["cra_pass"].tolist() == again.per_image["cra_pass"].tolist()
    )
    pi, pr = score_tables.rescore(first.per_image, tau_cra_static=0.70, tau_cra_dynamic=0.75)
    for col in ("cra_pass", "vr", "vi", "cra_tau"):
        assert pi[col].tolist() == again.per_image[col].tolist()
    np.testing.assert_allclose(pr["crt"], again.per_reference["crt"])
    strict, _ = score_tables.rescore(first.per_image, tau_reuse=0.999)
    incl, _ = score_tables.rescore(first.per_image, tau_reuse=0.999, comparison=">=")
    assert (incl["vr"] >= strict["vr"]).all()


def test_threshold_sweep_matches_rescore(study):
    res = study[2]
    sweep = score_tables.threshold_sweep(res.per_image, [0.5, 0.7, 0.999], metric="cra")
    _, pr = score_tables.rescore(res.per_image, tau_cra_static=0.7, tau_cra_dynamic=0.7)
    at = sweep[sweep.tau == 0.7].set_index(["model", "kind"])["value"]
    want = pr.groupby(["model", "kind"])["cra"].mean()
    np.testing.assert_allclose(at.sort_index(), want.sort_index())
    for _, g in sweep.groupby(["model", "kind"]):
        assert g.sort_values("tau")["value"].is_monotonic_decreasing
    vr = score_tables.threshold_sweep(res.per_image, [0.6], metric="vr")
    assert vr["vary"].eq("tau_reuse").all()
    crt = score_tables.threshold_sweep(res.per_image, [0.0], metric="crt")  # all recognised: CRT = mean VI
    m = res.per_image.assign(vi=1 - res.per_image["vr"]).groupby(["model", "kind", "slug"])["vi"].mean()
    np.testing.assert_allclose(
        crt.set_index(["model", "kind"])["value"].sort_index(),
        m.groupby(["model", "kind"]).mean().sort_index(),
    )


def test_cell_mode_comparison_on_the_same_images(study):
    cfg, encoders, crop = study
    tokens_cfg = cfg.with_overrides(
        realization={"cells": "tokens"}, thresholds={"tau_cra_static": 0.999, "tau_cra_dynamic": 0.999}
    )
    tokens = score(tokens_cfg, encoders=encoders, write=False)
    assert set(tokens.per_image["vr_cells_mode"]) == {"tokens"} and tokens.forward_calls > 0
    summary, table = score_tables.cell_mode_comparison(crop, tokens)
    want = cell_mode_agreement(
        np.stack(crop.per_image["vr_cells"]), np.stack(tokens.per_image["vr_cells"]), 0.6, ">"
    )
    assert summary == want and len(table) == 18
    np.testing.assert_allclose(table["vr_tokens"], tokens.per_image["vr"])
    copies = tokens.per_image[tokens.per_image["index"] == 0]
    assert (copies["vr"] == 1).all()  # a copy is reused in either mode
    with pytest.raises(ValueError, match="crop-mode table first"):
        score_tables.cell_mode_comparison(tokens, crop)


def test_a_stopped_run_resumes_and_keeps_what_it_computed(tmp_path, standins, monkeypatch, study):
    cfg = sf.study_config(tmp_path, scoring={"batch_size": 16, "flush_every": 2})
    sf.make_study(cfg)
    encoders = load_all(cfg)
    dino = encoders["tiny-dino"]
    real = dino.embed_batch

    def flaky(x, pool="mean_all"):
        if dino.calls >= 5:
            raise RuntimeError("device lost")
        return real(x, pool=pool)

    monkeypatch.setattr(dino, "embed_batch", flaky)
    with pytest.raises(EncoderError, match=r"tiny-dino.*\.png.*device lost"):
        score(cfg, encoders=encoders)
    assert not (cfg.results_dir / PER_IMAGE).exists()  # no table from a failed run
    monkeypatch.setattr(dino, "embed_batch", real)
    done = score(cfg, encoders=encoders)
    assert 0 < done.counts["images"] < 13  # 13 distinct images; the finished ones were kept
    again = score(cfg, encoders=encoders)
    assert again.forward_calls == 0
    np.testing.assert_allclose(done.per_image["cra_sim"], study[2].per_image["cra_sim"], atol=1e-6)
    np.testing.assert_allclose(
        np.stack(done.per_image["vr_cells"]), np.stack(study[2].per_image["vr_cells"]), atol=1e-6
    )


def test_bad_inputs_are_named(tmp_path, standins):
    cfg = sf.study_config(tmp_path)
    sf.make_study(cfg)
    manifest = read_table(cfg.generations_manifest)
    write_table(manifest.drop(columns=["seed"]), cfg.generations_manifest, cfg)
    with pytest.raises(ScoringInputError, match="seed"):
        score(cfg)
    write_table(
        manifest.assign(slug=manifest.slug.replace("persistence", "unknown_work")),
        cfg.generations_manifest,
        cfg,
    )
    with pytest.raises(ScoringInputError, match="unknown_work"):
        score(cfg)
    write_table(manifest, cfg.generations_manifest, cfg)
    victim = cfg.absolute(manifest["path"].iloc[4])
    victim.write_bytes(b"not a png")
    strict = cfg.with_overrides(scoring={"on_bad_image": "strict"})
    with pytest.raises(BadInputError, match=rf"{victim.name}: not_an_image.*on_bad_image = 'strict'"):
        score(strict)
    victim.unlink()
    with pytest.raises(BadInputError, match=rf"{victim.name}: missing"):
        score(strict)
    assert not (cfg.results_dir / PER_IMAGE).exists()  # nothing is written when stopping
    shutil.rmtree(cfg.reference_dir("static", "starry_night"))
    cfg.reference_dir("static", "starry_night").mkdir()
    stop = cfg.with_overrides(scoring={"on_bad_image": "stop", "on_bad_reference": "stop"})
    with pytest.raises(BadInputError, match=r"(?s)8 inputs.*starry_night.*missing") as err:
        score(stop)  # every problem listed at once: the reference, its 6 images, the victim
    assert sorted(err.value.problems["reason"]) == ["missing"] * 2 + ["reference_dropped"] * 6
    res = score(cfg)  # the defaults: skip the image, drop the reference, record both
    assert len(res.per_image) == 18 - 1 - 6 and "starry_night" not in set(res.per_image.slug)
    skipped = read_table(cfg.results_dir / SKIPPED)
    assert skipped[["role", "reason"]].value_counts().to_dict() == {
        ("generated", "reference_dropped"): 6,
        ("generated", "missing"): 1,
        ("reference", "missing"): 1,
    }
    assert victim.name in skipped.loc[skipped.reason == "missing", "path"].dropna().str.cat()
    row = manifest.iloc[4]
    pr = res.per_reference.set_index(["model", "slug"])
    assert pr.loc[(row.model, row.slug), "n_skipped"] == 1 and pr.loc[(row.model, row.slug), "n_images"] == 2
    assert pr["n_skipped"].sum() == 1  # a dropped reference has no row; its images are in the table
    write_table(manifest[manifest.slug == "starry_night"], cfg.generations_manifest, cfg)
    with pytest.raises(BadInputError, match="(?s)nothing to score.*starry_night"):
        score(cfg)


def test_no_silent_fallback_when_an_encoder_cannot_load_or_fails(tmp_path, standins, study):
    cfg = sf.study_config(tmp_path)
    sf.make_study(cfg)
    unbuilt = sf.study_config(
        tmp_path, name="unbuilt", paths={**_paths(tmp_path), "standins": str(tmp_path / "none")}
    )
    with pytest.raises(EncoderLoadError, match="tiny-"):
        score(unbuilt)
    encoders = load_all(cfg)
    clip = encoders["tiny-clip"]
    clip.model.encode_image = lambda x: {"image_embeds": x}  # an output object, not a tensor
    with pytest.raises(EncoderError, match=r"tiny-clip.*\.png"):
        score(cfg, encoders=encoders)
    assert not (cfg.results_dir / PER_IMAGE).exists()


def _paths(root: Path) -> dict[str, str]:
    return {
        "data": str(root / "data"),
        "results": str(root / "results"),
        "figures": str(root / "figures"),
        "cache": str(root / "cache"),
        "root": str(sf.REPO_ROOT),
    }


# -- the authors' folder layout -----------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory, standins):
    root = tmp_path_factory.mktemp("folders")
    refdir, gendir, prompts = sf.make_folders(root, n_noise=2)
    still = refdir / "Seventh_Seal" / "00_chelsea.png"  # a near-duplicate still, sorted after it
    from PIL import Image

    with Image.open(still) as im:
        im.resize((98, 66)).save(refdir / "Seventh_Seal" / "00b_dup.png")
    cfg = sf.study_config(root)
    return cfg, refdir, gendir, prompts, load_all(cfg)


def test_folder_scorer_layout_whitelist_kgen_and_dedup(folders, tmp_path):
    cfg, refdir, gendir, prompts, encoders = folders
    res = score_folders(
        refdir,
        gendir,
        prompts,
        kind="dynamic",
        config=cfg.with_overrides(realization={"k_gen": 4}),
        out_dir=tmp_path / "out",
        encoders=encoders,
    )
    df = res.per_image
    assert sorted(set(df["slug"])) == [
        "Persistence",
        "Seventh_Seal",
        "Starry_Night",
    ]  # reference folder names
    assert set(df["model"]) == {"model_a", "model_b"} and len(df) == 2 * 3 * 4
    for _, g in df.groupby(["model", "slug"]):
        assert [Path(p).name for p in g["path"]] == [
            f"img_{i:03d}.png" for i in range(4)
        ]  # sorted, first k_gen
    seal = df[df.slug == "Seventh_Seal"].iloc[0]
    assert (seal.n_ref_before, seal.n_ref_kept, seal.n_ref_dups_removed) == (4, 3, 1)
    assert set(df["prompt"]) == {"Starry Night", "Persistence", "Seventh Seal"}
    copies = df[df["index"] == 0]
    np.testing.assert_allclose(copies["cra_sim"], 1.0, atol=1e-5)
    assert (copies["vr"] == 1).all()
    for name in (PER_IMAGE, PER_REFERENCE, PER_MODEL):
        assert (tmp_path / "out" / name).is_file()
    one = cfg.with_overrides(realization={"k_gen": 1})
    static = score_folders(refdir, gendir, prompts, kind="static", config=one, encoders=encoders)
    assert set(static.per_image["n_ref"]) == {1} and len(static.per_image) == 6
    with pytest.raises(ScoringInputError, match="nothing to score"):
        score_folders(refdir, gendir, prompts, kind="static", slug_col="label_clean", models=[], config=cfg)
    with pytest.raises(ScoringInputError, match="column 'title'"):
        score_folders(refdir, gendir, prompts, kind="static", slug_col="title", config=cfg)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_scores_equal_the_authors_algorithm(folders, kind):
    """Identical inputs and weights: our batched, cached scorer equals their per-image loops."""
    cfg, refdir, gendir, prompts, encoders = folders
    labels = pd.read_csv(prompts)["label_clean"].tolist()
    ours = score_folders(refdir, gendir, prompts, kind=kind, config=cfg, encoders=encoders).per_image
    cra = authors_cra(refdir, gendir, labels, kind, encoders["tiny-clip"])
    vr = authors_vr(refdir, gendir, labels, kind, encoders["tiny-dino"])
    assert len(cra) == len(vr) == len(ours) == 30
    for row in ours.itertuples():
        key = (row.model, row.slug, Path(row.path).name)
        assert row.cra_sim == pytest.approx(cra[key], abs=1e-6)
        for col in ("vr_mean", "vr_max", "vr_p90"):
            assert getattr(row, col) == pytest.approx(vr[key][col], abs=1e-6)
        np.testing.assert_allclose(row.vr_cells, vr[key]["cells"], atol=1e-6)


def test_command_line(folders, tmp_path, study):
    cfg, refdir, gendir, prompts, _ = folders
    out = tmp_path / "cli"
    argv = ["--refdir", str(refdir), "--gendir", str(gendir), "--prompts", str(prompts), "--kind", "dynamic"]
    assert (
        score_main([*argv, "--config", cfg.source, "--out", str(out), "--k-gen", "2", "--tau-reuse", "0.5"])
        == 0
    )
    df = read_table(out / PER_IMAGE)
    assert len(df) == 2 * 3 * 2 and (df["vr_tau"] == 0.5).all()
    assert score_main(["--config", study[0].source]) == 0
    with pytest.raises(SystemExit):
        score_main(["--refdir", str(refdir)])
    assert (
        score_main(
            [*argv[:-2], "--kind", "static", "--config", cfg.source, "--out", str(out), "--model", "nope"]
        )
        == 2
    )
    help_text = subprocess.run(
        [sys.executable, "-m", "iconicity_utils", "score", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--refdir" in help_text and "--kind" in help_text


# -- aggregation ----------------------------------------------------------------------------------


# -- a handful of images: score_images, the same engine ---------------------------------------------


@pytest.fixture(scope="module")
def few(tmp_path_factory, standins):
    cfg = sf.study_config(tmp_path_factory.mktemp("few"), scoring={"baselines": False})
    return cfg, load_all(cfg)


def test_reference_files_static_first_dynamic_all(tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    photo("coffee", (40, 40)).save(folder / "b.png")
    photo("astronaut", (40, 40)).save(folder / "a.png")
    assert [p.name for p in reference_files(folder, "static")] == ["a.png"]
    assert [p.name for p in reference_files(folder, "dynamic")] == ["a.png", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoringInputError, match="empty"):
        reference_files(tmp_path / "empty", "static")
    with pytest.raises(ValueError, match="unknown reference kind"):
        reference_files(folder, "moving")


def test_static_and_dynamic_reference_folders(few, tmp_path):
    cfg, encoders = few
    folder = tmp_path / "ref"
    folder.mkdir()
    photo("astronaut", (48, 48)).save(folder / "a.png")
    photo("coffee", (48, 48)).save(folder / "b.png")
    gen = tmp_path / "gen.png"
    photo("coffee", (48, 48)).save(gen)  # a copy of the SECOND reference file
    dino_cfg = cfg.with_overrides(encoders={"recognition": "tiny-dino"})
    static = score_images([gen], folder, kind="static", config=dino_cfg, encoders=encoders).per_image
    dynamic = score_images([gen], folder, kind="dynamic", config=dino_cfg, encoders=encoders).per_image
    assert static["n_ref"].item() == 1 and static["cra_sim"].item() < 0.999
    assert dynamic["n_ref"].item() == 2 and dynamic["cra_sim"].item() == pytest.approx(1.0, abs=1e-5)
    assert dynamic["cra_ref"].item().endswith("b.png") and dynamic["cra_tau"].item() == TAU_CRA["dynamic"]
    assert dynamic["cra_encoder"].item() == "tiny-dino" and dynamic["path"].item() == gen.as_posix()
    with pytest.raises(ValueError, match="exactly one image"):
        score_images([gen], [folder / "a.png", folder / "b.png"], kind="static", config=cfg)


@pytest.mark.parametrize("encoder", ["tiny-clip", "tiny-dino", "tiny-sscd"])
def test_an_exact_copy_is_recognised_by_any_encoder(few, tmp_path, encoder):
    cfg, encoders = few
    ref = tmp_path / "ref.png"
    photo("chelsea", (60, 44)).save(ref)
    copy = tmp_path / "copy.png"
    copy.write_bytes(ref.read_bytes())
    cfg = cfg.with_overrides(encoders={"recognition": encoder})
    for kind in ("static", "dynamic"):
        res = score_images([copy, copy], [ref], kind=kind, config=cfg, encoders=encoders)
        assert res.per_reference["cra"].item() == 1.0
        np.testing.assert_allclose(res.per_image["cra_sim"], 1.0, atol=1e-5)
    other = score_images([noise((60, 44), 0)], [ref], kind="static", config=cfg, encoders=encoders)
    assert other.per_image["cra_sim"].item() < 0.9999 and other.per_image["path"].item() == "<image 0>"


@pytest.mark.parametrize(
    "name, cells",
    [("tiny-dino", "crop"), ("tiny-dino", "tokens"), ("tiny-clip", "crop"), ("tiny-sscd", "crop")],
)
def test_an_exact_copy_is_fully_reused(few, name, cells):
    cfg, encoders = few
    ref = photo("astronaut", (90, 62))  # with grid remainders
    cfg = cfg.with_overrides(encoders={"realization": name}, realization={"cells": cells})
    pi = score_images([ref.copy()], [ref], kind="static", config=cfg, encoders=encoders).per_image
    np.testing.assert_allclose(pi["vr_cells"].item(), 1.0, atol=1e-5)
    assert pi["vr"].tolist() == [1.0] and pi["vi"].tolist() == [0.0] and pi["vr_tau"].item() == TAU_REUSE
    assert pi["vr_cells_mode"].item() == cells


def test_a_cell_permuted_copy_is_fully_reused_in_crop_mode(few):
    cfg, encoders = few
    ref = photo("chelsea", (96, 64))
    gens = [permuted(ref, seed=5), noise((96, 64), 1)]
    pi = score_images(gens, [ref], kind="static", config=cfg, encoders=encoders).per_image
    np.testing.assert_allclose(pi["vr_cells"].iloc[0], 1.0, atol=1e-5)  # each cell matches its moved original
    assert pi["vr"].iloc[0] == 1.0
    assert max(pi["vr_cells"].iloc[1]) < 0.999  # noise does not copy any cell


def test_pooling_modes_differ_and_are_recorded(few):
    cfg, encoders = few
    ref, gen = photo("coffee", (64, 64)), photo("rocket", (64, 64))
    runs = {
        pool: score_images(
            [gen],
            [ref],
            kind="static",
            config=cfg.with_overrides(realization={"pool": pool}),
            encoders=encoders,
        ).per_image
        for pool in ("mean_all", "cls")
    }
    assert not np.allclose(runs["mean_all"]["vr_cells"].item(), runs["cls"]["vr_cells"].item())
    assert [runs[p]["vr_pool"].item() for p in runs] == ["mean_all", "cls"]
    clip = cfg.with_overrides(encoders={"realization": "tiny-clip"})
    assert (
        score_images([gen], [ref], kind="static", config=clip, encoders=encoders).per_image["vr_pool"].item()
        == "native"
    )


def test_cell_modes_compared_on_the_same_images(few):
    cfg, encoders = few
    refs = [photo("coffee", (64, 64))]
    gens = [photo("coffee", (64, 64)), permuted(photo("coffee", (64, 64))), noise((64, 64), 2)]
    crop = score_images(gens, refs, kind="static", config=cfg, encoders=encoders)
    tokens_cfg = cfg.with_overrides(realization={"cells": "tokens"})
    tokens = score_images(gens, refs, kind="static", config=tokens_cfg, encoders=encoders)
    summary, _ = score_tables.cell_mode_comparison(crop, tokens)
    want = cell_mode_agreement(np.stack(crop.per_image["vr_cells"]), np.stack(tokens.per_image["vr_cells"]))
    assert summary == want and summary["n_images"] == 3
    clip_tokens = tokens_cfg.with_overrides(encoders={"realization": "tiny-clip"})
    with pytest.raises(Exception, match="timm"):
        score_images(gens, refs, kind="static", config=clip_tokens, encoders=encoders)
