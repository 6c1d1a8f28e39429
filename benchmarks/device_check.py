"""Device check (issue 20): the CUDA paths in one short run on a GPU machine, the same checks on CPU in CI.

Runs the package through its command line only (``python -m iconicity_utils <command>``), in
subprocesses, on copies of the rehearsal config (configs/rehearsal.yaml: five pipeline classes as
random-weight stand-ins, built on the spot when missing) with tiny sizes and every output under
``--out``, where it writes its table (``device_check.md``, ``.json``) and its log
(``device_check.log``, and ``logs/<run>.log``); it exits 1 on any mismatch.  Without CUDA
(``--device cpu``, or ``auto`` there) the same checks run on ``cpu`` only and the table says so
(tests/test_device_check.py runs that mode in CI).  benchmarks/README.md: the one-command recipe
and what each row means.  ``device_check.py worker <command> ...`` is what each process runs under
``accelerate launch`` when two processes share one GPU (:func:`worker`).

    .venv/bin/python benchmarks/device_check.py --out benchmarks/results/device_check   # cuda if torch sees one
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
sys.path[:0] = [str(ROOT), str(SCRIPT.parent)]  # this checkout's package (wherever it lies), machine.py
from machine import describe_machine  # noqa: E402

from iconicity_utils.config import load_config  # noqa: E402
from iconicity_utils.core.io import read_table  # noqa: E402
from iconicity_utils.core.launch import launch_command  # noqa: E402
from iconicity_utils.registry import Registry  # noqa: E402

PASS, FAIL, INFO, NA, DRY = "PASS", "FAIL", "info", "n/a", "dry-run"
KEYS = ["model", "variant", "slug", "index"]
#: max |diff| allowed against CPU fp32, per precision (TF32 convolutions; fp16 rounding)
TOLERANCES = {"fp32": 2e-3, "fp16": 2e-2}
#: max |diff| allowed between two processes and one, per device type (the CPU: to the bit)
SAME_TOLERANCE = {"cpu": 0.0, "cuda": 1e-5}
#: max pixel difference (8-bit levels) between two processes' images and one's, per device type
SAME_PIXELS = {"cpu": 0, "cuda": 1}
SCORE_VALUES = ("cra_sim", "vr_mean", "vr", "vr_max", "vi")
TABLES = {"generate": "generations.parquet", "score": "scores_per_image.parquet"}
STANDIN_NOTE = "stand-in speed says little about real models (tiny random-weight networks, 64 px)"


@dataclass
class Row:
    """One line of the table."""

    section: str
    check: str
    verdict: str
    result: str
    detail: str = ""


@dataclass(frozen=True)
class Run:
    """One stage run; ``same_as``: an earlier run it would repeat exactly (then that one is reused)."""

    name: str
    stage: str
    device: str
    precision: str = "fp32"
    processes: int = 1
    same_as: str | None = None


def pick_device(requested: str, cuda_available: bool) -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA device needs one."""
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ValueError(f"--device {requested}: expected auto, cpu or cuda[:N]")
    if requested.startswith("cuda") and not cuda_available:
        raise ValueError(f"--device {requested}: torch sees no CUDA device")
    return requested


def device_type(device: str) -> str:
    return device.split(":")[0]


def precisions(device: str) -> tuple[str, ...]:
    """The scoring precisions compared with CPU fp32: fp16 autocast exists on CUDA only."""
    return ("fp32", "fp16") if device_type(device) == "cuda" else ("fp32",)


def autocast_dtype(device: str, precision: str) -> str | None:
    """The autocast dtype the encoders run under (None: plain fp32), by the package's rule.

    Raises:
        ValueError: fp16/bf16 off CUDA (``encoders.precision`` is refused there when a config is read).
    """
    if precision == "fp32":
        return None
    if device_type(device) != "cuda":
        raise ValueError(f"{precision} autocast needs a CUDA device, not {device!r}")
    return {"fp16": "float16", "bf16": "bfloat16"}[precision]


def expected_dtype(registry_dtype: str, device: str) -> str:
    """Generation runs in the registry's dtype on every device: nothing is cast behind its back."""
    return registry_dtype


def plan_runs(device: str) -> list[Run]:
    """Every run, in order; on the CPU the device runs are the CPU runs themselves (reused)."""
    cpu = device_type(device) == "cpu"
    runs = [
        Run("gen-cpu", "generate", "cpu"),
        Run("gen-dev", "generate", device, same_as="gen-cpu" if cpu else None),
        Run("gen-dev-2p", "generate", device, processes=2),
        Run("score-cpu", "score", "cpu"),
        Run("score-dev-fp32", "score", device, same_as="score-cpu" if cpu else None),
    ]
    runs += [Run(f"score-dev-{p}", "score", device, precision=p) for p in precisions(device)[1:]]
    return [*runs, Run("score-dev-2p", "score", device, processes=2), Run("preflight", "preflight", device)]


def two_process_mode(device: str, n_gpus: int) -> str:
    """``cpu-gloo``; ``gpu-per-process`` (two or more GPUs, NCCL); ``shared-gpu`` (one GPU for both)."""
    return "cpu-gloo" if device_type(device) == "cpu" else "gpu-per-process" if n_gpus >= 2 else "shared-gpu"


def two_process_command(stage: str, config, device: str, n_gpus: int, args=(), port=None, worker=None):
    """The package's ``accelerate launch --multi_gpu --num_processes 2`` command for ``stage``.

    With one GPU (or ``worker=True``) each process runs :func:`worker` instead of ``-m
    iconicity_utils``: the same command line over a gloo process group, since NCCL refuses two
    ranks on one device.
    """
    cmd = launch_command(stage, config, 2, args, port=port)
    if not (worker if worker is not None else two_process_mode(device, n_gpus) == "shared-gpu"):
        return cmd
    at = next(i for i in range(len(cmd) - 1) if cmd[i : i + 2] == ["-m", "iconicity_utils"])
    return [*cmd[:at], str(SCRIPT), "worker", *cmd[at + 2 :]]


def parse_launch(cmd: Sequence[str]) -> argparse.Namespace:
    """Parse an ``accelerate launch`` command with accelerate's own parser: the dry run."""
    from accelerate.commands.launch import launch_command_parser

    ns = launch_command_parser().parse_args(list(cmd[list(cmd).index("accelerate.commands.launch") + 1 :]))
    if not ns.multi_gpu or int(ns.num_processes) != 2:
        raise ValueError(f"not a two-process --multi_gpu launch: {' '.join(cmd)}")
    return ns


def shared_local_rank(local_rank: int, n_devices: int) -> int:
    """The GPU of a process when processes outnumber GPUs: ``local_rank mod n_devices``."""
    return local_rank % n_devices if n_devices > 0 else local_rank


def worker(argv: Sequence[str]) -> None:
    """One process of a shared-GPU launch: a gloo process group, then ``iconicity <argv>``.

    accelerate already puts rank 1 of one GPU on ``cuda:0`` (local rank mod device count), but its
    barrier would name ``cuda:1``: the local rank is folded the same way before accelerate reads it.
    """
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        local = shared_local_rank(int(os.environ["LOCAL_RANK"]), torch.cuda.device_count())
        os.environ["LOCAL_RANK"] = str(local)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    sys.argv = ["iconicity", *argv]
    try:
        runpy.run_module("iconicity_utils", run_name="__main__", alter_sys=True)
    finally:  # every collective is behind it: let gloo's threads go before the interpreter does
        if dist.is_initialized():
            dist.destroy_process_group()


def image_problems(ref: pd.DataFrame, other: pd.DataFrame, pixel_tol: int | None) -> tuple[list[str], int]:
    """Shapes, flat images and pixel differences of two runs' images (rows in the same order).

    Returns the problems and the largest pixel difference in 8-bit levels.
    """
    problems, worst = [], 0
    for a_path, b_path in zip(ref["path"], other["path"], strict=True):
        a, b = (np.asarray(Image.open(ROOT / p).convert("RGB"), dtype=np.int16) for p in (a_path, b_path))
        if a.shape != b.shape:
            problems.append(f"shape {b.shape} != {a.shape} ({b_path})")
            continue
        if b.std() == 0:
            problems.append(f"flat image (a NaN decodes to one): {b_path}")
        worst = max(worst, int(np.abs(a - b).max()))
    if pixel_tol is not None and worst > pixel_tol:
        problems.append(f"pixels differ by up to {worst} levels (allowed {pixel_tol})")
    return problems, worst


def _model_problems(a: pd.DataFrame, b: pd.DataFrame, dtype: str, device: str) -> list[str]:
    if not a[KEYS].equals(b[KEYS]):
        return [f"units differ: {len(b)} rows against {len(a)}"]
    seeds = int((a["seed"] != b["seed"]).sum())
    problems = [f"{seeds} seeds differ"] if seeds else []
    for col, want in (("device", device_type(device)), ("dtype", dtype)):
        got = sorted(set(b[col].dropna().astype(str)))
        if got != [want]:
            problems.append(f"{col} recorded {got}, expected {want!r}")
    return problems


def compare_generation(
    ref: pd.DataFrame, other: pd.DataFrame, dtypes: dict[str, str], device: str, pixel_tol: int | None
) -> list[Row]:
    """One row per model of ``dtypes``: manifest ``other`` against manifest ``ref``."""
    rows = []
    for model, dtype in dtypes.items():
        a, b = (df[df["model"] == model].sort_values(KEYS).reset_index(drop=True) for df in (ref, other))
        problems, worst = _model_problems(a, b, dtype, device), -1
        if not problems:
            found, worst = image_problems(a, b, pixel_tol)
            problems += found
        size = f"{a['height'].iloc[0]}x{a['width'].iloc[0]}" if len(a) else "-"
        result = "; ".join(problems) or f"{len(b)} images {size}, {dtype}, same seeds, none flat"
        detail = f"max |pixel diff| {worst}" + ("" if pixel_tol is None else f" (allowed {pixel_tol})")
        rows.append(Row("generation", model, FAIL if problems else PASS, result, detail))
    return rows


def _cells(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Every image's per-cell maxima, concatenated, with each cell's threshold."""
    arrays = [np.asarray(c, dtype=np.float64) for c in df["vr_cells"]]
    cells = np.concatenate(arrays) if arrays else np.zeros(0)
    return cells, np.repeat(df["vr_tau"].to_numpy(dtype=np.float64), [len(c) for c in arrays])


def compare_scores(ref: pd.DataFrame, other: pd.DataFrame, tol: float) -> dict:
    """Per-image scores of ``other`` against ``ref``: max |diff| per value, and flipped decisions.

    A flipped decision (CRA pass, or a cell counted as reused) is *explained* when the reference
    value lies within ``tol`` of its threshold; any other flip, a missing or extra row, or a
    difference over ``tol`` is a mismatch (``ok`` False).
    """
    a, b = (df.sort_values(KEYS).reset_index(drop=True) for df in (ref, other))
    out = {"rows": len(b), "missing": not a[KEYS].equals(b[KEYS]), "flips": 0, "unexplained": 0}
    if out["missing"]:
        return {**out, "ok": False, **{f"max_{v}": float("nan") for v in SCORE_VALUES}}
    for value in SCORE_VALUES:
        diff = np.abs(a[value].to_numpy(dtype=np.float64) - b[value].to_numpy(dtype=np.float64))
        out[f"max_{value}"] = float(np.nanmax(diff)) if len(diff) else 0.0
    geq = len(a) and str(a["comparison"].iloc[0]) == ">="
    cra = a["cra_pass"].to_numpy(bool) != b["cra_pass"].to_numpy(bool)
    cra_near = np.abs(a["cra_sim"].to_numpy(float) - a["cra_tau"].to_numpy(float)) <= tol
    (ca, tau), (cb, _) = _cells(a), _cells(b)
    if len(ca) != len(cb):
        return {**out, "ok": False, "missing": True}
    cell = ((ca >= tau) != (cb >= tau)) if geq else ((ca > tau) != (cb > tau))
    out["flips"] = int(cra.sum() + cell.sum())
    out["unexplained"] = int((cra & ~cra_near).sum() + (cell & ~(np.abs(ca - tau) <= tol)).sum())
    over = any(out[f"max_{v}"] > tol for v in SCORE_VALUES)
    return {**out, "ok": not over and out["unexplained"] == 0}


def score_row(section: str, check: str, result: dict, tol: float) -> Row:
    text = (
        f"max |diff| cra_sim {result['max_cra_sim']:.2e}, vr_mean {result['max_vr_mean']:.2e}; "
        f"{result['flips']} flipped decisions ({result['unexplained']} not near a threshold)"
    )
    detail = f"{result['rows']} images; tolerance {tol:g}" + ("; ROWS DIFFER" if result["missing"] else "")
    return Row(section, check, PASS if result["ok"] else FAIL, text, detail)


def exit_code(rows: Sequence[Row]) -> int:
    """1 when any row failed, else 0."""
    return 1 if any(r.verdict == FAIL for r in rows) else 0


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| section | check | verdict | result | detail |", "|---|---|---|---|---|"]
    for r in rows:
        cells = (r.section, r.check, r.verdict, r.result, r.detail)
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def run_config(base: dict, root: Path, out: Path, run: Run, sizes: dict) -> dict:
    """The config of one run: ``base`` with tiny sizes, its devices and precision, outputs under ``out``.

    A generation run has its own data root ``out/runs/<run>/data``; every other run reads the
    images of ``gen-cpu``.  Results and the feature cache go to ``out/runs/<run>``.
    """
    data, home = json.loads(json.dumps(base)), out / "runs" / run.name
    data_run = run.name if run.stage == "generate" else "gen-cpu"
    standins = base.get("paths", {}).get("standins", ".cache/standins")
    data["name"] = run.name.replace("-", "_")
    data["paths"] = {
        **{k: str(home / k) for k in ("results", "figures", "cache")},
        "data": str(out / "runs" / data_run / "data"),
        "root": str(root),
        "standins": str(root / standins),  # an absolute path stays itself
    }
    col = data["collection"]
    col.update(top_k_static=sizes["static"], top_k_dynamic=sizes["dynamic"])
    col["snapshot"] = str(root / col["snapshot"])
    gen = dict(n_images=sizes["n_images"], batch_size=sizes["batch_size"], num_threads=1, verify="decode")
    data["generation"].update(gen, device=run.device if run.stage in ("generate", "preflight") else "cpu")
    enc_device = run.device if run.stage in ("score", "preflight") else "cpu"
    data["encoders"].update(device=enc_device, precision=run.precision)
    data.setdefault("scoring", {}).update(n_bootstrap=50, num_workers=0)
    return data


def write_yaml(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def child_env(device: str) -> dict[str, str]:
    """One thread per process (CPU kernels then sum in one order), no network, no GPU for CPU runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    if device_type(device) == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


class Session:
    """The output folder, the log, the time budget, and what each subprocess printed."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.t0, self.budget = out, time.perf_counter(), budget_s
        (out / "logs").mkdir(parents=True, exist_ok=True)
        self.log_file = (out / "device_check.log").open("w", encoding="utf-8")
        self.seconds: dict[str, float] = {}
        self.stdout: dict[str, str] = {}

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log_file.write(text + "\n")
        self.log_file.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def call(self, name: str, cmd: list[str], device: str) -> int:
        """Run ``cmd`` in the repository root, within the budget; its output to ``logs/<name>.log``."""
        self.say(f"$ {' '.join(cmd)}")
        t, env = time.perf_counter(), child_env(device)
        try:
            timeout = max(self.budget - self.elapsed(), 5)
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            code, text = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, text = 124, f"TIMED OUT after {exc.timeout:.0f} s (--budget-s)"
        self.seconds[name], self.stdout[name] = time.perf_counter() - t, text
        (self.out / "logs" / f"{name}.log").write_text(text, encoding="utf-8")
        self.log_file.write(text + "\n")
        self.say(f"  -> exit {code} in {self.seconds[name]:.1f} s ({name})")
        return code

    def table(self, run: Run | None) -> pd.DataFrame | None:
        """The manifest or per-image scores a run wrote (None when it wrote none)."""
        if run is None:
            return None
        path = self.out / "runs" / (run.same_as or run.name) / "results" / TABLES[run.stage]
        return read_table(path) if path.is_file() else None


def prepare(s: Session, configs: dict[str, Path]) -> list[Row]:
    """Build the stand-ins (idempotent) and collect the references once, for every generation run."""
    rows = []
    for command, what in (("demo", "stand-ins, built on the spot"), ("collect", "references")):
        code = s.call(command, launch_command(command, configs["gen-cpu"]), "cpu")
        rows.append(Row("setup", f"{command} ({what})", PASS if code == 0 else FAIL, f"exit {code}"))
    source = s.out / "runs" / "gen-cpu" / "data"
    for run in ("gen-dev", "gen-dev-2p"):
        target = s.out / "runs" / run / "data"
        if source.is_dir() and not target.exists():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("generated"))
    return rows


def execute(s: Session, run: Run, config: Path, n_gpus: int, worker_entry: bool | None) -> Row | None:
    """Run one stage (nothing when it is an earlier run again); a row only when it failed."""
    if run.same_as:
        s.say(f"{run.name}: the same run as {run.same_as} on this device (cpu mode): reused")
        return None
    home = s.out / "runs" / run.name
    args = ["--no-progress", "--summary-json", str(home / "summary.json")] if run.stage == "generate" else []
    manifest = s.out / "runs" / "gen-cpu" / "results" / TABLES["generate"]
    if run.stage == "score" and manifest.is_file():  # score the CPU's images
        (home / "results").mkdir(parents=True, exist_ok=True)
        shutil.copy2(manifest, home / "results" / manifest.name)
    if run.processes == 1:
        cmd = launch_command(run.stage, config, 1, args)
    else:
        cmd = two_process_command(run.stage, config, run.device, n_gpus, args, worker=worker_entry)
    code = s.call(run.name, cmd, run.device)
    return None if code == 0 else Row(run.stage, run.name, FAIL, f"exit {code}", f"see logs/{run.name}.log")


def generation_rows(s: Session, runs: dict[str, Run], dtypes: dict[str, str], device: str) -> list[Row]:
    """Device against CPU, per model, then two processes against one."""
    ref, dev, two = (s.table(runs[n]) for n in ("gen-cpu", "gen-dev", "gen-dev-2p"))
    if ref is None or dev is None:
        return [Row("generation", "device against cpu", FAIL, "a generation run left no manifest")]
    rows = compare_generation(ref, dev, dtypes, device, pixel_tol=None)
    for r in rows:
        r.detail += " against cpu" + ("; cpu mode: the device run is the CPU run" if device == "cpu" else "")
    if two is None:
        return [*rows, Row("two processes", "generation", FAIL, "the two-process run left no manifest")]
    tol = SAME_PIXELS[device_type(device)]
    same = compare_generation(dev, two, dtypes, device, pixel_tol=tol)
    bad = [f"{r.check}: {r.result}" for r in same if r.verdict == FAIL]
    worst = max(int(re.search(r"(-?\d+)", r.detail).group(1)) for r in same)
    text = "; ".join(bad) or f"{len(two)} images: same units, seeds, shapes; pixels as one process's"
    detail = f"max |pixel diff| against one process {worst} (allowed {tol})"
    return [
        *rows,
        Row("two processes", f"generation, {len(same)} models", FAIL if bad else PASS, text, detail),
    ]


def scoring_rows(s: Session, runs: dict[str, Run], device: str, tolerances: dict[str, float]) -> list[Row]:
    """Device fp32 and fp16 autocast against CPU fp32, then two processes against one."""
    ref, rows = s.table(runs["score-cpu"]), []
    if ref is None:
        return [Row("scoring", "cpu fp32", FAIL, "the CPU scoring run left no table")]
    for p in precisions(device):
        other = s.table(runs[f"score-dev-{p}"])
        check = f"{device} {p}{' autocast' if p != 'fp32' else ''} vs cpu fp32"
        if other is None:
            rows.append(Row("scoring", check, FAIL, "no table"))
            continue
        rows.append(score_row("scoring", check, compare_scores(ref, other, tolerances[p]), tolerances[p]))
        rows[-1].detail += "; cpu mode: the device run is the CPU run" if device == "cpu" else ""
    two, one = s.table(runs["score-dev-2p"]), s.table(runs["score-dev-fp32"])
    if two is None or one is None:
        return [*rows, Row("two processes", "scoring", FAIL, "no table")]
    tol = SAME_TOLERANCE[device_type(device)]
    return [*rows, score_row("two processes", f"scoring ({device} fp32)", compare_scores(one, two, tol), tol)]


def fp16_refusal_row(s: Session, base: dict, root: Path, sizes: dict) -> Row:
    """fp16 autocast on the CPU: refused when the config is read (:func:`autocast_dtype` refuses it too)."""
    run = Run("fp16-on-cpu", "score", "cpu", precision="fp16")
    path = write_yaml(run_config(base, root, s.out, run, sizes), s.out / "configs" / f"{run.name}.yaml")
    try:
        load_config(path)
    except ValueError as exc:
        message = str(exc).split(": ", 1)[-1]
        return Row("scoring", "cpu fp16 autocast", NA, "refused on the CPU, as the code does", message)
    return Row("scoring", "cpu fp16 autocast", FAIL, "the config accepts fp16 autocast on the CPU")


def launch_rows(configs: dict[str, Path], device: str, n_gpus: int, worker_entry: bool | None) -> list[Row]:
    """The two-process commands for one GPU and for two, parsed by accelerate; which kind ran here."""
    rows, ran = [], two_process_mode(device, n_gpus)
    for mode, gpus in (("shared-gpu", 1), ("gpu-per-process", 2), ("cpu-gloo", 0)):
        dev = "cpu" if gpus == 0 else "cuda"
        for stage, run in (("generate", "gen-dev-2p"), ("score", "score-dev-2p")):
            forced = worker_entry if mode == ran else None
            cmd = two_process_command(stage, configs[run], dev, gpus, port=29500, worker=forced)
            ns = parse_launch(cmd)
            entry = "-m iconicity_utils" if ns.module else f"{Path(ns.training_script).name} worker"
            text = f"{ns.num_processes} processes, --multi_gpu, {entry} {stage}"
            command = " ".join(cmd[1:]).replace(str(ROOT) + "/", "")
            rows.append(Row("launch", f"{mode}: {stage}", INFO if mode == ran else DRY, text, command))
    return rows


def _rate(s: Session, run: Run) -> float | None:
    """Images per second of one run: the generation loop's (its summary), or scoring's (its last line)."""
    if run.stage == "generate":
        path = s.out / "runs" / run.name / "summary.json"
        return json.loads(path.read_text()).get("images_per_second") if path.is_file() else None
    m = re.search(r"scored (\d+) generated images .*? in ([\d.]+) s", s.stdout.get(run.name, ""))
    return int(m.group(1)) / max(float(m.group(2)), 1e-9) if m else None


def throughput_rows(s: Session, runs: dict[str, Run]) -> list[Row]:
    """Images per second, generation and scoring, CPU against the device, one and two processes."""
    rows = []
    for stage, names in (("generation", ("gen-cpu", "gen-dev", "gen-dev-2p")),
                         ("scoring", ("score-cpu", "score-dev-fp32", "score-dev-fp16", "score-dev-2p"))):  # fmt: skip
        picked = [runs[n] for n in names if n in runs and not runs[n].same_as]
        rates = [(r, _rate(s, r)) for r in picked]
        text = ", ".join(f"{r.device} {r.precision} {r.processes}p: {x:.1f} img/s" for r, x in rates if x)
        rows.append(Row("throughput", stage, INFO, text or "not measured", STANDIN_NOTE))
    return rows


def preflight_rows(s: Session, config: Path, device: str) -> tuple[list[Row], str]:
    """The preflight on the device config, offline: its exit code, its device rows, and its table."""
    report = s.out / "preflight.json"
    cmd = launch_command("preflight", config, 1, ["--offline", "--json", str(report)])
    code = s.call("preflight", cmd, device)
    rows = [Row("preflight", "exit code", PASS if code == 0 else FAIL, f"exit {code}", "its table: below")]
    for r in json.loads(report.read_text()).get("rows", []) if report.is_file() else []:
        if r["check"] == "device":
            verdict = {"ok": PASS, "warn": INFO}.get(r["status"], FAIL)  # a warning is shown, not judged
            rows.append(Row("preflight", f"device row: {r['subject']}", verdict, r["status"], r["detail"]))
    return rows, s.stdout.get("preflight", "")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the table, the log and every run's outputs")
    p.add_argument("--device", default="auto", help="auto (the default: cuda if torch sees one), cpu, cuda")
    p.add_argument("--config", default=str(ROOT / "configs" / "rehearsal.yaml"), help="the study config")
    p.add_argument("--static", type=int, default=1, help="static references (default: 1)")
    p.add_argument("--dynamic", type=int, default=1, help="dynamic references (default: 1)")
    p.add_argument("--n-images", type=int, default=2, help="images per reference and model (default: 2)")
    p.add_argument("--batch-size", type=int, default=2, help="generation batch (default: 2)")
    p.add_argument("--budget-s", type=float, default=360.0, help="time for everything (default: 360)")
    p.add_argument("--tol-fp32", type=float, default=TOLERANCES["fp32"])
    p.add_argument("--tol-fp16", type=float, default=TOLERANCES["fp16"])
    p.add_argument("--worker-entry", action="store_true",
                   help="two-process runs through the shared-GPU worker entry, whatever the device")  # fmt: skip
    return p


def _header(s: Session, device: str, n_gpus: int, config: str) -> None:
    s.say(f"device check, {time.strftime('%Y-%m-%d %H:%M:%S')}; machine: {describe_machine()}")
    if device == "cpu":
        s.say("CPU MODE (no CUDA device, or --device cpu): every check runs on cpu only. The device runs "
              "are the CPU runs, fp16 autocast must be refused, two processes use gloo, and the GPU "
              "launch commands are built and parsed by accelerate but not run.")  # fmt: skip
    else:
        s.say(f"CUDA MODE on {device}, {n_gpus} GPU(s); two processes: {two_process_mode(device, n_gpus)}")
    s.say(f"config: {config}; outputs: {s.out}")


def check(args: argparse.Namespace) -> int:
    """Every step in order; writes the table and returns the exit code."""
    import torch

    device = pick_device(args.device, torch.cuda.is_available())
    n_gpus = torch.cuda.device_count() if device_type(device) == "cuda" else 0
    worker_entry = True if args.worker_entry else None
    s = Session(Path(args.out).resolve(), args.budget_s)
    _header(s, device, n_gpus, args.config)
    base, root = yaml.safe_load(Path(args.config).read_text()), load_config(args.config).root
    sizes = {k: getattr(args, k) for k in ("static", "dynamic", "n_images", "batch_size")}
    runs = {r.name: r for r in plan_runs(device)}
    configs = {
        n: write_yaml(run_config(base, root, s.out, r, sizes), s.out / "configs" / f"{n}.yaml")
        for n, r in runs.items()
    }
    gen_cfg = load_config(configs["gen-cpu"])
    dtypes = {m: expected_dtype(Registry.for_config(gen_cfg).model(m).dtype, device) for m in gen_cfg.models}
    rows = prepare(s, configs)
    for name, run in runs.items():
        if run.stage != "preflight" and (failed := execute(s, run, configs[name], n_gpus, worker_entry)):
            rows.append(failed)
    tolerances = {"fp32": args.tol_fp32, "fp16": args.tol_fp16}
    rows += generation_rows(s, runs, dtypes, device) + scoring_rows(s, runs, device, tolerances)
    rows += [fp16_refusal_row(s, base, root, sizes)] if device == "cpu" else []
    rows += launch_rows(configs, device, n_gpus, worker_entry) + throughput_rows(s, runs)
    preflight, preflight_table = preflight_rows(s, configs["preflight"], device)
    total = s.elapsed()
    verdict = PASS if total <= args.budget_s else FAIL
    rows += [*preflight, Row("total", "wall time", verdict, f"{total:.0f} s (budget {args.budget_s:.0f} s)")]
    return _write(s, rows, preflight_table, device)


def _write(s: Session, rows: list[Row], preflight_table: str, device: str) -> int:
    """The table (markdown and JSON) under ``--out``, and on the screen; the exit code."""
    code, table = exit_code(rows), format_table(rows)
    (s.out / "device_check.md").write_text(f"{table}\n\nPreflight:\n\n```\n{preflight_table.strip()}\n```\n")
    report = {"device": device, "exit_code": code, "rows": [asdict(r) for r in rows]}
    (s.out / "device_check.json").write_text(json.dumps(report, indent=2))
    s.say("\n" + table)
    verdict = "ALL CHECKS PASSED" if code == 0 else "MISMATCH: see the FAIL rows"
    s.say(f"\n{verdict} ({device}); table: {s.out / 'device_check.md'}; log: {s.out / 'device_check.log'}")
    s.log_file.close()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        worker(argv[1:])
        return 0
    return check(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
