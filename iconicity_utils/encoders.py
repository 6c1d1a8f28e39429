"""Image encoders from the registry: load by name, embed to L2-normalised float32.

Backends (``configs/encoders.yaml``):

- ``open_clip``: ``open_clip.create_model_and_transforms(arch, pretrained=tag_or_checkpoint)``;
  embeddings from ``encode_image`` with open_clip's own transform.
- ``hf-clip``: transformers ``CLIPModel.from_pretrained`` with its own ``CLIPImageProcessor``;
  embeddings are the *projected* image features.
- ``timm``: ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": ckpt})``
  for a local checkpoint (the same code path as timm's hub weights), preprocessing from
  ``resolve_data_config`` + ``create_transform``.
- ``sscd``: a TorchScript file (``torch.jit.load``).

There is no fallback: if the requested encoder cannot load, :class:`EncoderLoadError` names the
encoder and the cause.  :attr:`Encoder.info` records what actually ran (backend, id, weights,
dtype, device) and is stored next to every score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iconicity_utils.registry import EncoderSpec, Registry

__all__ = ["Encoder", "EncoderLoadError", "load_encoder", "encoder_weights"]


class EncoderLoadError(RuntimeError):
    """The requested encoder could not be loaded.  Never followed by a silent substitute."""


@dataclass
class Encoder:
    """A loaded encoder: the module, its preprocessing, and a record of what ran."""

    spec: EncoderSpec
    model: Any
    transform: Any
    device: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.spec.backend


def encoder_weights(spec: EncoderSpec, registry: Registry) -> str | None:
    """The weights argument actually used: a stand-in's saved file, a resolved path or a tag."""
    if spec.is_standin:
        folder = registry.standin_path(spec.name)
        name = "model.torchscript.pt" if spec.backend == "sscd" else "weights.pt"
        path = folder / name
        if not path.is_file():
            raise EncoderLoadError(
                f"stand-in encoder {spec.name!r} has not been built at {path}; "
                "run `python -m iconicity_utils.standins --config <config>` (run_all.sh does this)"
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
    return model, preprocess


def _load_hf_clip(spec: EncoderSpec, registry: Registry, weights: str | None):
    from transformers import CLIPImageProcessor, CLIPModel

    source = registry.resolve_path(spec.source)
    kwargs = {"revision": spec.revision} if spec.revision else {}
    model = CLIPModel.from_pretrained(source, **kwargs, **spec.model_kwargs)
    processor = CLIPImageProcessor.from_pretrained(source, **kwargs)
    return model, processor


def _load_timm(spec: EncoderSpec, registry: Registry, weights: str | None):
    import timm
    from timm.data import create_transform, resolve_data_config

    kwargs = dict(spec.model_kwargs)
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", {}) or {})
    if "input_size" in overlay:
        overlay["input_size"] = tuple(overlay["input_size"])
    if weights in (None, "none"):
        raise EncoderLoadError(f"encoder {spec.name!r}: timm needs weights ('hub' or a checkpoint path)")
    if weights != "hub":
        overlay["file"] = weights  # a local checkpoint through timm's own pretrained loader
    model = timm.create_model(
        spec.source, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay or None, **kwargs
    )
    transform = create_transform(**resolve_data_config(model=model))
    return model, transform


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
    return model, transform


_LOADERS = {"open_clip": _load_open_clip, "hf-clip": _load_hf_clip, "timm": _load_timm, "sscd": _load_sscd}


def load_encoder(spec: EncoderSpec | str, registry: Registry | None = None, device: str = "cpu") -> Encoder:
    """Load a registered encoder on ``device``, in eval mode.

    Raises:
        EncoderLoadError: naming the encoder and the cause; nothing else is loaded instead.
    """
    registry = registry or Registry.load()
    if isinstance(spec, str):
        spec = registry.encoder(spec)
    try:
        weights = encoder_weights(spec, registry)
        model, transform = _LOADERS[spec.backend](spec, registry, weights)
    except EncoderLoadError:
        raise
    except Exception as exc:
        raise EncoderLoadError(
            f"could not load encoder {spec.name!r} (backend {spec.backend}, source {spec.source!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    model = model.to(device).eval()
    info = {
        "encoder": spec.name,
        "backend": spec.backend,
        "source": spec.source,
        "weights": weights,
        "revision": spec.revision,
        "dtype": "float32",
        "device": device,
        "standin": spec.is_standin,
    }
    return Encoder(spec=spec, model=model, transform=transform, device=device, info=info)
