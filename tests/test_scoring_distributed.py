"""Scoring on several processes and after a kill: two CPU processes under ``accelerate launch`` give
the tables of one, to the bit; a scoring process killed with SIGKILL keeps every flushed block of
features, and the rerun embeds only the rest and lists each image exactly once.

One study (the scoring fixtures plus extra noise images, 49 distinct images) is scored three
times, each with its own cache and results folder: in this process on one thread, by two
processes under ``accelerate launch``, and by a process killed mid-run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scoring_fixtures as sf
from scoring_fixtures import noise

from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.core.launch import launch_command
from iconicity_utils.registry import Registry
from iconicity_utils.registry.encoders import load_encoder
from iconicity_utils.score import score
from iconicity_utils.score.inputs import SKIPPED
from iconicity_utils.score.store import FeatureStore
from iconicity_utils.score.tables import PER_MODEL, PER_REFERENCE
from iconicity_utils.score.writer import PER_IMAGE

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLES = (PER_IMAGE, PER_REFERENCE, PER_MODEL, SKIPPED)
KEYS = ["model", "variant", "slug", "index"]
EXTRA = 6  # noise images per (model, reference) on top of the fixtures' three
FLUSH = 4  # images per block: ~22 blocks, so both processes get some and a kill lands mid-run


def _env() -> dict[str, str]:
    # one thread per process in every run: CPU kernels then sum in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def study(tmp_path_factory, standins):
    """The study's data, and a config per run (``one``, ``two``, ``killed``) with its own cache."""
    root = tmp_path_factory.mktemp("distributed")
    base = sf.study_config(root)
    sf.make_study(base)
    manifest = read_table(base.generations_manifest)
    extra = []
    for m, model in enumerate(base.models):
        for s, slug in enumerate(sf.REFERENCES):
            for j in range(EXTRA):
                path = base.generated_path(model, "title", slug, 3 + j)
                noise((40, 40), seed=1000 * m + 100 * s + j).save(path)
                extra.append({"model": model, "variant": "title", "slug": slug, "index": 3 + j,
                              "seed": 7 + j, "prompt": slug, "path": base.relative(path)})  # fmt: skip
    manifest = pd.concat([manifest, pd.DataFrame(extra)], ignore_index=True)
    configs = {}
    for run in ("one", "two", "killed"):
        paths = {"results": str(root / run / "results"), "cache": str(root / run / "cache")}
        cfg = sf.study_config(root, name=run, scoring={"flush_every": FLUSH}, paths=paths)
        write_table(manifest, cfg.generations_manifest, cfg)
        configs[run] = cfg
    return configs, manifest


def _run(cfg, n: int) -> subprocess.CompletedProcess:
    cmd = launch_command("score", cfg.source, n)
    run = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _counts(stdout: str) -> tuple[int, int]:
    """``(distinct images decoded, encoder forward passes)`` from a run's summary line."""
    m = re.search(r"decoded (\d+) new images, (\d+) encoder forward passes", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(2))


def _tables(cfg) -> dict[str, pd.DataFrame]:
    return {name: read_table(cfg.results_dir / name) for name in TABLES}


@pytest.fixture(scope="module")
def encoders(study):
    reg = Registry.for_config(study[0]["one"])
    return {n: load_encoder(n, reg) for n in ("tiny-clip", "tiny-dino", "tiny-sscd")}


@pytest.fixture(scope="module")
def one(study, encoders):
    """The reference run: one process, one thread (as each process under accelerate)."""
    import torch

    configs, _ = study
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = score(configs["one"], encoders=encoders)
    finally:
        torch.set_num_threads(threads)
    return (res.counts["images"], res.forward_calls), _tables(configs["one"])


def test_two_processes_give_the_tables_of_one(study, one):
    configs, manifest = study
    run = _run(configs["two"], 2)
    assert run.stdout.count("scored ") == 1  # the main process reports, once
    per_process = re.search(r"\(2 processes: (\d+) \+ (\d+) images decoded\)", run.stdout)
    assert per_process and min(map(int, per_process.groups())) > 0, run.stdout
    counts, want = one
    got = _tables(configs["two"])
    assert len(want[PER_IMAGE]) == len(manifest) == 2 * 3 * (3 + EXTRA)
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
    assert _counts(run.stdout) == counts  # the work was split, not repeated
    assert got[PER_IMAGE].attrs["provenance"]["num_processes"] == 2
    # each process wrote its own shards into the shared cache
    cells = next((configs["two"].path("cache") / "features" / "tiny-dino").glob("cells-crop-*"))
    assert {p.name.split("-")[1] for p in cells.glob("part-*")} == {"p0", "p1"}


def _store_keys(cache: Path) -> list[set[str]]:
    return [FeatureStore(d).keys() for d in sorted((cache / "features").glob("*/*")) if d.is_dir()]


def test_a_run_killed_with_sigkill_resumes_without_recomputing(study, one, encoders):
    configs, manifest = study
    cfg = configs["killed"]
    cells = cfg.path("cache") / "features" / "tiny-dino"
    proc = subprocess.Popen(
        launch_command("score", cfg.source, 1),
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while len(list(cells.glob("cells-crop-*/part-*"))) < 4:  # the 4th block under way
            assert proc.poll() is None, (
                f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            )
            assert time.monotonic() < deadline, "no shard after 120 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (cfg.results_dir / PER_IMAGE).exists()  # no table from a killed run
    stores = _store_keys(cfg.path("cache"))
    complete = set.intersection(*stores)
    (n_unique, calls), want = one  # distinct images (exact copies share their features) and passes
    assert 3 * FLUSH <= len(complete) < n_unique, (
        f"the kill should land mid-run ({len(complete)} images cached)"
    )

    res = score(cfg, encoders=encoders)
    assert res.counts["images"] == n_unique - len(complete)  # exactly the images the kill left undone
    assert 0 < res.forward_calls < calls  # the same blocks as the full run, fewer of them
    again = score(cfg, encoders=encoders)
    assert again.forward_calls == 0 and again.counts["images"] == 0
    for result in (res, again):
        df = read_table(cfg.results_dir / PER_IMAGE)
        assert len(df) == len(manifest) and not df.duplicated(KEYS).any()  # each image exactly once
        assert len(result.per_image) == len(df)
    got = read_table(cfg.results_dir / PER_IMAGE)
    ref = want[PER_IMAGE]
    np.testing.assert_allclose(got["cra_sim"], ref["cra_sim"], atol=1e-6)
    np.testing.assert_allclose(np.stack(got["vr_cells"]), np.stack(ref["vr_cells"]), atol=1e-6)
    assert got["cra_pass"].tolist() == ref["cra_pass"].tolist()
