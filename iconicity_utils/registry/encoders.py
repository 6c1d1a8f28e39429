"""Image encoders from the registry: load by name, embed to L2-normalised float32.

Backends (``configs/encoders.yaml``):

- ``open_clip``: ``open_clip.create_model_and_transforms(arch, pretrained=tag_or_checkpoint)``;
  embeddings from ``encode_image`` with open_clip's own transform.
- ``hf-clip``: transformers ``CLIPModel.from_pretrained`` with its own ``CLIPImageProcessor``;
  embeddings are the *projected* image features (:func:`hf_clip_image_features`).
- ``timm``: ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": ckpt})``
  for a local checkpoint (the same code path as timm's hub weights), preprocessing from
  ``resolve_data_config`` + ``create_transform``.  The embedding pools the tokens that
  ``forward_features`` returns: ``pool="mean_all"`` (every token, CLS and registers included, as
  the authors' ``compute_VR.py``) or ``pool="cls"``.
- ``sscd``: a TorchScript file (``torch.jit.load``).

There is no fallback: if the requested encoder cannot load, :class:`EncoderLoadError` names the
encoder and the cause; if it fails (or returns something that is not a finite 2-D feature
matrix) while embedding, :class:`EncoderError` names the encoder and the images.
:attr:`Encoder.info` records what actually ran (backend, id, weights, dtype, device, weights
fingerprint) and is stored next to every score.

Example:
    >>> from iconicity_utils.registry.encoders import load_encoder, embed_images   # doctest: +SKIP
    >>> enc = load_encoder("tiny-clip")                                    # doctest: +SKIP
    >>> embed_images(enc, ["a.png", "b.png"]).shape                        # doctest: +SKIP
    (2, 64)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.core.constants import POOLS, PRECISIONS
from iconicity_utils.registry.revisions import content_digest
from iconicity_utils.registry.specs import EncoderSpec, Registry, is_local

__all__ = [
    "Encoder",
    "EncoderLoadError",
    "EncoderError",
    "load_encoder",
    "describe_encoder",
    "effective_pool",
    "encoder_weights",
    "embed_images",
    "hf_clip_image_features",
    "pool_tokens",
]


class EncoderLoadError(RuntimeError):
    """The requested encoder could not be loaded.  Never followed by a silent substitute."""


class EncoderError(RuntimeError):
    """An encoder failed while embedding; the message names the encoder and the images."""


# --------------------------------------------------------------------------------------------
# Backend-specific feature functions
# --------------------------------------------------------------------------------------------


def hf_clip_image_features(model, pixel_values):
    """Projected CLIP image features from a transformers ``CLIPModel``, on any transformers version.

    transformers < 5 returns a tensor from ``get_image_features``; transformers 5 returns a
    ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds the *projected* features.  (The
    authors' CRA script treats the output as a tensor, fails on every reference under
    transformers 5, skips them all and exits successfully with an empty table.)  Anything else,
    or features whose width is not ``config.projection_dim``, raises :class:`EncoderError`.
    """
    import torch

    out = model.get_image_features(pixel_values=pixel_values)
    if isinstance(out, torch.Tensor):
        feats = out
    else:
        feats = getattr(out, "pooler_output", None)
        if not isinstance(feats, torch.Tensor):
            raise EncoderError(
                f"CLIPModel.get_image_features returned {type(out).__name__} without a tensor "
                "'pooler_output'; cannot find the projected image features"
            )
    want = getattr(getattr(model, "config", None), "projection_dim", None)
    if want is not None and (feats.dim() != 2 or feats.shape[-1] != want):
        raise EncoderError(
            f"CLIPModel image features have shape {tuple(feats.shape)}, expected (batch, {want}) "
            "(the projection); the transformers output format may have changed"
        )
    return feats


def pool_tokens(feats, pool: str, num_prefix_tokens: int):
    """Pool a timm ``forward_features`` output into one vector per image.

    Args:
        feats: ``(B, T, C)`` tokens (ViTs) or ``(B, C, H, W)`` feature maps (CNNs).
        pool: ``"mean_all"``: the mean of *all* tokens, CLS and register tokens included (as the
            authors' ``compute_VR.py``), or of all positions of a feature map; ``"cls"``: token 0.
        num_prefix_tokens: the model's CLS + register count (``"cls"`` needs at least one).
    """
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {POOLS}")
    if feats.dim() == 3:
        if pool == "mean_all":
            return feats.mean(dim=1)
        if num_prefix_tokens < 1:
            raise EncoderError("pool='cls' needs a model with a class token (num_prefix_tokens >= 1)")
        return feats[:, 0]
    if feats.dim() == 4:
        if pool == "cls":
            raise EncoderError("pool='cls' needs a token sequence; this model returns a feature map")
        return feats.mean(dim=(2, 3))
    raise EncoderError(
        f"forward_features returned shape {tuple(feats.shape)}; expected 3-D tokens or 4-D map"
    )


# --------------------------------------------------------------------------------------------
# The loaded encoder
# --------------------------------------------------------------------------------------------


@dataclass
class Encoder:
    """A loaded encoder: the module, its preprocessing, and a record of what ran.

    ``calls`` and ``n_inputs`` count forward passes and the inputs they embedded (the cache
    tests rely on them: a fully cached re-score makes no call).
    """

    spec: EncoderSpec
    model: Any
    transform: Any
    device: str
    info: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    #: timm only: the whole image resized (not cropped) to the input size, for ``cells="tokens"``
    token_transform: Any = None
    calls: int = 0
    n_inputs: int = 0

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides this encoder's embeddings (cache key)."""
        return self.info["fingerprint"]

    def effective_pool(self, pool: str) -> str:
        """The pooling that actually runs: ``pool`` for timm; the backend's own output otherwise."""
        return effective_pool(self.backend, pool)

    # -- preprocessing (runs in DataLoader workers) --------------------------------------------
    def preprocess(self, image):
        """One PIL image -> the encoder's input tensor ``(3, H, W)``, with its own preprocessing."""
        if self.backend == "hf-clip":
            return self.transform(images=image, return_tensors="pt")["pixel_values"][0]
        return self.transform(image)

    def token_input(self, image):
        """The whole image resized to the input size, no crop (``cells="tokens"``; timm only)."""
        if self.token_transform is None:
            raise EncoderError(
                f"encoder {self.name!r} (backend {self.backend}) cannot pool tokens into cells; "
                "cells='tokens' needs a timm ViT"
            )
        return self.token_transform(image)

    # -- forward passes ------------------------------------------------------------------------
    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def _forward(self, x, pool: str):
        if self.backend == "open_clip":
            return self.model.encode_image(x)
        if self.backend == "hf-clip":
            return hf_clip_image_features(self.model, x)
        if self.backend == "timm":
            return pool_tokens(
                self.model.forward_features(x), pool, getattr(self.model, "num_prefix_tokens", 0)
            )
        return self.model(x)  # sscd: TorchScript descriptor

    def embed_batch(self, x, pool: str = "mean_all"):
        """Embed a batch of preprocessed inputs: ``(B, 3, H, W)`` -> L2-normalised float32 ``(B, D)``.

        Runs under ``torch.inference_mode`` (and CUDA autocast for fp16/bf16); returns a CPU tensor.

        Raises:
            EncoderError: the output is not a finite ``(B, D)`` matrix.
        """
        import torch

        with torch.inference_mode(), self._autocast():
            out = self._forward(x.to(self.device, non_blocking=True), pool)
        self.calls += 1
        self.n_inputs += int(x.shape[0])
        return self._finish(out, (int(x.shape[0]),))

    def token_cells(self, x, grid: tuple[int, int]):
        """``cells="tokens"``: one forward pass, patch tokens average-pooled into a rows x cols grid.

        Returns L2-normalised float32 ``(B, rows*cols, D)``, cells in row-major order (as
        :func:`iconicity_utils.core.images.grid_boxes`).  Prefix tokens (CLS, registers) are left out.
        """
        import torch
        import torch.nn.functional as F

        if self.backend != "timm":
            raise EncoderError(f"encoder {self.name!r}: cells='tokens' needs a timm ViT, not {self.backend}")
        rows, cols = grid
        with torch.inference_mode(), self._autocast():
            x = x.to(self.device, non_blocking=True)
            feats = self.model.forward_features(x)
            if feats.dim() != 3:
                raise EncoderError(f"encoder {self.name!r}: cells='tokens' needs token outputs (B, T, C)")
            prefix = int(getattr(self.model, "num_prefix_tokens", 0))
            patches = feats[:, prefix:]
            ph, pw = self.model.patch_embed.patch_size
            gh, gw = x.shape[-2] // ph, x.shape[-1] // pw
            if gh * gw != patches.shape[1]:
                raise EncoderError(
                    f"encoder {self.name!r}: {patches.shape[1]} patch tokens do not form a {gh}x{gw} grid"
                )
            fmap = patches.transpose(1, 2).reshape(x.shape[0], patches.shape[-1], gh, gw)
            cells = F.adaptive_avg_pool2d(fmap.float(), (rows, cols)).flatten(2).transpose(1, 2)
        self.calls += 1
        self.n_inputs += int(x.shape[0])
        return self._finish(cells, (int(x.shape[0]), rows * cols))

    def _finish(self, out, lead: tuple[int, ...]):
        import torch
        import torch.nn.functional as F

        if not isinstance(out, torch.Tensor):
            raise EncoderError(
                f"encoder {self.name!r} returned {type(out).__name__}, not a tensor of image features"
            )
        if tuple(out.shape[:-1]) != lead or out.dim() != len(lead) + 1:
            raise EncoderError(
                f"encoder {self.name!r} returned features of shape {tuple(out.shape)}; expected {lead} + (D,)"
            )
        out = out.float()
        if not torch.isfinite(out).all():
            raise EncoderError(f"encoder {self.name!r} returned non-finite features")
        return F.normalize(out, dim=-1).cpu()


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def encoder_weights(spec: EncoderSpec, registry: Registry) -> str | None:
    """The weights argument actually used: a stand-in's saved file, a resolved path or a tag."""
    if spec.is_standin:
        folder = registry.standin_path(spec.name)
        name = "model.torchscript.pt" if spec.backend == "sscd" else "weights.pt"
        path = folder / name
        if not path.is_file():
            raise EncoderLoadError(
                f"stand-in encoder {spec.name!r} has not been built at {path}; "
                "run `python -m iconicity_utils demo --config <config>` (run_all.sh does this)"
            )
        return str(path)
    if spec.backend == "sscd":
        return registry.resolve_path(spec.source)
    return registry.resolve_path(spec.weights) if spec.weights else None


def _load_open_clip(spec: EncoderSpec, registry: Registry, weights: str | None):
    import open_clip

    if spec.model_config_dir:
        open_clip.add_model_config(registry.resolve_path(spec.model_config_dir))
    if spec.source not in open_clip.list_models():
        raise EncoderLoadError(f"open_clip has no architecture {spec.source!r} (encoder {spec.name!r})")
    if weights is None:
        raise EncoderLoadError(f"encoder {spec.name!r}: open_clip needs weights (a tag or a checkpoint path)")
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.source, pretrained=weights, **spec.model_kwargs
    )
    return model, preprocess, None


def _load_hf_clip(spec: EncoderSpec, registry: Registry, weights: str | None):
    from transformers import CLIPImageProcessor, CLIPModel

    source = registry.resolve_path(spec.source)
    kwargs = {"revision": spec.revision} if spec.revision else {}
    model = CLIPModel.from_pretrained(source, **kwargs, **spec.model_kwargs)
    processor = CLIPImageProcessor.from_pretrained(source, **kwargs)
    return model, processor, None


def _load_timm(spec: EncoderSpec, registry: Registry, weights: str | None):
    import timm
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms

    kwargs = dict(spec.model_kwargs)
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", {}) or {})
    if "input_size" in overlay:
        overlay["input_size"] = tuple(overlay["input_size"])
    if weights in (None, "none"):
        raise EncoderLoadError(f"encoder {spec.name!r}: timm needs weights ('hub' or a checkpoint path)")
    if weights != "hub":
        if not Path(weights).is_file():
            raise EncoderLoadError(f"encoder {spec.name!r}: checkpoint file not found: {weights}")
        overlay["file"] = weights  # a local checkpoint through timm's own pretrained loader
    model = timm.create_model(
        spec.source, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay or None, **kwargs
    )
    data_cfg = resolve_data_config(model=model)
    transform = create_transform(**data_cfg)
    _, height, width = data_cfg["input_size"]
    interp = transforms.InterpolationMode(data_cfg.get("interpolation", "bicubic"))
    token_transform = transforms.Compose(
        [
            transforms.Resize((height, width), interpolation=interp),
            transforms.ToTensor(),
            transforms.Normalize(mean=data_cfg["mean"], std=data_cfg["std"]),
        ]
    )
    return model, transform, token_transform


def _load_sscd(spec: EncoderSpec, registry: Registry, weights: str | None):
    import torch
    from torchvision import transforms

    if weights is None or not Path(weights).is_file():
        raise EncoderLoadError(f"encoder {spec.name!r}: TorchScript file not found: {weights}")
    model = torch.jit.load(weights, map_location="cpu")
    size = spec.image_size or 288
    transform = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    return model, transform, None


_LOADERS = {"open_clip": _load_open_clip, "hf-clip": _load_hf_clip, "timm": _load_timm, "sscd": _load_sscd}


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for pkg in ("torch", "torchvision", "timm", "open_clip_torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _fingerprint(spec: EncoderSpec, registry: Registry, weights: str | None, precision: str) -> str:
    """Hash of what decides the embeddings, computed without loading the model.

    Local weights (a checkpoint, a TorchScript file, an hf-clip folder) are hashed by content
    (:func:`~iconicity_utils.registry.revisions.content_digest`, as the lock and provenance); hub
    weights by id, tag and revision.  The architecture config folder (open_clip
    ``model_config_dir``), the registry fields that shape the model and its preprocessing
    (``model_kwargs``, ``image_size``), the precision and the versions of the packages that build
    the preprocessing and run the model complete the key.
    """
    local = None
    if weights and os.path.exists(weights):
        local = content_digest(Path(weights))
    elif spec.backend == "hf-clip" and spec.source and os.path.exists(registry.resolve_path(spec.source)):
        local = content_digest(Path(registry.resolve_path(spec.source)))
    config_dir = None
    if spec.model_config_dir and os.path.exists(registry.resolve_path(spec.model_config_dir)):
        config_dir = content_digest(Path(registry.resolve_path(spec.model_config_dir)))
    blob = json.dumps(
        {
            "backend": spec.backend,
            "source": spec.source,
            "weights": local or weights,
            "revision": spec.revision,
            "model_config_dir": config_dir,
            "model_kwargs": spec.model_kwargs,
            "image_size": spec.image_size,
            "precision": precision,
            "versions": _versions(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def effective_pool(backend: str, pool: str) -> str:
    """The pooling that actually runs: ``pool`` for timm; the backend's own output (``"native"``) otherwise."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {POOLS}")
    return pool if backend == "timm" else "native"


def _checked_spec(spec: EncoderSpec | str, registry: Registry, device: str, precision: str) -> EncoderSpec:
    """The registry entry for ``spec``, after checking that ``precision`` suits ``device``."""
    if isinstance(spec, str):
        spec = registry.encoder(spec)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision != "fp32" and not str(device).startswith("cuda"):
        raise ValueError(f"precision {precision!r} is CUDA autocast; on device {device!r} use 'fp32'")
    return spec


def describe_encoder(
    spec: EncoderSpec | str,
    registry: Registry | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict[str, Any]:
    """What :func:`load_encoder` would run (backend, id, weights, dtype, device, fingerprint), without
    loading the model: scoring uses it to find cached features before deciding to load anything.

    ``revision`` is the *resolved* revision (:meth:`Registry.revision`): the commit of the hub
    repository the weights come from (``revision_source``; open_clip's and timm's own hub ids for a
    pretrained tag), or ``sha256:<hex>`` of local weights (stand-in folder, SSCD file); ``locked``
    says it came from the study's lock.  A hub commit enters the fingerprint, so cached features
    of other weights are never reused.

    Raises:
        EncoderLoadError: a stand-in that has not been built, a local weights file that is missing,
            a revision that cannot be resolved, or a disagreement with the study's lock.
    """
    registry = registry or Registry.load()
    spec = _checked_spec(spec, registry, device, precision)
    weights = encoder_weights(spec, registry)
    local_kind = spec.backend == "sscd" or (weights not in (None, "hub") and is_local(weights))
    if local_kind and (weights is None or not os.path.exists(weights)):
        raise EncoderLoadError(f"encoder {spec.name!r}: weights file not found: {weights}")
    try:
        rev = registry.revision(spec)
    except Exception as exc:  # unresolvable or not as locked: nothing is described, nothing loads
        raise EncoderLoadError(f"encoder {spec.name!r}: {type(exc).__name__}: {exc}") from exc
    keyed = spec.model_copy(update={"revision": rev.resolved}) if rev.kind == "hub" else spec
    return {
        "encoder": spec.name,
        "backend": spec.backend,
        "source": spec.source,
        "weights": weights,
        "revision": rev.resolved,
        "revision_source": rev.source,
        "locked": rev.locked,
        "dtype": "float32" if precision == "fp32" else f"autocast-{precision}",
        "device": device,
        "standin": spec.is_standin,
        "fingerprint": _fingerprint(keyed, registry, weights, precision),
    }


def load_encoder(
    spec: EncoderSpec | str,
    registry: Registry | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> Encoder:
    """Load a registered encoder on ``device``, in eval mode.

    Args:
        spec: a registry entry or its name.
        registry: the registry (default: the repository's).
        device: explicit device (``"cpu"``, ``"cuda"``); nothing is guessed.
        precision: ``"fp32"``, or ``"fp16"`` / ``"bf16"`` CUDA autocast (CUDA devices only).

    Raises:
        EncoderLoadError: naming the encoder and the cause; nothing else is loaded instead.
    """
    registry = registry or Registry.load()
    spec = _checked_spec(spec, registry, device, precision)
    try:
        weights = encoder_weights(spec, registry)
        model, transform, token_transform = _LOADERS[spec.backend](spec, registry, weights)
        info = describe_encoder(spec, registry, device, precision)
    except EncoderLoadError:
        raise
    except Exception as exc:
        raise EncoderLoadError(
            f"could not load encoder {spec.name!r} (backend {spec.backend}, source {spec.source!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    model = model.to(device).eval()
    return Encoder(
        spec=spec,
        model=model,
        transform=transform,
        device=device,
        info=info,
        precision=precision,
        token_transform=token_transform,
    )


def embed_images(
    encoder: Encoder,
    images: Sequence[Any],
    batch_size: int = 32,
    pool: str = "mean_all",
) -> np.ndarray:
    """Embed whole images (paths or PIL images) in batches: ``(N, D)`` L2-normalised float32.

    A convenience for small sets and tests; :mod:`iconicity_utils.score.features` is the cached,
    parallel path that scoring uses.

    Raises:
        ImageReadError: an image cannot be decoded (names the path).
        EncoderError: the encoder fails; names the encoder and the images of the failing batch.
    """
    import torch

    from iconicity_utils.core.images import open_rgb

    names = [str(im) if isinstance(im, str | Path) else f"<image {i}>" for i, im in enumerate(images)]
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pils = [open_rgb(im) if isinstance(im, str | Path) else im.convert("RGB") for im in chunk]
        x = torch.stack([encoder.preprocess(im) for im in pils])
        try:
            out.append(encoder.embed_batch(x, pool=pool).numpy())
        except Exception as exc:
            raise EncoderError(
                f"encoder {encoder.name!r} failed on {names[start : start + batch_size]}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
