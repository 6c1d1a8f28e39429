"""Scoring cost as the study grows: time per image, peak memory and cache bytes per image at 10^2,
10^3 and 10^4 stand-in images, against the previous engine measured in the same run.

A study of ``n`` generated images is ``n / 100`` static references x 2 models x 50 images (the
paper's ``k_gen``): the number of (model, variant, reference) groups grows with the study, a group
stays the same size.  Images are 64x64 noise PNGs with unique bytes; encoders are the demo's tiny
stand-ins (tiny-clip, tiny-dino, tiny-sscd; baselines on), loaded before the clock starts.

Each size is scored in a fresh child process, which reports

- **time per generated image** of ``score()`` (input check, embedding, tables; encoder loading
  excluded), by phase, and of a fully cached re-run (no forward pass);
- **peak resident memory while scoring** (``VmHWM`` after resetting it once the encoders are
  loaded: Linux ``/proc/self/clear_refs``) next to the resident memory before scoring;
- **cache bytes per distinct image**, by feature, and the forward passes.

The **baseline** is the engine of a git revision (default ``HEAD``: the engine this one replaces,
which loads every cached feature into memory and builds all per-image rows in memory), extracted
with ``git archive`` into a temporary folder and run the same way.  The **fp16 section** scores the
same 10^3 study with ``scoring.cache_dtype: float16`` and counts the thresholded decisions that
change (CRA pass, reused cells), and does the same on the demo (``data/demo``) when it exists.

Usage::

    .venv/bin/python benchmarks/bench_scoring_scale.py                   # 1e2, 1e3, 1e4 (~10 min, 2 cores)
    .venv/bin/python benchmarks/bench_scoring_scale.py --sizes 100 1000 --baseline-sizes 100
    .venv/bin/python benchmarks/bench_scoring_scale.py --quick           # 100 and 300 only

Results go to ``benchmarks/results/bench_scoring_scale.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# iconicity_utils comes from the environment (or PYTHONPATH: the baseline's copy), never from ROOT here
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe_machine  # noqa: E402

PER_GROUP = 50
MODELS = ("tiny-sd-a", "tiny-sd-b")
ENCODERS = ("tiny-clip", "tiny-dino", "tiny-sscd")


# --------------------------------------------------------------------------------------------
# The study: n / 100 references x 2 models x 50 images
# --------------------------------------------------------------------------------------------


def build_study(folder: Path, n_images: int) -> None:
    """References, generated images, the manifest and the references table under ``folder/data``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    n_refs = max(1, n_images // (PER_GROUP * len(MODELS)))
    data = folder / "data"
    rng = np.random.default_rng(n_images)
    refs, manifest = [], []
    for r in range(n_refs):
        slug = f"ref_{r:04d}"
        d = data / "references" / "static" / slug
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / "00.png")
        refs.append({"qid": f"Q{r}", "slug": slug, "kind": "static", "label_clean": slug})
        for model in MODELS:
            g = data / "generated" / model / "title" / slug
            g.mkdir(parents=True, exist_ok=True)
            for i in range(PER_GROUP):
                Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(g / f"{i}.png")
                manifest.append({"model": model, "variant": "title", "slug": slug, "index": i, "seed": i,
                                 "prompt": slug, "path": str(g / f"{i}.png")})  # fmt: skip
    (data / "processed").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(refs)), data / "processed" / "references.parquet")
    (folder / "results").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(manifest)), folder / "results" / "generations.parquet")


def write_config(folder: Path, name: str, package_root: Path, realization: dict | None = None) -> Path:
    """The demo config of ``package_root`` with every path inside ``folder`` (cache: ``folder/<name>-cache``)."""
    import yaml

    cfg = yaml.safe_load((package_root / "configs" / "demo.yaml").read_text())
    cfg["name"] = name
    cfg["paths"] = {
        "data": str(folder / "data"),
        "results": str(folder / "results"),
        "figures": str(folder / "figures"),
        "cache": str(folder / f"{name}-cache"),
        "standins": str(ROOT / ".cache" / "standins"),
        "root": str(package_root),
    }
    cfg["collection"]["snapshot"] = str(ROOT / cfg["collection"]["snapshot"])
    cfg["realization"].update(realization or {})
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    path = folder / "configs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def baseline_package(rev: str, dest: Path) -> Path:
    """The package and configs of git revision ``rev`` (read with ``git archive``; nothing changes in the checkout)."""
    blob = subprocess.run(
        ["git", "archive", rev, "iconicity_utils", "configs"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


# --------------------------------------------------------------------------------------------
# The child: one scoring run in a fresh process
# --------------------------------------------------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(config: str, threads: int, rescore: bool) -> dict:
    """Score ``config`` (encoders loaded first), then re-score it from the cache; report the costs."""
    import torch

    torch.set_num_threads(threads)
    from iconicity_utils.config import load_config
    from iconicity_utils.registry import Registry
    from iconicity_utils.registry.encoders import load_encoder
    from iconicity_utils.score import score

    cfg = load_config(config)
    reg = Registry.for_config(cfg)
    t0 = time.perf_counter()
    encoders = {n: load_encoder(n, reg) for n in ENCODERS}
    out = {"load_s": time.perf_counter() - t0, "rss_before": _status("VmRSS"), "peak_reset": _reset_peak()}
    t0 = time.perf_counter()
    res = score(cfg, encoders=encoders)
    out["score_s"] = time.perf_counter() - t0
    out["peak_rss"] = _status("VmHWM")
    out["n_images"] = len(res.per_image)
    out["distinct_decoded"] = res.counts.get("images", 0)
    out["forward_calls"] = res.forward_calls
    out["phases"] = dict(getattr(res, "timings", {}) or {})
    del res
    if rescore:
        out["rss_before_rescore"] = _status("VmRSS")
        _reset_peak()
        t0 = time.perf_counter()
        again = score(cfg, encoders=encoders)
        out["rescore_s"] = time.perf_counter() - t0
        out["rescore_peak_rss"] = _status("VmHWM")
        out["rescore_forward_calls"] = again.forward_calls
    cache = Path(cfg.path("cache")) / "features"
    import iconicity_utils

    out["package"] = str(Path(iconicity_utils.__file__).parent)
    out["cache_bytes"] = {
        d.relative_to(cache).parts[0] + "/" + d.name.split("@")[0]: sum(
            f.stat().st_size for f in d.rglob("*") if f.is_file()
        )
        for d in cache.glob("*/*")
        if d.is_dir()
    }
    return out


def run_child(config: Path, threads: int, pythonpath: Path | None = None, rescore: bool = True) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(config), "--threads", str(threads)]
    if not rescore:
        cmd.append("--no-rescore")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return _checked_package(json.loads(proc.stdout.strip().splitlines()[-1]), pythonpath)


def _checked_package(result: dict, pythonpath: Path | None) -> dict:
    want = (pythonpath or ROOT) / "iconicity_utils"
    if Path(result["package"]).resolve() != want.resolve():
        raise RuntimeError(f"the child ran the package in {result['package']}, not {want}")
    return result


# --------------------------------------------------------------------------------------------
# The feature store at paper dimensions (no encoder): what reading the features costs in memory
# --------------------------------------------------------------------------------------------

#: DINOv3 ViT-B/16 cells: 16 cells x 768 floats (48 KiB per image in float32)
PAPER_CELLS = (16, 768)


def build_store(folder: Path, n_images: int, flush: int = 256, legacy: bool = False) -> list[str]:
    """``n_images`` random unit cell features in shards of ``flush`` images: shard folders of
    ``.npy`` files (this engine, :func:`~iconicity_utils.score.store.write_shard`), or ``legacy``
    single-file ``.npz`` shards with unicode keys (the earlier engine's format)."""
    import numpy as np

    from iconicity_utils.score.store import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keys = [f"{i:064x}" for i in range(n_images)]
    for start in range(0, n_images, flush):
        v = rng.standard_normal((min(flush, n_images - start), *PAPER_CELLS), dtype=np.float32)
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        if legacy:
            np.savez(folder / f"part-{start:08d}.npz", keys=np.array(keys[start : start + flush]), values=v)
        else:
            write_shard(folder / f"part-{start:08d}", keys[start : start + flush], v)
    return keys


def store_child(folder: str, n_images: int) -> dict:
    """Open the store and read it group by group (50 images against 1 reference), as scoring does."""
    import numpy as np

    try:
        from iconicity_utils.score.store import FeatureStore
    except ImportError:  # the earlier engine
        from iconicity_utils.score.features import FeatureStore

    rss0 = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    store = FeatureStore(folder)
    opened = time.perf_counter() - t0
    keys = [f"{i:064x}" for i in range(n_images)]
    get = getattr(store, "get_many", None) or (lambda ks: np.stack([store.get(k) for k in ks]))
    total = 0.0
    for start in range(0, n_images, PER_GROUP):
        gen = get(keys[start : start + PER_GROUP])
        ref = get(keys[start : start + 1])
        total += float((gen.reshape(-1, PAPER_CELLS[1]) @ ref.reshape(-1, PAPER_CELLS[1]).T).max())
    import iconicity_utils

    return {
        "package": str(Path(iconicity_utils.__file__).parent),
        "open_s": opened,
        "read_s": time.perf_counter() - t0 - opened,
        "rss_before": rss0,
        "peak_rss": _status("VmHWM"),
        "checksum": total,
    }


def run_store_child(folder: Path, n_images: int, pythonpath: Path | None) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--store-child", str(folder), str(n_images)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"store child failed:\n{proc.stderr[-3000:]}")
    return _checked_package(json.loads(proc.stdout.strip().splitlines()[-1]), pythonpath)


# --------------------------------------------------------------------------------------------
# fp16 storage: size and flipped decisions
# --------------------------------------------------------------------------------------------


def flips(a_dir: Path, b_dir: Path) -> dict:
    """Thresholded decisions that differ between two per-image tables of the same images."""
    import numpy as np
    import pandas as pd

    keys = ["model", "variant", "slug", "index"]
    a = pd.read_parquet(a_dir / "scores_per_image.parquet").sort_values(keys).reset_index(drop=True)
    b = pd.read_parquet(b_dir / "scores_per_image.parquet").sort_values(keys).reset_index(drop=True)
    ma, mb = np.stack(a["vr_cells"]), np.stack(b["vr_cells"])
    tau = float(a["vr_tau"].iloc[0])
    return {
        "images": len(a),
        "cra_pass_flipped": int((a["cra_pass"] != b["cra_pass"]).sum()),
        "reused_cells_flipped": int(((ma > tau) != (mb > tau)).sum()),
        "cells": int(ma.size),
        "max_abs_cra_sim": float(np.abs(a["cra_sim"] - b["cra_sim"]).max()),
        "max_abs_vr_cell": float(np.abs(ma - mb).max()),
        "min_margin_cra": float(np.abs(a["cra_sim"] - a["cra_tau"]).min()),
        "min_margin_cells": float(np.abs(ma - tau).min()),
    }


def demo_config(folder: Path, name: str, dtype: str) -> Path | None:
    """The demo config scoring ``data/demo`` into ``folder`` (None when the demo has not been run)."""
    import yaml

    manifest = ROOT / "results" / "demo" / "generations.parquet"
    if not manifest.is_file() or not (ROOT / "data" / "demo" / "references").is_dir():
        return None
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    results = folder / name / "results"
    results.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest, results / "generations.parquet")
    cfg["paths"].update(
        results=str(results),
        cache=str(folder / name / "cache"),
        figures=str(folder / name / "figures"),
        data=str(ROOT / "data" / "demo"),
        standins=str(ROOT / ".cache" / "standins"),
        root=str(ROOT),
    )
    cfg["collection"]["snapshot"] = str(ROOT / cfg["collection"]["snapshot"])
    cfg["realization"]["cache_dtype"] = dtype
    path = folder / name / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

MB = 1 << 20


def per_image_row(label: str, n: int, r: dict) -> str:
    ph = r.get("phases") or {}
    phases = " / ".join(f"{1000 * ph[k] / n:.2f}" for k in ("check", "embed", "tables") if k in ph) or "-"
    cache = sum(r["cache_bytes"].values()) / max(1, r["distinct"])
    return (
        f"| {label} | {n} | {1000 * r['score_s'] / n:.2f} | {phases} | "
        f"{1000 * r.get('rescore_s', float('nan')) / n:.2f} | {r['rss_before'] / MB:.0f} | "
        f"{r['peak_rss'] / MB:.0f} | {(r['peak_rss'] - r['rss_before']) / MB:+.1f} | {cache:.0f} |"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--baseline-sizes", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--baseline-rev", default="HEAD", help="git revision of the baseline engine")
    p.add_argument("--fp16-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="torch threads in each child (default 1)")
    p.add_argument("--quick", action="store_true", help="sizes 100 and 300, baseline at 100")
    p.add_argument("--store-sizes", type=int, nargs="*", default=[1000, 10000])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--store-child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--no-rescore", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads, not args.no_rescore)))
        return 0
    if args.store_child:
        print(json.dumps(store_child(args.store_child[0], int(args.store_child[1]))))
        return 0
    if args.quick:
        args.sizes, args.baseline_sizes, args.fp16_size, args.store_sizes = [100, 300], [100], 300, [1000]

    machine = describe_machine()
    print(f"machine: {machine}\n")
    records: dict = {
        "machine": machine,
        "args": vars(args),
        "sizes": {},
        "baseline": {},
        "fp16": {},
        "store": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        base_pkg = baseline_package(args.baseline_rev, tmp / "baseline") if args.baseline_sizes else None
        for n in sorted(set(args.sizes) | set(args.baseline_sizes) | {args.fp16_size}):
            folder = tmp / f"n{n}"
            t0 = time.perf_counter()
            build_study(folder, n)
            print(f"n={n}: study built in {time.perf_counter() - t0:.1f} s", flush=True)
            distinct = n + max(1, n // (PER_GROUP * len(MODELS)))
            if n in args.sizes or n == args.fp16_size:
                r = run_child(write_config(folder, "new", ROOT), args.threads)
                r["distinct"] = distinct
                records["sizes"][n] = r
                print(
                    f"  this engine: {r['score_s']:.1f} s, peak RSS {r['peak_rss'] / MB:.0f} MB", flush=True
                )
            if n == args.fp16_size:
                shutil.copytree(folder / "results", folder / "results-fp32")  # this engine's tables
                cfg16 = write_config(folder, "half", ROOT, {"cache_dtype": "float16"})
                r = run_child(cfg16, args.threads, rescore=False)
                records["fp16"]["bench"] = {
                    "cache_bytes": r["cache_bytes"],
                    "flips": flips(folder / "results-fp32", folder / "results"),
                }
            if n in args.baseline_sizes:
                r = run_child(write_config(folder, "old", base_pkg), args.threads, pythonpath=base_pkg)
                r["distinct"] = distinct
                records["baseline"][n] = r
                print(
                    f"  baseline ({args.baseline_rev}): {r['score_s']:.1f} s, peak {r['peak_rss'] / MB:.0f} MB"
                )
            shutil.rmtree(folder / "data", ignore_errors=True)
        for n in args.store_sizes:
            folder = tmp / f"store{n}"
            build_store(folder, n)
            records["store"][n] = {"this": run_store_child(folder, n, None)}
            records["store"][n]["disk"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            shutil.rmtree(folder)
            if base_pkg is not None:  # the earlier engine reads its own format
                build_store(folder, n, legacy=True)
                records["store"][n]["baseline"] = run_store_child(folder, n, base_pkg)
                shutil.rmtree(folder)
            print(f"store n={n}: {records['store'][n]}", flush=True)
        for dtype in ("float32", "float16"):
            cfg = demo_config(tmp / "demo", dtype, dtype)
            if cfg is not None:
                records["fp16"].setdefault("demo", {})[dtype] = run_child(cfg, args.threads, rescore=False)
        if "demo" in records["fp16"]:
            records["fp16"]["demo"]["flips"] = flips(
                tmp / "demo" / "float32" / "results", tmp / "demo" / "float16" / "results"
            )

    print(f"\nmachine: {machine}")
    print(
        "\n| engine | images | ms/image | check / embed / tables ms | cached re-run ms/image | "
        "RSS before MB | peak RSS MB | peak - before MB | cache bytes/image |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in sorted(records["sizes"].items()):
        print(per_image_row("this", n, r))
    for n, r in sorted(records["baseline"].items()):
        print(per_image_row(f"baseline {args.baseline_rev}", n, r))
    sizes = sorted(records["sizes"])
    if len(sizes) > 1:
        first, last = records["sizes"][sizes[0]], records["sizes"][sizes[-1]]
        ratio = (last["score_s"] / sizes[-1]) / (first["score_s"] / sizes[0])
        print(
            f"\ntime per image, {sizes[-1]} vs {sizes[0]} images: x{ratio:.2f} (fixed per-run costs included)"
        )
        for a, b in zip(sizes, sizes[1:], strict=False):
            slope = (records["sizes"][b]["score_s"] - records["sizes"][a]["score_s"]) / (b - a)
            print(f"marginal time per image, {a} -> {b}: {1000 * slope:.2f} ms")
        grow = (last["peak_rss"] - first["peak_rss"]) / (sizes[-1] - sizes[0])
        print(f"peak RSS growth: {grow:.0f} bytes per added image")
    for n in sorted(set(records["baseline"]) & set(records["sizes"])):
        new, old = records["sizes"][n], records["baseline"][n]
        print(
            f"n={n}: this / baseline time per image x{new['score_s'] / old['score_s']:.2f}; "
            f"peak RSS {new['peak_rss'] / MB:.0f} vs {old['peak_rss'] / MB:.0f} MB"
        )
    big = records["sizes"].get(max(sizes)) if sizes else None
    if big:
        d = big["distinct"]
        print("\ncache bytes per distinct image, by feature (fp32):")
        for k, v in sorted(big["cache_bytes"].items()):
            print(f"  {k}: {v / d:.0f}")
    if records["store"]:
        print(
            f"\nfeature store at paper dimensions ({PAPER_CELLS[0]}x{PAPER_CELLS[1]} float32 cells per image):"
        )
        print("| images | store on disk MB | engine | open s | read all groups s | peak RSS - before MB |")
        print("|---|---|---|---|---|---|")
        for n, rec in sorted(records["store"].items()):
            for engine in ("this", "baseline"):
                if engine in rec:
                    r = rec[engine]
                    print(
                        f"| {n} | {rec['disk'] / MB:.0f} | {engine} | {r['open_s']:.2f} | {r['read_s']:.2f} | "
                        f"{(r['peak_rss'] - r['rss_before']) / MB:+.1f} |"
                    )
    if "bench" in records["fp16"] and args.fp16_size in records["sizes"]:
        full = records["sizes"][args.fp16_size]["cache_bytes"]
        half = records["fp16"]["bench"]["cache_bytes"]
        enc = [k for k in full if not k.startswith("_image")]
        r_enc = sum(half[k] for k in enc) / sum(full[k] for k in enc)
        print(
            f"\nfp16 storage at {args.fp16_size} images: encoder features x{r_enc:.3f}, "
            f"whole cache x{sum(half.values()) / sum(full.values()):.3f}; "
            f"decisions: {records['fp16']['bench']['flips']}"
        )
    if "demo" in records["fp16"]:
        print(f"fp16 storage on the demo: {records['fp16']['demo']['flips']}")
    out = ROOT / "benchmarks" / "results" / "bench_scoring_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=2, default=str))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
