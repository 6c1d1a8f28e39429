"""A minimal, faithful re-implementation of the per-image loops of the authors' released scripts
(``compute_CRA.py`` and ``compute_VR.py`` in mariateresadrp99/Multimodal-Iconicity), used as the
independent oracle of our scores in the tests (tests/test_scoring.py) and as the baseline of
``benchmarks/bench_scoring.py``, which imports it from here.

What it reproduces (docs/method.md §3.2-3.3), deliberately including the costs we remove:

- each script walks ``refdir/<slug>`` and ``gendir/<model>/<slug>`` itself and **decodes every
  image again** (two scripts -> every image decoded twice);
- references are decoded and (dynamic) pHash-deduplicated **per model**;
- CRA embeds ``[reference] + generated`` per slug (static) or references then generated
  (dynamic) in synchronous batches of 16; only the similarity vector is kept here (the script
  writes only passing rows; we return every similarity so scores can be compared);
- VR, for **every generated image**, crops both images into the grid and embeds the reference
  cells **again** together with the generated cells (``compute_vr_stats``), then takes the
  per-cell max, its mean, max and ``torch.quantile(., 0.9)``;
- timm cell embeddings: ``forward_features`` tokens averaged over all tokens, L2-normalised;
  open_clip: ``encode_image``, L2-normalised.  Preprocessing is the encoder's own transform, so the
  inputs and weights are exactly those our scorer uses.

Nothing here is used by the package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tiff"}


def _norm_slug(s: str) -> str:
    return s.strip().replace(" ", "_").lower()


def _slug_dirs(root: Path) -> dict[str, Path]:
    return {
        _norm_slug(q.name): q
        for q in sorted(q for q in root.iterdir() if q.is_dir() and not q.name.startswith("."))
    }


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTS)


def _open(path: Path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def _dedup(imgs, paths, thresh: int = 18):
    import imagehash

    kept, kept_paths, hashes = [], [], []
    for img, path in zip(imgs, paths, strict=True):
        h = imagehash.phash(img)
        if any(h - prev <= thresh for prev in hashes):
            continue
        kept.append(img)
        kept_paths.append(path)
        hashes.append(h)
    return kept, kept_paths


def _grid(img, rows: int, cols: int):
    width, height = img.size
    w, h = max(1, width // cols), max(1, height // rows)
    out = []
    for r in range(rows):
        for c in range(cols):
            right = (c + 1) * w if c < cols - 1 else width
            bottom = (r + 1) * h if r < rows - 1 else height
            out.append(img.crop((c * w, r * h, right, bottom)))
    return out


def _embed(encoder, images, batch_size: int = 16):
    """Synchronous: preprocess everything, then forward in batches (as both scripts)."""
    import torch
    import torch.nn.functional as F

    x = torch.stack([encoder.transform(im) for im in images])
    outs = []
    with torch.no_grad():
        for i in range(0, x.size(0), batch_size):
            xb = x[i : i + batch_size].to(encoder.device)
            if encoder.backend == "timm":
                fb = encoder.model.forward_features(xb)
                z = fb.mean(dim=1) if fb.dim() == 3 else fb
            elif encoder.backend == "open_clip":
                z = encoder.model.encode_image(xb)
            else:
                raise ValueError(f"backend {encoder.backend} not covered by this re-implementation")
            outs.append(F.normalize(z, dim=-1).cpu())
    return torch.cat(outs)


def _eligible(refdir: Path, model_dir: Path, whitelist: set[str]):
    gen_index, ref_index = _slug_dirs(model_dir), _slug_dirs(refdir)
    for norm in sorted(s for s in whitelist if s in gen_index and s in ref_index):
        yield ref_index[norm], gen_index[norm]


def authors_cra(
    refdir, gendir, labels, kind: str, encoder, k_gen: int = 50
) -> dict[tuple[str, str, str], float]:
    """``{(model, slug, gen file name): s_i}`` for every generated image, as ``compute_CRA.py``."""
    refdir, gendir = Path(refdir), Path(gendir)
    whitelist = {_norm_slug(s) for s in labels}
    out = {}
    for model_dir in sorted(p for p in gendir.iterdir() if p.is_dir()):
        for ref_dir, gen_dir in _eligible(refdir, model_dir, whitelist):
            gen_paths = _images(gen_dir)[:k_gen]
            gens = [_open(p) for p in gen_paths]
            if kind == "static":
                embs = _embed(encoder, [_open(_images(ref_dir)[0])] + gens)
                sims = (embs[1:] @ embs[0:1].T).squeeze(1)
            else:
                refs_all = [_open(p) for p in _images(ref_dir)]
                refs, _ = _dedup(refs_all, _images(ref_dir))
                sims = (_embed(encoder, gens) @ _embed(encoder, refs).T).max(dim=1).values
            for p, s in zip(gen_paths, sims.numpy(), strict=True):
                out[(model_dir.name, ref_dir.name, p.name)] = float(s)
    return out


def authors_vr(
    refdir, gendir, labels, kind: str, encoder, k_gen: int = 50, grid: tuple[int, int] = (4, 4)
) -> dict[tuple[str, str, str], dict[str, object]]:
    """``{(model, slug, gen file name): {vr_max, vr_mean, vr_p90, cells}}``, as ``compute_VR.py``."""
    import torch

    refdir, gendir = Path(refdir), Path(gendir)
    whitelist = {_norm_slug(s) for s in labels}
    rows, cols = grid
    out = {}
    for model_dir in sorted(p for p in gendir.iterdir() if p.is_dir()):
        for ref_dir, gen_dir in _eligible(refdir, model_dir, whitelist):
            if kind == "static":
                ref_imgs = [_open(_images(ref_dir)[0])]
            else:
                ref_imgs, _ = _dedup([_open(p) for p in _images(ref_dir)], _images(ref_dir))
            ref_patches = [patch for im in ref_imgs for patch in _grid(im, rows, cols)]
            gen_paths = _images(gen_dir)[:k_gen]
            for p in gen_paths:
                gen_patches = _grid(_open(p), rows, cols)
                ref_emb = _embed(encoder, ref_patches)  # re-embedded for every generated image
                gen_emb = _embed(encoder, gen_patches)
                per_cell = (gen_emb @ ref_emb.T).max(dim=1).values
                out[(model_dir.name, ref_dir.name, p.name)] = {
                    "vr_max": float(per_cell.max()),
                    "vr_mean": float(per_cell.mean()),
                    "vr_p90": float(torch.quantile(per_cell, torch.tensor(0.9))),
                    "cells": per_cell.numpy().astype(np.float32),
                }
    return out
