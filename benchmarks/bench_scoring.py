"""Scoring speed (stages 03-04), measured side by side in one run on the same images and weights.

Reports, for a realistic-size random-weight encoder pair (timm ``vit_small_patch14_dinov2`` at
224 px for VR, open_clip ``ViT-B-32`` for CRA) and for the tiny demo stand-ins:

(a) images/s of our scorer (decode once, cached references, batched, DataLoader) against bare
    encoder forward passes over *pre-made* input tensors for exactly the same inputs: the
    "physical limit" ratio (target >= 0.8);
(b) ``cells="crop"`` against ``cells="tokens"`` (our scorer and bare forwards);
(c) the authors' algorithm (``authors_reimpl.py``: two scripts, every image decoded per script,
    reference cells re-embedded for every generated image, synchronous preprocessing) on the same
    folders, with the largest score difference to ours (must be <= 1e-6);
(d) re-scoring from cached similarities (new thresholds) and a fully cached re-run.

Random weights make the *scores* meaningless, not the timings.  Every generated image has unique
bytes (a jittered copy of a reference), so content-hash deduplication gives our scorer no
advantage over the baselines.  Results also go to ``benchmarks/results/`` (git-ignored).

Usage::

    .venv/bin/python benchmarks/bench_scoring.py              # realistic + tiny (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_scoring.py --quick      # tiny stand-ins only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the authors' loops: the tests' oracle
sys.path.insert(0, str(ROOT))

from authors_reimpl import authors_cra, authors_vr  # noqa: E402
from machine import describe_machine  # noqa: E402

STATIC = {"starry_night": ("astronaut", (640, 480)), "persistence": ("coffee", (512, 512))}
DYNAMIC = {"seventh_seal": [("chelsea", (800, 450)), ("rocket", (800, 450)), ("camera", (800, 450))]}


def photo(name, size):
    from PIL import Image
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    return Image.fromarray(arr[..., :3].astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)


def jitter(image, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = np.asarray(image.resize((512, 512), Image.Resampling.BICUBIC)).astype(np.int16)
    return Image.fromarray(np.clip(a + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8))


def make_folders(
    root: Path, n_images: int, models=("model_a", "model_b")
) -> dict[str, tuple[Path, Path, Path]]:
    """Authors' layout per kind: ``ref/<slug>/*``, ``gen/<model>/<slug>/*``, ``prompts.csv``."""
    import pandas as pd

    out = {}
    for kind, refs in (("static", {k: [v] for k, v in STATIC.items()}), ("dynamic", DYNAMIC)):
        base = root / kind
        for slug, items in refs.items():
            (base / "ref" / slug).mkdir(parents=True, exist_ok=True)
            for i, (name, size) in enumerate(items):
                photo(name, size).save(base / "ref" / slug / f"{i:02d}.jpg", quality=92)
            for m, model in enumerate(models):
                folder = base / "gen" / model / slug
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n_images):
                    name, size = items[i % len(items)]
                    jitter(photo(name, size), seed=1000 * m + i).save(folder / f"{i:03d}.png")
        pd.DataFrame({"label_clean": list(refs)}).to_csv(base / "prompts.csv", index=False)
        out[kind] = (base / "ref", base / "gen", base / "prompts.csv")
    return out


def realistic_encoders(tmp: Path):
    """Random-weight ViT-S/14 DINOv2 at 224 px (timm, through load_encoder) and open_clip ViT-B-32."""
    import open_clip
    import timm
    import torch

    from iconicity_utils.registry import EncoderSpec, Registry
    from iconicity_utils.registry.encoders import Encoder, load_encoder

    torch.manual_seed(0)
    ckpt = tmp / "vit_s14_224.pt"
    torch.save(
        timm.create_model(
            "vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=224
        ).state_dict(),
        ckpt,
    )
    dino_spec = EncoderSpec(
        name="bench-dino-vits14",
        backend="timm",
        source="vit_small_patch14_dinov2",
        weights=str(ckpt),
        model_kwargs={"img_size": 224, "pretrained_cfg_overlay": {"input_size": [3, 224, 224]}},
    )
    reg = Registry(models={}, encoders={dino_spec.name: dino_spec}, root=tmp)
    dino = load_encoder(dino_spec, reg)
    # ViT-B-32 weights are 600 MB: built in memory (same transform and forward as load_encoder's
    # open_clip backend), not written to disk and loaded back.
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    clip_spec = EncoderSpec(name="bench-clip-b32", backend="open_clip", source="ViT-B-32", weights="random")
    info = {
        "encoder": clip_spec.name,
        "backend": "open_clip",
        "source": "ViT-B-32",
        "weights": "random",
        "dtype": "float32",
        "device": "cpu",
        "standin": True,
        "fingerprint": f"bench-{os.getpid()}",
    }
    clip = Encoder(spec=clip_spec, model=model.eval(), transform=preprocess, device="cpu", info=info)
    return {clip.name: clip, dino.name: dino}, (tmp, reg)


def tiny_encoders():
    from iconicity_utils.config import load_config
    from iconicity_utils.demo.standins import build_for_config
    from iconicity_utils.registry import Registry
    from iconicity_utils.registry.encoders import load_encoder

    build_for_config(load_config(ROOT / "configs" / "demo.yaml"))
    reg = Registry.load()
    return {n: load_encoder(n, reg) for n in ("tiny-clip", "tiny-dino")}


def bench_config(tmp: Path, encoders: dict, batch_size: int, workers: int):
    """A study config naming the encoders (ours are passed in already loaded)."""
    import yaml

    from iconicity_utils.config.study import parse_config

    clip, dino = list(encoders)
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data["paths"] = {
        "data": str(tmp / "d"),
        "results": str(tmp / "r"),
        "figures": str(tmp / "f"),
        "cache": str(tmp / "cache"),
        "root": str(ROOT),
    }
    data["collection"]["snapshot"] = str(ROOT / data["collection"]["snapshot"])
    data["encoders"].update(recognition=clip, realization=dino, copy_detection=None)
    data["realization"].update(batch_size=batch_size, num_workers=workers, baselines=False)
    return parse_config(data, source=ROOT / "configs" / "demo.yaml")


def run_ours(folders, encoders, cfg, cache: Path, cells="crop"):
    from iconicity_utils.score import score_folders

    cfg = cfg.with_overrides(realization={"cells": cells})
    t0 = time.perf_counter()
    results = {}
    for kind, (refdir, gendir, prompts) in folders.items():
        results[kind] = score_folders(
            refdir,
            gendir,
            prompts,
            kind=kind,
            config=cfg,
            cache_dir=cache,
            encoders=encoders,
        )
    return time.perf_counter() - t0, results


def unique_images(folders) -> list[Path]:
    from iconicity_utils.score.features import content_hash

    seen, out = set(), []
    for refdir, gendir, _ in folders.values():
        for p in sorted(refdir.rglob("*")) + sorted(gendir.rglob("*")):
            if p.is_file() and p.suffix in (".png", ".jpg") and content_hash(p) not in seen:
                seen.add(content_hash(p))
                out.append(p)
    return out


def run_bare(images, encoders, batch_size: int, cells="crop") -> float:
    """Forward passes only, over inputs preprocessed beforehand (the same inputs our scorer embeds)."""
    import torch

    from iconicity_utils.core.constants import GRID
    from iconicity_utils.core.images import open_rgb, split_grid

    clip, dino = encoders.values()
    pils = [open_rgb(p) for p in images]
    x_clip = torch.stack([clip.preprocess(im) for im in pils])
    if cells == "crop":
        x_dino = torch.cat([torch.stack([dino.preprocess(c) for c in split_grid(im, GRID)]) for im in pils])
    else:
        x_dino = torch.stack([dino.token_input(im) for im in pils])
    t0 = time.perf_counter()
    for s in range(0, len(x_clip), batch_size):
        clip.embed_batch(x_clip[s : s + batch_size])
    step = batch_size
    for s in range(0, len(x_dino), step):
        if cells == "crop":
            dino.embed_batch(x_dino[s : s + step])
        else:
            dino.token_cells(x_dino[s : s + step], GRID)
    return time.perf_counter() - t0


def run_authors(folders, encoders):
    clip, dino = encoders.values()
    t0 = time.perf_counter()
    out = {}
    for kind, (refdir, gendir, prompts) in folders.items():
        import pandas as pd

        labels = pd.read_csv(prompts)["label_clean"].tolist()
        out[kind] = (
            authors_cra(refdir, gendir, labels, kind, clip),
            authors_vr(refdir, gendir, labels, kind, dino),
        )
    return time.perf_counter() - t0, out


def max_difference(ours, theirs) -> float:
    worst = 0.0
    for kind, res in ours.items():
        cra, vr = theirs[kind]
        for row in res.per_image.itertuples():
            key = (row.model, row.slug, Path(row.path).name)
            worst = max(worst, abs(row.cra_sim - cra[key]))
            for col in ("vr_mean", "vr_max", "vr_p90"):
                worst = max(worst, abs(getattr(row, col) - vr[key][col]))
            worst = max(worst, float(np.abs(np.asarray(row.vr_cells) - vr[key]["cells"]).max()))
    return worst


def section(
    label, encoders, folders, tmp: Path, batch_size: int, workers: list[int], authors: bool, repeats: int
) -> dict:
    """All measurements of one encoder pair.  Scorer and bare timings are interleaved and repeated
    (fresh caches each time); the best of ``repeats`` is kept, which damps other load on the machine."""
    from iconicity_utils.score import tables as score_tables

    images = unique_images(folders)
    n_gen = sum(len(list(g.rglob("*.png"))) for _, g, _ in folders.values())
    print(
        f"\n== {label}: {n_gen} generated + {len(images) - n_gen} reference images; "
        f"encoders {', '.join(e.name for e in encoders.values())}; batch {batch_size}; best of {repeats}"
    )
    rec: dict = {"label": label, "n_generated": n_gen, "n_unique_images": len(images)}
    times: dict[str, list[float]] = {}
    ours = None
    for r in range(repeats):
        times.setdefault("bare_crop", []).append(run_bare(images, encoders, batch_size))
        for w in workers:
            cfg = bench_config(tmp / f"{label}-w{w}-{r}", encoders, batch_size, w)
            t, res = run_ours(folders, encoders, cfg, tmp / f"{label}-cache-w{w}-{r}")
            times.setdefault(f"ours_crop_w{w}", []).append(t)
            ours = ours or res
        times.setdefault("bare_tokens", []).append(run_bare(images, encoders, batch_size, cells="tokens"))
        cfg = bench_config(tmp / f"{label}-tok-{r}", encoders, batch_size, workers[0])
        times.setdefault("ours_tokens", []).append(
            run_ours(folders, encoders, cfg, tmp / f"{label}-cache-tok-{r}", cells="tokens")[0]
        )
    best = {k: min(v) for k, v in times.items()}
    rec.update({f"{k}_s": v for k, v in best.items()}, all_times_s=times)
    bare = best["bare_crop"]
    for w in workers:
        t = best[f"ours_crop_w{w}"]
        print(
            f"(a) ours, crop, {w} workers: {n_gen / t:7.3f} img/s   bare forward: {n_gen / bare:7.3f} img/s   "
            f"ratio ours/bare = {bare / t:.2f}"
        )
    t_crop = min(best[f"ours_crop_w{w}"] for w in workers)
    print(
        f"(b) tokens: ours {n_gen / best['ours_tokens']:7.3f} img/s; ours crop/tokens time = "
        f"{t_crop / best['ours_tokens']:.1f}x; bare forward crop/tokens = {bare / best['bare_tokens']:.1f}x"
    )
    if authors:
        t_auth, theirs = run_authors(folders, encoders)
        diff = max_difference(ours, theirs)
        rec.update(authors_s=t_auth, max_abs_score_difference=diff)
        print(
            f"(c) authors' algorithm: {n_gen / t_auth:7.3f} img/s; ours (best workers) is {t_auth / t_crop:.1f}x "
            f"faster; largest |score difference| = {diff:.2e}"
        )
    per_image = ours["static"].per_image
    t0 = time.perf_counter()
    score_tables.rescore(per_image, tau_cra_static=0.8, tau_reuse=0.5)
    score_tables.threshold_sweep(per_image, metric="crt")
    rec["rescore_s"] = time.perf_counter() - t0
    cfg = bench_config(tmp / f"{label}-w{workers[0]}-0", encoders, batch_size, workers[0])
    t_cached, again = run_ours(folders, encoders, cfg, tmp / f"{label}-cache-w{workers[0]}-0")
    rec["cached_rerun_s"] = t_cached
    calls = sum(r.forward_calls for r in again.values())
    print(
        f"(d) re-threshold + 27-point sweep from stored similarities: {rec['rescore_s'] * 1000:.0f} ms; "
        f"fully cached re-run: {t_cached:.2f} s, {calls} forward passes"
    )
    return rec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny stand-ins only")
    parser.add_argument("--n-images", type=int, default=2, help="generated images per (model, slug)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="DataLoader workers to try")
    parser.add_argument("--no-authors", action="store_true", help="skip the authors' algorithm")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best is kept")
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's); 1 is steadier on a shared machine"
    )
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print("machine:", describe_machine())
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as d:
        tmp = Path(d)
        folders = make_folders(tmp / "images", args.n_images)
        runs = [("tiny stand-ins", tiny_encoders())]
        if not args.quick:
            runs.append(
                ("realistic (ViT-B-32 CLIP + ViT-S/14 DINO @224, random weights)", realistic_encoders(tmp)[0])
            )
        for name, encoders in runs:
            records.append(
                section(
                    name,
                    encoders,
                    folders,
                    tmp,
                    args.batch_size,
                    args.workers,
                    not args.no_authors,
                    args.repeats,
                )
            )
    out = ROOT / "benchmarks" / "results" / "bench_scoring.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": describe_machine(), "args": vars(args), "sections": records}, indent=2)
    )
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
