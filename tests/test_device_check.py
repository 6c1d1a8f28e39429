"""benchmarks/device_check.py (issue 20): its CPU mode end to end, and its pure choices.

The end-to-end test runs the script as CI does (``--device cpu``) in a subprocess, into a tmp
folder, on a study config written by :func:`study_configs.write_study_config` from the rehearsal
config, with its two-process runs through the shared-GPU worker entry (the path one GPU takes).
The other tests check, without a GPU, what the CUDA branch decides: the device, the dtype, the
autocast, the runs, and the accelerate commands (parsed by accelerate's own parser); and that an
injected mismatch fails the comparison and the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_configs import write_study_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "device_check.py"
sys.path.insert(0, str(SCRIPT.parent))
import device_check as dc  # noqa: E402


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """The script in CPU mode, on a rehearsal config with outputs in a tmp folder."""
    folder = tmp_path_factory.mktemp("device_check")
    cfg = write_study_config(folder, name="rehearsal", base="rehearsal")
    out = folder / "out"
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--config", str(cfg.source)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        [*cmd, "--worker-entry"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    report = (
        json.loads((out / "device_check.json").read_text()) if (out / "device_check.json").is_file() else {}
    )
    return run, out, report


def _rows(report: dict, section: str) -> list[dict]:
    return [r for r in report["rows"] if r["section"] == section]


def test_cpu_mode_passes_and_writes_its_table(cpu_run):
    run, out, report = cpu_run
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "CPU MODE" in run.stdout and "ALL CHECKS PASSED" in run.stdout
    table = (out / "device_check.md").read_text()
    assert table.startswith("| section | check | verdict | result | detail |")
    assert (out / "device_check.log").is_file() and (out / "logs" / "gen-cpu.log").is_file()
    assert report["device"] == "cpu" and report["exit_code"] == 0
    assert not [r for r in report["rows"] if r["verdict"] == dc.FAIL]


def test_cpu_mode_rows(cpu_run):
    _, _, report = cpu_run
    generation = _rows(report, "generation")
    assert [r["check"] for r in generation] == dc.load_config(REPO_ROOT / "configs" / "rehearsal.yaml").models
    assert all(r["verdict"] == dc.PASS and "4 images 64x64, float32" in r["result"] for r in generation)
    two = {r["check"].split(",")[0].split(" (")[0]: r for r in _rows(report, "two processes")}
    assert two["generation"]["verdict"] == two["scoring"]["verdict"] == dc.PASS
    assert "max |pixel diff| against one process 0" in two["generation"]["detail"]
    scoring = {r["check"]: r for r in _rows(report, "scoring")}
    assert scoring["cpu fp32 vs cpu fp32"]["verdict"] == dc.PASS
    assert scoring["cpu fp16 autocast"]["verdict"] == dc.NA  # refused on the CPU, as the code does
    assert "CUDA" in scoring["cpu fp16 autocast"]["detail"]
    launch = {r["check"]: r for r in _rows(report, "launch")}
    assert launch["cpu-gloo: generate"]["verdict"] == dc.INFO  # what ran here, through the worker entry
    assert "device_check.py worker generate" in launch["cpu-gloo: generate"]["detail"]
    assert launch["shared-gpu: score"]["verdict"] == launch["gpu-per-process: score"]["verdict"] == dc.DRY
    assert "-m iconicity_utils score" in launch["gpu-per-process: score"]["detail"]
    throughput = {r["check"]: r for r in _rows(report, "throughput")}
    assert "img/s" in throughput["generation"]["result"] and "says little" in throughput["scoring"]["detail"]
    preflight = _rows(report, "preflight")
    assert preflight[0]["result"] == "exit 0"
    assert any(r["check"].startswith("device row: cpu") and r["verdict"] == dc.PASS for r in preflight)


# --------------------------------------------------------------------------------------------
# The pure choices of the CUDA branch, on the CPU
# --------------------------------------------------------------------------------------------


def test_device_selection():
    assert dc.pick_device("auto", cuda_available=True) == "cuda"
    assert dc.pick_device("auto", cuda_available=False) == "cpu"
    assert dc.pick_device("cuda:1", cuda_available=True) == "cuda:1"
    assert dc.pick_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(ValueError, match="no CUDA"):
        dc.pick_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="expected"):
        dc.pick_device("mps", cuda_available=True)


def test_dtype_and_autocast():
    assert dc.expected_dtype("float16", "cuda") == "float16"  # the registry's dtype, on every device
    assert dc.expected_dtype("float32", "cpu") == "float32"
    assert dc.precisions("cuda:0") == ("fp32", "fp16") and dc.precisions("cpu") == ("fp32",)
    assert dc.autocast_dtype("cuda", "fp32") is None and dc.autocast_dtype("cpu", "fp32") is None
    assert (
        dc.autocast_dtype("cuda", "fp16") == "float16" and dc.autocast_dtype("cuda:1", "bf16") == "bfloat16"
    )
    with pytest.raises(ValueError, match="CUDA"):
        dc.autocast_dtype("cpu", "fp16")


def test_autocast_rule_matches_the_config(tmp_path):
    """What autocast_dtype refuses, the package's config refuses too (and accepts the rest)."""
    for device, precision in (("cpu", "fp32"), ("cpu", "fp16"), ("cuda", "fp16"), ("cuda", "fp32")):
        try:
            dc.autocast_dtype(device, precision)
            ours = True
        except ValueError:
            ours = False
        try:
            write_study_config(
                tmp_path, base="rehearsal", encoders={"device": device, "precision": precision}
            )
            theirs = True
        except ValueError:  # the config's error (ConfigError is a ValueError)
            theirs = False
        assert ours == theirs, (device, precision)


def test_plans():
    cpu = {r.name: r for r in dc.plan_runs("cpu")}
    assert cpu["gen-dev"].same_as == "gen-cpu" and cpu["score-dev-fp32"].same_as == "score-cpu"
    assert "score-dev-fp16" not in cpu and cpu["gen-dev-2p"].processes == 2 and not cpu["gen-dev-2p"].same_as
    cuda = {r.name: r for r in dc.plan_runs("cuda")}
    assert not any(r.same_as for r in cuda.values())
    assert cuda["score-dev-fp16"].precision == "fp16" and cuda["score-dev-fp16"].device == "cuda"
    assert cuda["gen-cpu"].device == cuda["score-cpu"].device == "cpu"
    assert dc.two_process_mode("cpu", 0) == "cpu-gloo"
    assert dc.two_process_mode("cuda", 1) == "shared-gpu"
    assert dc.two_process_mode("cuda", 4) == "gpu-per-process"
    assert [dc.shared_local_rank(r, 1) for r in range(3)] == [0, 0, 0]
    assert [dc.shared_local_rank(r, 2) for r in range(3)] == [0, 1, 0]


def test_run_configs_put_each_device_where_it_belongs(tmp_path):
    base = dc.yaml.safe_load((REPO_ROOT / "configs" / "rehearsal.yaml").read_text())
    sizes = {"static": 1, "dynamic": 0, "n_images": 4, "batch_size": 2}
    runs = {r.name: r for r in dc.plan_runs("cuda")}
    gen = dc.run_config(base, REPO_ROOT, tmp_path, runs["gen-dev"], sizes)
    fp16 = dc.run_config(base, REPO_ROOT, tmp_path, runs["score-dev-fp16"], sizes)
    pre = dc.run_config(base, REPO_ROOT, tmp_path, runs["preflight"], sizes)
    assert (gen["generation"]["device"], gen["encoders"]["device"]) == ("cuda", "cpu")
    encoders = fp16["encoders"]
    assert (fp16["generation"]["device"], encoders["device"], encoders["precision"]) == (
        "cpu",
        "cuda",
        "fp16",
    )
    assert pre["generation"]["device"] == pre["encoders"]["device"] == "cuda"
    assert gen["paths"]["data"] == str(tmp_path / "runs" / "gen-dev" / "data")
    assert fp16["paths"]["data"] == str(tmp_path / "runs" / "gen-cpu" / "data")  # scores the CPU's images
    assert fp16["paths"]["results"] == str(tmp_path / "runs" / "score-dev-fp16" / "results")
    assert gen["generation"]["n_images"] == 4 and gen["collection"]["top_k_dynamic"] == 0
    assert Path(gen["collection"]["snapshot"]).is_file() and Path(gen["paths"]["standins"]).is_absolute()
    assert base["generation"]["device"] == "cpu"  # the base is left as it was


def test_launch_commands_are_built_and_parsed_by_accelerate(tmp_path):
    config = tmp_path / "c.yaml"
    plain = dc.two_process_command("generate", config, "cuda", 2, ["--no-progress"], port=29500)
    ns = dc.parse_launch(plain)
    assert ns.multi_gpu and int(ns.num_processes) == 2 and ns.module
    assert ns.training_script == "iconicity_utils"
    assert ns.training_script_args == ["generate", "--config", str(config), "--no-progress"]
    assert dc.two_process_command("score", config, "cpu", 0, port=1) == dc.launch_command(
        "score", config, 2, port=1
    )
    shared = dc.two_process_command("score", config, "cuda", 1, port=29500)
    ns = dc.parse_launch(shared)
    assert not ns.module and Path(ns.training_script) == SCRIPT
    assert ns.training_script_args == ["worker", "score", "--config", str(config)]
    assert shared[:-5] == plain[: len(shared) - 5]  # the same launcher flags
    forced = dc.two_process_command("score", config, "cpu", 0, port=1, worker=True)
    assert forced[forced.index(str(SCRIPT)) + 1] == "worker"
    with pytest.raises(ValueError, match="two-process"):
        dc.parse_launch(dc.launch_command("score", config, 3, port=1))


# --------------------------------------------------------------------------------------------
# Comparisons: equal tables pass, an injected mismatch fails
# --------------------------------------------------------------------------------------------


def _scores(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cells = [rng.uniform(0, 1, 16).astype(np.float32) for _ in range(n)]
    return pd.DataFrame({
        "model": ["m"] * n, "variant": ["title"] * n, "slug": ["a", "b"] * (n // 2), "index": np.arange(n),
        "cra_sim": np.linspace(0.1, 0.9, n), "cra_tau": 0.5, "vr_tau": 0.6, "comparison": ">",
        "vr_mean": [c.mean() for c in cells], "vr": [(c > 0.6).mean() for c in cells],
        "vr_max": [c.max() for c in cells], "vi": [1 - (c > 0.6).mean() for c in cells], "vr_cells": cells,
    }).assign(cra_pass=lambda d: d["cra_sim"] > d["cra_tau"])  # fmt: skip


def test_equal_scores_pass():
    ref = _scores()
    result = dc.compare_scores(ref, ref.sample(frac=1, random_state=1), tol=0.0)  # row order does not matter
    assert result["ok"] and result["flips"] == 0 and result["max_cra_sim"] == 0.0
    assert dc.score_row("scoring", "x", result, 0.0).verdict == dc.PASS


def test_an_injected_mismatch_fails():
    ref = _scores()
    bad = ref.copy()
    bad.loc[0, "cra_sim"], bad.loc[0, "cra_pass"] = 0.95, True  # far from tau = 0.5: a real flip
    result = dc.compare_scores(ref, bad, tol=2e-3)
    assert not result["ok"] and result["flips"] == 1 and result["unexplained"] == 1
    row = dc.score_row("scoring", "cuda fp32 vs cpu fp32", result, 2e-3)
    assert row.verdict == dc.FAIL and dc.exit_code([dc.Row("a", "b", dc.PASS, ""), row]) == 1
    assert dc.exit_code([dc.Row("a", "b", dc.PASS, ""), dc.Row("a", "c", dc.NA, "")]) == 0
    # a difference over the tolerance, with no flip, fails too; a missing row fails
    drift = ref.assign(vr_mean=ref["vr_mean"] + 0.01)
    assert not dc.compare_scores(ref, drift, tol=2e-3)["ok"] and dc.compare_scores(ref, drift, tol=2e-2)["ok"]
    assert dc.compare_scores(ref, ref.iloc[1:], tol=1.0)["missing"]


def test_a_flip_near_its_threshold_is_explained():
    ref = _scores()
    ref.loc[0, "cra_sim"], ref.loc[0, "cra_pass"] = 0.5005, True
    near = ref.copy()
    near.loc[0, "cra_sim"], near.loc[0, "cra_pass"] = 0.4999, False
    cells = [c.copy() for c in near["vr_cells"]]
    ref.at[1, "vr_cells"] = np.where(np.arange(16) == 0, 0.6004, ref.at[1, "vr_cells"]).astype(np.float32)
    cells[1] = np.where(np.arange(16) == 0, 0.5999, ref.at[1, "vr_cells"]).astype(np.float32)
    near["vr_cells"] = cells
    result = dc.compare_scores(ref, near, tol=2e-3)
    assert result["flips"] == 2 and result["unexplained"] == 0 and result["ok"]


def _manifest(folder: Path, name: str, device: str, shift: int = 0, seeds=(1, 2)) -> pd.DataFrame:
    rows = []
    for i, seed in enumerate(seeds):
        path = folder / name / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = (np.arange(64 * 64 * 3).reshape(64, 64, 3) * (i + 3)) % 250 + shift
        dc.Image.fromarray(pixels.astype(np.uint8)).save(path)
        rows.append({"model": "m", "variant": "title", "slug": "s", "index": i, "seed": seed, "path": str(path),
                     "device": device, "dtype": "float32", "height": 64, "width": 64})  # fmt: skip
    return pd.DataFrame(rows)


def test_generation_comparison(tmp_path):
    cpu = _manifest(tmp_path, "cpu", "cpu")
    same = dc.compare_generation(
        cpu, _manifest(tmp_path, "cuda", "cuda"), {"m": "float32"}, "cuda", pixel_tol=0
    )
    assert [r.verdict for r in same] == [dc.PASS] and "max |pixel diff| 0" in same[0].detail
    shifted = dc.compare_generation(
        cpu, _manifest(tmp_path, "cuda2", "cuda", shift=3), {"m": "float32"}, "cuda", None
    )
    assert shifted[0].verdict == dc.PASS and "max |pixel diff| 3" in shifted[0].detail  # shown, not judged
    seeds = dc.compare_generation(
        cpu, _manifest(tmp_path, "s", "cuda", seeds=(1, 9)), {"m": "float32"}, "cuda", None
    )
    assert seeds[0].verdict == dc.FAIL and "1 seeds differ" in seeds[0].result
    wrong = dc.compare_generation(cpu, _manifest(tmp_path, "w", "cpu"), {"m": "float16"}, "cuda", None)
    assert wrong[0].verdict == dc.FAIL and "device recorded ['cpu']" in wrong[0].result
    assert "dtype recorded ['float32'], expected 'float16'" in wrong[0].result
    flat = _manifest(tmp_path, "flat", "cuda")
    dc.Image.new("RGB", (64, 64)).save(flat.loc[1, "path"])  # what a NaN decodes to
    nan = dc.compare_generation(cpu, flat, {"m": "float32"}, "cuda", None)
    assert nan[0].verdict == dc.FAIL and "flat image" in nan[0].result
    assert dc.exit_code(nan) == 1
