"""Tiny random-weight encoders and captioner: open_clip CLIP, a timm ViT (DINO), SSCD and an image-to-text model.

Weights are saved as the real loaders expect them (a state dict, TorchScript, ``save_pretrained``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iconicity_utils.demo.tokenizers import clip_tokenizer
from iconicity_utils.registry import EncoderSpec, Registry

__all__ = [
    "TinySSCD",
    "build_tiny_captioner",
    "build_tiny_open_clip",
    "build_tiny_sscd",
    "build_tiny_timm_vit",
]


def build_tiny_open_clip(spec: EncoderSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import open_clip
    import torch

    if spec.model_config_dir:
        open_clip.add_model_config(registry.resolve_path(spec.model_config_dir))
    torch.manual_seed(int(params.get("seed", 0)))
    model = open_clip.create_model(spec.source, pretrained=None)
    torch.save(model.state_dict(), out / "weights.pt")


def build_tiny_timm_vit(spec: EncoderSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import timm
    import torch

    torch.manual_seed(int(params.get("seed", 0)))
    kwargs = {k: v for k, v in spec.model_kwargs.items() if k != "pretrained_cfg_overlay"}
    model = timm.create_model(spec.source, pretrained=False, num_classes=0, **kwargs)
    torch.save(model.state_dict(), out / "weights.pt")


class TinySSCD:
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


def build_tiny_sscd(spec: EncoderSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import torch

    torch.manual_seed(int(params.get("seed", 0)))
    model = TinySSCD.build(int(params.get("dim", 512))).eval()
    torch.jit.script(model).save(str(out / "model.torchscript.pt"))


def build_tiny_captioner(spec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    """An image-to-text stand-in (stage 05 literal prompts): a transformers ``VisionEncoderDecoderModel``
    (tiny ViT encoder, tiny GPT-2 decoder with cross-attention) over the real CLIP BPE vocabulary
    (:func:`clip_tokenizer`), with a ``ViTImageProcessor``; it loads through
    ``AutoModelForImageTextToText`` / ``AutoImageProcessor`` / ``AutoTokenizer`` like a hub captioner.
    Its captions are random CLIP tokens (``initializer_range`` 0.2 makes them differ between images).
    """
    import torch
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(int(params.get("seed", 0)))
    tok = clip_tokenizer()
    size, width = int(params.get("image_size", 32)), int(params.get("width", 32))
    init = float(params.get("initializer_range", 0.2))
    encoder = ViTConfig(
        image_size=size,
        patch_size=8,
        hidden_size=width,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        initializer_range=init,
    )
    decoder = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=width,
        n_layer=int(params.get("decoder_layers", 2)),
        n_head=2,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        initializer_range=init,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = tok.bos_token_id
    config.pad_token_id = tok.pad_token_id
    config.eos_token_id = tok.eos_token_id
    model = VisionEncoderDecoderModel(config=config).eval()
    model.generation_config.decoder_start_token_id = tok.bos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.no_repeat_ngram_size = 2
    model.save_pretrained(out)
    tok.save_pretrained(out)
    ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(out)
