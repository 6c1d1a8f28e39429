"""Tiny random-weight stand-in models, built from configs and saved to a local folder.

No weights can be downloaded in the offline workplace, so the demo and the tests use tiny models
with random weights.  Each is built from a config with a fixed seed and saved with
``save_pretrained`` / ``state_dict`` into ``<paths.standins>/<name>/``; the loaders then open that
folder exactly as they would open a hub id.  **Nothing a stand-in produces is a scientific
result** (see :data:`iconicity_utils.constants.STANDIN_LABEL`).

Builders (named by ``standin.builder`` in the registry):

- ``tiny-sd``: a Stable-Diffusion pipeline (UNet, VAE, CLIP text encoder, DDIM scheduler) whose
  tokenizer is the *real* 49,408-token CLIP BPE vocabulary, rebuilt from the BPE file open_clip
  ships, so that token ids match ``open_clip.tokenize``.
- ``tiny-open-clip``: an open_clip model from an architecture JSON registered with
  ``open_clip.add_model_config``; weights saved as a state dict.
- ``tiny-timm-vit``: a DINOv2-style ViT from timm; weights saved as a state dict.
- ``tiny-sscd``: a small CNN descriptor saved as TorchScript, standing in for SSCD.

Building is idempotent: a ``standin.json`` stamp records the spec; a folder whose stamp matches
is left alone, and a build happens in a temporary folder renamed into place when complete.

Command line::

    python -m iconicity_utils.standins --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iconicity_utils.io import new_file_mode
from iconicity_utils.registry import EncoderSpec, ModelSpec, Registry

__all__ = ["build_standin", "build_for_config", "clip_tokenizer", "STAMP", "BUILDERS"]

STAMP = "standin.json"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# The real CLIP tokenizer, rebuilt from open_clip's bundled BPE merges
# --------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> unicode table (as in OpenAI's and open_clip's tokenizers)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def clip_tokenizer():
    """A transformers ``CLIPTokenizer`` with the real CLIP vocabulary (49,408 tokens)."""
    import open_clip
    from transformers import CLIPTokenizer

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path) as fh:
        merges = fh.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(vocab)},
        merges=[tuple(m.split()) for m in merges],
        model_max_length=77,
        pad_token="<|endoftext|>",
    )


# --------------------------------------------------------------------------------------------
# Builders: each writes into an empty folder `out`
# --------------------------------------------------------------------------------------------


def _build_tiny_sd(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(int(params.get("seed", 0)))
    ch = tuple(params.get("block_out_channels", (4, 8)))
    cross = int(params.get("cross_attention_dim", 32))
    tok = clip_tokenizer()
    latent = spec.height // 2 ** (len(ch) - 1)
    unet = UNet2DConditionModel(
        block_out_channels=ch,
        layers_per_block=1,
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=list(ch),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(ch),
        up_block_types=["UpDecoderBlock2D"] * len(ch),
        latent_channels=4,
        norm_num_groups=2,
        sample_size=spec.height,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            hidden_size=cross,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=int(params.get("text_layers", 5)),
            vocab_size=len(tok),
            max_position_embeddings=77,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)


def _build_tiny_open_clip(spec: EncoderSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import open_clip
    import torch

    if spec.model_config_dir:
        open_clip.add_model_config(registry.resolve_path(spec.model_config_dir))
    torch.manual_seed(int(params.get("seed", 0)))
    model = open_clip.create_model(spec.source, pretrained=None)
    torch.save(model.state_dict(), out / "weights.pt")


def _build_tiny_timm_vit(spec: EncoderSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import timm
    import torch

    torch.manual_seed(int(params.get("seed", 0)))
    kwargs = {k: v for k, v in spec.model_kwargs.items() if k != "pretrained_cfg_overlay"}
    model = timm.create_model(spec.source, pretrained=False, num_classes=0, **kwargs)
    torch.save(model.state_dict(), out / "weights.pt")


class _TinySSCD:
    """Factory for a TorchScript CNN descriptor (SSCD stand-in: image -> 512-d, not normalised)."""

    @staticmethod
    def build(dim: int):
        import torch
        from torch import nn

        class TinySSCD(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(3, 16, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(16, 32, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d(4),
                )
                self.head = nn.Linear(32 * 16, dim)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head(torch.flatten(self.features(x), 1))

        return TinySSCD()


def _build_tiny_sscd(spec: EncoderSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import torch

    torch.manual_seed(int(params.get("seed", 0)))
    model = _TinySSCD.build(int(params.get("dim", 512))).eval()
    torch.jit.script(model).save(str(out / "model.torchscript.pt"))


BUILDERS: dict[str, Callable[..., None]] = {
    "tiny-sd": _build_tiny_sd,
    "tiny-open-clip": _build_tiny_open_clip,
    "tiny-timm-vit": _build_tiny_timm_vit,
    "tiny-sscd": _build_tiny_sscd,
}


# --------------------------------------------------------------------------------------------
# Idempotent, atomic building
# --------------------------------------------------------------------------------------------


def _fingerprint(spec: ModelSpec | EncoderSpec) -> str:
    """What determines a stand-in's weights: the builder params and the architecture fields."""
    fields = spec.model_dump()
    fields.pop("notes", None)
    blob = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _quiet():
    """Silence the expected noise of building random-weight models (and only that).

    open_clip warns that no pretrained weights were loaded (that is the point of a stand-in),
    torch warns that TorchScript is deprecated (SSCD ships as TorchScript), and transformers
    draws a progress bar per saved shard.
    """
    import logging

    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning
            )
            yield
    finally:
        root.setLevel(level)
        hf_logging.enable_progress_bar()


def build_standin(spec: ModelSpec | EncoderSpec, registry: Registry, force: bool = False) -> Path:
    """Build one stand-in (if its folder is missing or stale) and return the folder.

    Raises:
        ValueError: ``spec`` is not a stand-in, or names an unknown builder.
    """
    if not spec.is_standin:
        raise ValueError(f"{spec.name!r} is not a stand-in (it has no standin block)")
    params = dict(spec.standin)
    builder_name = params.pop("builder", None)
    if builder_name not in BUILDERS:
        raise ValueError(
            f"{spec.name!r}: unknown stand-in builder {builder_name!r}; known: {sorted(BUILDERS)}"
        )
    target = registry.standin_path(spec.name)
    fingerprint = _fingerprint(spec)
    stamp = target / STAMP
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
                return target
        except (OSError, json.JSONDecodeError):
            pass  # unreadable stamp: rebuild
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=target.parent))
    try:
        os.chmod(tmp, new_file_mode(directory=True))  # mkdtemp makes it owner-only (0o700)
        with _quiet():
            BUILDERS[builder_name](spec, params, tmp, registry)
        (tmp / STAMP).write_text(
            json.dumps(
                {
                    "name": spec.name,
                    "builder": builder_name,
                    "params": params,
                    "fingerprint": fingerprint,
                    "note": "random-weight stand-in: not a scientific model",
                },
                indent=2,
            )
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def standins_for_config(cfg) -> list[ModelSpec | EncoderSpec]:
    """The stand-in registry entries a study config uses (:meth:`Registry.standins_for`)."""
    return Registry.for_config(cfg).standins_for(cfg)


def build_for_config(cfg, force: bool = False) -> list[Path]:
    """Build every stand-in that ``cfg`` uses; a no-op for configs with real models only."""
    reg = Registry.for_config(cfg)
    return [build_standin(spec, reg, force=force) for spec in standins_for_config(cfg)]


def main(argv: list[str] | None = None) -> int:
    from iconicity_utils.config import load_config

    parser = argparse.ArgumentParser(
        description="Build the tiny random-weight stand-in models a config uses."
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError) as exc:  # ConfigError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in build_for_config(cfg, force=args.force):
        print(f"stand-in ready: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
