"""Generation speed (stage 02): the harness against bare pipeline calls, same model, same units, one run.

Measured side by side, interleaved, on the same machine, model and work units (same prompts, seeds,
batches and threads):

(a) **loop**: images/s of :func:`iconicity_utils.generate.generate`'s generation loop (pipeline call
    + PNG encoding with metadata + atomic, fsynced write) against bare ``pipe(prompts,
    generator=[...])`` calls over the same batches.  Target: harness/bare >= 0.95 (overhead < 5%).
(b) **end to end**: the whole ``generate()`` call (model load, scan, verification, loop, manifest)
    against a bare model load plus the bare loop.
(c) **resume**: a rerun with every unit done, per image, for ``verify: decode`` and ``verify: header``.
(d) on a CUDA machine only: the same on ``cuda`` in float16, and, with two or more GPUs, one process
    against two processes under ``accelerate launch`` (wall time of the CLI, model loads included).

The tiny stand-in (64 px, 8 steps) is the *worst case* for the relative overhead: the per-image
work of the harness is fixed (about a millisecond of PNG encoding and a write), while a real model
spends seconds per image.  Random weights make the images meaningless, not the timings.  The
stand-ins must be built (``python -m iconicity_utils demo --config configs/demo.yaml``).
Results also go to ``benchmarks/results/`` (git-ignored).

Usage::

    .venv/bin/python benchmarks/bench_generation.py                      # tiny-sd-a, 64 units, 5 repeats
    .venv/bin/python benchmarks/bench_generation.py --model tiny-sd-b --units 128 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import describe_machine  # noqa: E402

from iconicity_utils.config import load_config  # noqa: E402
from iconicity_utils.core.io import atomic_write_json, utc_now  # noqa: E402
from iconicity_utils.core.launch import launch_command  # noqa: E402
from iconicity_utils.generate import GenerationSummary, generate  # noqa: E402
from iconicity_utils.generate.cli import quiet_loading_bars  # noqa: E402
from iconicity_utils.generate.metadata import VERIFY_MODES  # noqa: E402
from iconicity_utils.generate.run import call_kwargs, torch_threads  # noqa: E402
from iconicity_utils.generate.units import plan_units  # noqa: E402
from iconicity_utils.registry import Registry, load_pipeline  # noqa: E402

TITLES = ["The Starry Night", "Mona Lisa", "The Scream", "Guernica", "Casablanca", "Psycho", "Metropolis"]


def make_project(folder: Path, model: str, dtype: str | None, device: str, batch_size: int, threads):
    """A throw-away project root: the repository's registry (``dtype`` overridden) and a demo-like config."""
    configs = folder / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    models = yaml.safe_load((ROOT / "configs" / "models.yaml").read_text())
    if dtype is not None:
        models["models"][model]["dtype"] = dtype
    (configs / "models.yaml").write_text(yaml.safe_dump(models))
    (configs / "encoders.yaml").write_text((ROOT / "configs" / "encoders.yaml").read_text())
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data.update(name="bench", models=[model])
    data["generation"].update(batch_size=batch_size, device=device, num_threads=threads)
    data["collection"]["snapshot"] = str(ROOT / data["collection"]["snapshot"])
    data["paths"] = {
        "data": "data",
        "results": "results",
        "figures": "figures",
        "cache": "cache",
        "standins": str(ROOT / ".cache" / "standins"),
        "root": "..",
    }
    path = configs / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def prompt_table(n_prompts: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "slug": [f"bench-{i:04d}" for i in range(n_prompts)],
            "variant": "title",
            "prompt": [f"{TITLES[i % len(TITLES)]} {i}" for i in range(n_prompts)],
        }
    )


def bare_run(cfg, model: str, prompts: pd.DataFrame) -> tuple[float, float, int]:
    """Load the pipeline and call it over the harness's batches; returns (load s, loop s, images)."""
    import torch

    registry = Registry.for_config(cfg)
    spec = registry.model(model)
    device = torch.device(cfg.generation.device)
    t0 = time.perf_counter()
    pipe = load_pipeline(spec, registry, device=str(device))
    t1 = time.perf_counter()
    units = plan_units(cfg, [model], prompts)
    kwargs = call_kwargs(spec)
    images = 0
    for i in range(0, len(units), cfg.generation.batch_size):
        batch = units[i : i + cfg.generation.batch_size]
        generators = [torch.Generator("cpu").manual_seed(u.seed) for u in batch]
        images += len(pipe([u.prompt for u in batch], generator=generators, **kwargs).images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, images


def harness_run(cfg, model: str, prompts: pd.DataFrame) -> GenerationSummary:
    summary = generate(cfg, models=[model], prompts=prompts, progress=False)
    if summary.failed or summary.done != summary.total:
        raise RuntimeError(f"the harness did not generate every unit: {summary}")
    return summary


def compare(label: str, cfg_factory, model: str, prompts: pd.DataFrame, repeats: int) -> dict:
    """Interleaved, paired repeats of bare and harness runs on fresh output folders.

    Each repeat runs both back to back (alternating which goes first), so a ratio compares runs made
    under the same machine load; the reported ratio is the median of the per-repeat ratios.
    """
    import torch

    warm = cfg_factory(0)
    with torch_threads(warm.generation.num_threads):
        bare_run(warm, model, prompts.head(2))  # warm-up: first-call costs of this process
    rows = []
    for r in range(repeats):
        cfg = cfg_factory(r + 1)
        pair = {}
        with torch_threads(cfg.generation.num_threads):
            for which in ("bare", "harness") if r % 2 == 0 else ("harness", "bare"):
                if which == "bare":
                    load_s, loop_s, n = bare_run(cfg, model, prompts)
                    pair["bare"] = {"images": n, "loop_s": loop_s, "total_s": load_s + loop_s}
                else:
                    s = harness_run(cfg, model, prompts)
                    pair["harness"] = {"images": s.done, "loop_s": s.generation_seconds, "total_s": s.seconds}
        if cfg.generation.device == "cuda":
            torch.cuda.empty_cache()
        rows.append(pair)
    n = rows[0]["bare"]["images"]

    def rate(which: str, what: str) -> float:
        return n / statistics.median(p[which][what] for p in rows)

    def ratio(what: str) -> float:  # harness images/s over bare images/s, per repeat
        return statistics.median(p["bare"][what] / p["harness"][what] for p in rows)

    return {
        "label": label,
        "images": n,
        "repeats": repeats,
        "bare_loop_images_per_s": rate("bare", "loop_s"),
        "harness_loop_images_per_s": rate("harness", "loop_s"),
        "bare_total_images_per_s": rate("bare", "total_s"),
        "harness_total_images_per_s": rate("harness", "total_s"),
        "loop_ratio": ratio("loop_s"),
        "loop_ratio_min": min(p["bare"]["loop_s"] / p["harness"]["loop_s"] for p in rows),
        "loop_ratio_max": max(p["bare"]["loop_s"] / p["harness"]["loop_s"] for p in rows),
        "total_ratio": ratio("total_s"),
        "runs": rows,
    }


def resume_costs(cfg, model: str, prompts: pd.DataFrame) -> dict:
    """Seconds per image for a rerun where every unit is done, for both verify modes."""
    if not cfg.generations_manifest.exists():
        harness_run(cfg, model, prompts)
    out = {}
    for mode in VERIFY_MODES:
        run_cfg = cfg.with_overrides(generation={"verify": mode})
        t0 = time.perf_counter()
        summary = generate(run_cfg, models=[model], prompts=prompts, progress=False)
        seconds = time.perf_counter() - t0
        assert summary.skipped == summary.total and summary.done == 0, summary
        out[mode] = {"seconds": seconds, "ms_per_image": 1000 * seconds / summary.total}
    return out


def processes_run(cfg, model: str, n_processes: int, prompts_csv: Path) -> float:
    """Wall seconds of the CLI on ``cfg`` with ``n_processes`` (accelerate launch when > 1)."""
    args = ["--models", model, "--prompts", str(prompts_csv), "--no-progress"]
    cmd = launch_command("generate", cfg.source, n_processes, args)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def show(result: dict) -> None:
    print(
        f"  {result['label']}: {result['images']} images; medians of {result['repeats']} paired, interleaved repeats\n"
        f"    loop:       bare {result['bare_loop_images_per_s']:8.2f} img/s   "
        f"harness {result['harness_loop_images_per_s']:8.2f} img/s   ratio {result['loop_ratio']:.3f} "
        f"(per repeat {result['loop_ratio_min']:.3f} to {result['loop_ratio_max']:.3f})\n"
        f"    end to end: bare {result['bare_total_images_per_s']:8.2f} img/s   "
        f"harness {result['harness_total_images_per_s']:8.2f} img/s   ratio {result['total_ratio']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-sd-a", help="registry name (default: %(default)s)")
    parser.add_argument("--units", type=int, default=64, help="work units per run (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads per process (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    quiet_loading_bars()
    n_images = 2
    prompts = prompt_table(max(1, args.units // n_images))

    print(f"machine: {describe_machine()}")
    report = {"created_utc": utc_now(), "machine": describe_machine(), "args": vars(args), "results": []}
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        tmp = Path(tmp)

        def cpu_cfg(i):
            return make_project(tmp / f"cpu-{i}", args.model, None, "cpu", args.batch_size, args.threads)

        print(f"CPU, {args.model}, float32, batch {args.batch_size}, {args.threads} thread(s):")
        cpu = compare("cpu float32", cpu_cfg, args.model, prompts, args.repeats)
        show(cpu)
        report["results"].append(cpu)
        resume = resume_costs(cpu_cfg(1), args.model, prompts)
        report["resume"] = resume
        print(
            "  resume with every unit done: "
            + ", ".join(f"verify={m} {v['ms_per_image']:.2f} ms/image" for m, v in resume.items())
        )

        if torch.cuda.is_available():

            def cuda_cfg(i):
                return make_project(tmp / f"cuda-{i}", args.model, "float16", "cuda", args.batch_size, None)

            print(f"CUDA ({torch.cuda.get_device_name(0)}), {args.model}, float16, batch {args.batch_size}:")
            cuda = compare("cuda float16", cuda_cfg, args.model, prompts, args.repeats)
            show(cuda)
            report["results"].append(cuda)
            if torch.cuda.device_count() >= 2:
                walls = {}
                for n in (1, 2):
                    cfg = cuda_cfg(100 + n)
                    csv = cfg.path("cache", "prompts.csv")
                    csv.parent.mkdir(parents=True, exist_ok=True)
                    prompts.to_csv(csv, index=False)
                    walls[n] = processes_run(cfg, args.model, n, csv)
                report["processes"] = walls
                print(
                    f"  CLI wall time (model loads included): 1 process {walls[1]:.1f} s, "
                    f"2 processes {walls[2]:.1f} s, speed-up {walls[1] / walls[2]:.2f}x"
                )
            else:
                print("  two processes under accelerate: skipped (fewer than two GPUs)")
        else:
            print("CUDA: not available on this machine (fp16 and multi-GPU rows not measured)")

    out = ROOT / "benchmarks" / "results" / f"bench_generation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    atomic_write_json(out, report)
    print(f"machine at the end: {describe_machine()}")
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
