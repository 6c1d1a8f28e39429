"""Tiny random-weight stand-in models, built from configs and saved to a local folder.

No weights can be downloaded in the offline workplace, so the demo and the tests use tiny models
with random weights.  Each is built from a config with a fixed seed and saved with
``save_pretrained`` / ``state_dict`` into ``<paths.standins>/<name>/``; the loaders then open that
folder exactly as they would open a hub id.  **Nothing a stand-in produces is a scientific
result** (see :data:`iconicity_utils.core.constants.STANDIN_LABEL`).

Builders (named by ``standin.builder`` in the registry):

- ``tiny-sd``: a Stable-Diffusion pipeline (UNet, VAE, CLIP text encoder, DDIM scheduler) whose
  tokenizer is the *real* 49,408-token CLIP BPE vocabulary, rebuilt from the BPE file open_clip
  ships, so that token ids match ``open_clip.tokenize``.
- ``tiny-open-clip``: an open_clip model from an architecture JSON registered with
  ``open_clip.add_model_config``; weights saved as a state dict.
- ``tiny-timm-vit``: a DINOv2-style ViT from timm; weights saved as a state dict.
- ``tiny-sscd``: a small CNN descriptor saved as TorchScript, standing in for SSCD.
- ``tiny-captioner``: an image-to-text ``VisionEncoderDecoderModel`` (stage 05 literal prompts;
  registered in ``configs/captioners.yaml``; the command builds every stand-in captioner of the
  registry with a config's stand-ins, :func:`build_captioner_standins`).

Building is idempotent: a ``standin.json`` stamp records the spec; a folder whose stamp matches
is left alone, and a build happens in a temporary folder renamed into place when complete.

Command line::

    python -m iconicity_utils demo --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iconicity_utils.core.io import atomic_dir
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


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A transformers ``CLIPTokenizer`` with the real CLIP vocabulary (49,408 tokens).

    ``pad_token``: ``"<|endoftext|>"`` as SD 1.x/2.x and the CLIP-L tokenizers of SDXL and SD3;
    ``"!"`` as their OpenCLIP-bigG ``tokenizer_2``.
    """
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
        pad_token=pad_token,
    )


# --------------------------------------------------------------------------------------------
# Builders: each writes into an empty folder `out`
# --------------------------------------------------------------------------------------------


def _build_tiny_sd(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(int(params.get("seed", 0)))
    ch = tuple(params.get("block_out_channels", (4, 8)))
    cross = int(params.get("cross_attention_dim", 32))
    tok = clip_tokenizer()
    latent = spec.height // 2 ** (len(ch) - 1)
    # SD 2.x-like options (defaults: SD 1.x, and the demo stand-ins as they always were)
    sd2 = {"use_linear_projection": True} if params.get("use_linear_projection") else {}
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
        **sd2,
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
            **({"hidden_act": params["text_hidden_act"]} if "text_hidden_act" in params else {}),
        )
    )
    scheduler = _sd_scheduler(params)
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


# --------------------------------------------------------------------------------------------
# The paper config's other pipeline classes: SDXL, SD3 and FLUX stand-ins (configs/rehearsal.yaml)
# --------------------------------------------------------------------------------------------


def _sd_scheduler(params: dict[str, Any]):
    """The scheduler of a ``tiny-sd`` stand-in: ``standin.scheduler`` ``ddim`` (default, SD 2.x and the
    demo) or ``pndm`` (SD 1.5), with ``standin.prediction_type`` ``epsilon`` (default) or ``v_prediction``
    (SD 2.1 at 768 px)."""
    from diffusers import DDIMScheduler, PNDMScheduler

    common = {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "prediction_type": params.get("prediction_type", "epsilon"),
    }
    name = params.get("scheduler", "ddim")
    if name == "ddim":
        return DDIMScheduler(clip_sample=False, **common)
    if name == "pndm":
        return PNDMScheduler(skip_prk_steps=True, **common)
    raise ValueError(f"tiny-sd: unknown standin.scheduler {name!r}; expected 'ddim' or 'pndm'")


#: printable ASCII and Latin-1 letters: every piece a T5 stand-in needs to spell any title
_T5_CHARS = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0xC0, 0x100) if chr(c).isalpha()]
#: one-character words
_T5_WORD_CHARS = [c for c in _T5_CHARS if c.isalnum()]


def t5_tokenizer(
    n_words: int = 2000, n_capitalised: int = 2000, n_subwords: int = 1000, extra_ids: int = 100
):
    """A small T5 tokenizer (``T5TokenizerFast``: a sentencepiece-style Unigram model), built offline.

    Real T5 tokenizers are 32,000-piece sentencepiece models downloaded from the hub.  Here the pieces
    come from open_clip's bundled BPE vocabulary, in merge order (roughly frequency order): the
    first ``n_words`` word-final merges as word-initial pieces (``the</w>`` -> ``▁the``), capitalised
    copies of the first ``n_capitalised``, the first ``n_subwords`` word-internal merges, one-letter
    words (``▁A``, score -10), and every printable ASCII character and Latin-1 letter (score -20),
    so any title is spelt without ``<unk>``.  A piece of rank ``r`` scores ``-ln(r + 2)``, so Viterbi
    prefers whole words.
    Special tokens are T5's: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then ``extra_ids`` sentinels.

    The vocabulary is *constructed*, not trained: a Unigram model trained with the ``tokenizers``
    library differs from run to run (its trainer seeds its hash maps randomly, even on one thread),
    which would change the stand-in's bytes, and so its digest, on every build.
    """
    import math

    import open_clip
    from transformers import T5TokenizerFast

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path) as fh:
        merges = ["".join(m.split()) for m in fh.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]]
    words = [
        m[: -len("</w>")] for m in merges if m.endswith("</w>") and m[:-4].isascii() and m[:-4].isalpha()
    ]
    inner = [m for m in merges if not m.endswith("</w>") and m.isascii() and m.isalpha()]
    pieces = ["▁" + w for w in words[:n_words]]
    pieces += ["▁" + w.capitalize() for w in words[:n_capitalised]]
    pieces += inner[:n_subwords]
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = {p for p, _ in vocab}
    for rank, piece in enumerate(pieces):
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, -math.log(rank + 2)))
    for piece, score in [
        *(("▁" + c, -10.0) for c in _T5_WORD_CHARS),
        *((c, -20.0) for c in ["▁", *_T5_CHARS]),
    ]:
        if piece not in seen:  # one-letter words ("▁A") are no merge; then single characters
            seen.add(piece)
            vocab.append((piece, score))
    return T5TokenizerFast(vocab=vocab, extra_ids=extra_ids, model_max_length=512)


def _clip_text(
    tok, params: dict[str, Any], seed: int, projection: bool = False, hidden_act: str = "quick_gelu"
):
    """A tiny CLIP text encoder over ``tok``'s vocabulary (``CLIPTextModelWithProjection`` if ``projection``)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_size=int(params.get("text_hidden", 32)),
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=int(params.get("text_layers", 2)),
        vocab_size=len(tok),
        max_position_embeddings=77,
        projection_dim=int(params.get("projection_dim", 32)),
        hidden_act=hidden_act,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5_encoder(tok, params: dict[str, Any], seed: int):
    """A tiny T5 v1.1 encoder (gated GELU, untied embeddings, as google/t5-v1_1-xxl) over ``tok``."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    d_model = int(params.get("t5_hidden", 64))
    return T5EncoderModel(
        T5Config(
            vocab_size=len(tok),
            d_model=d_model,
            d_kv=8,
            d_ff=2 * d_model,
            num_layers=int(params.get("t5_layers", 2)),
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            dropout_rate=0.0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        )
    )


def _tiny_vae(params: dict[str, Any], seed: int, latent_channels: int, scaling: float, shift: float | None):
    """A tiny ``AutoencoderKL``; ``standin.vae_channels`` (default 4 levels: downscale 8, as the real VAEs)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    ch = list(params.get("vae_channels", [4, 4, 8, 8]))
    flow = shift is not None  # SD3 / FLUX VAEs: 16 latent channels, a shift, no quant convs
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=ch,
        down_block_types=["DownEncoderBlock2D"] * len(ch),
        up_block_types=["UpDecoderBlock2D"] * len(ch),
        latent_channels=latent_channels,
        norm_num_groups=2,
        scaling_factor=scaling,
        **({"shift_factor": shift, "use_quant_conv": False, "use_post_quant_conv": False} if flow else {}),
    )


def _save_pipeline(pipe, spec: ModelSpec, out: Path) -> None:
    """``save_pretrained``; with the entry's ``variant`` (e.g. fp16), weights in that dtype and file name,
    so that ``from_pretrained(variant=...)`` takes the same path as for the real model."""
    if spec.variant:
        import torch

        if spec.variant not in ("fp16", "bf16"):
            raise ValueError(
                f"{spec.name}: stand-ins can save variant 'fp16' or 'bf16', not {spec.variant!r}"
            )
        for module in pipe.components.values():
            if not isinstance(module, torch.nn.Module):
                continue
            if spec.variant == "fp16":  # .half(), not ModelMixin.to(dtype), which warns needlessly
                module.half()
            else:
                module.bfloat16()
        pipe.save_pretrained(out, variant=spec.variant)
    else:
        pipe.save_pretrained(out)


def _build_tiny_sdxl(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    """SDXL: CLIP-L ``text_encoder`` + OpenCLIP-bigG-like ``text_encoder_2`` (with projection, pad "!"),
    a UNet with added ``text_time`` conditioning (pooled text + 6 size/crop ids), an Euler scheduler."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    seed = int(params.get("seed", 0))
    tok, tok2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    text_encoder = _clip_text(tok, params, seed)
    text_encoder_2 = _clip_text(tok2, params, seed + 1, projection=True, hidden_act="gelu")
    vae = _tiny_vae(params, seed, latent_channels=4, scaling=0.13025, shift=None)
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    time_dim = 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=tuple(params.get("block_out_channels", (4, 8))),
        layers_per_block=1,
        sample_size=spec.height // scale,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + text_encoder_2.config.projection_dim,
        cross_attention_dim=text_encoder.config.hidden_size + text_encoder_2.config.hidden_size,
        norm_num_groups=2,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        prediction_type="epsilon",
        use_karras_sigmas=False,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tok,
        tokenizer_2=tok2,
        unet=unet,
        scheduler=scheduler,
        image_encoder=None,
        feature_extractor=None,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    _save_pipeline(pipe, spec, out)


def _build_tiny_sd3(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    """SD 3.5 Medium-like: two CLIP encoders with projection + a T5 encoder, an MMDiT-X transformer
    (``SD3Transformer2DModel`` with dual attention and RMS QK-norm), a 16-channel VAE, flow matching."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    seed = int(params.get("seed", 0))
    tok, tok2, tok3 = clip_tokenizer(), clip_tokenizer(pad_token="!"), t5_tokenizer()
    text_encoder = _clip_text(tok, params, seed, projection=True)
    text_encoder_2 = _clip_text(tok2, params, seed + 1, projection=True, hidden_act="gelu")
    text_encoder_3 = _t5_encoder(tok3, params, seed + 2)
    vae = _tiny_vae(params, seed, latent_channels=16, scaling=1.5305, shift=0.0609)
    scale, patch = 2 ** (len(vae.config.block_out_channels) - 1), 2
    clip_width = text_encoder.config.hidden_size + text_encoder_2.config.hidden_size
    if clip_width > text_encoder_3.config.d_model:
        raise ValueError(f"{spec.name}: the CLIP widths ({clip_width}) must not exceed the T5 width")
    torch.manual_seed(seed)
    heads, head_dim = 4, 8
    transformer = SD3Transformer2DModel(
        sample_size=spec.height // scale,
        patch_size=patch,
        in_channels=16,
        out_channels=16,
        num_layers=int(params.get("layers", 2)),
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=text_encoder_3.config.d_model,
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=text_encoder.config.projection_dim + text_encoder_2.config.projection_dim,
        pos_embed_max_size=2 * (spec.height // scale // patch),
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tok2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tok3,
        image_encoder=None,
        feature_extractor=None,
    )
    _save_pipeline(pipe, spec, out)


def _build_tiny_flux(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    """FLUX.1-schnell-like: a CLIP text encoder (pooled) + a T5 encoder (sequence), a
    ``FluxTransformer2DModel`` without guidance embedding (schnell), packed 16-channel latents."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    seed = int(params.get("seed", 0))
    tok, tok2 = clip_tokenizer(), t5_tokenizer()
    text_encoder = _clip_text(tok, params, seed)
    text_encoder_2 = _t5_encoder(tok2, params, seed + 2)
    vae = _tiny_vae(params, seed, latent_channels=16, scaling=0.3611, shift=0.1159)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * 16,  # 2x2 packed latents
        num_layers=int(params.get("layers", 1)),
        num_single_layers=int(params.get("single_layers", 2)),
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=text_encoder_2.config.d_model,
        pooled_projection_dim=text_encoder.config.hidden_size,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0,
        use_dynamic_shifting=False,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tok2,
        transformer=transformer,
        image_encoder=None,
        feature_extractor=None,
    )
    _save_pipeline(pipe, spec, out)


def _build_tiny_captioner(spec, params: dict[str, Any], out: Path, registry: Registry) -> None:
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


BUILDERS: dict[str, Callable[..., None]] = {
    "tiny-sd": _build_tiny_sd,
    "tiny-open-clip": _build_tiny_open_clip,
    "tiny-timm-vit": _build_tiny_timm_vit,
    "tiny-sscd": _build_tiny_sscd,
    "tiny-sdxl": _build_tiny_sdxl,
    "tiny-sd3": _build_tiny_sd3,
    "tiny-flux": _build_tiny_flux,
    "tiny-captioner": _build_tiny_captioner,
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
    with atomic_dir(target) as tmp:
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
    return target


def standins_for_config(cfg) -> list[ModelSpec | EncoderSpec]:
    """The stand-in registry entries a study config uses (:meth:`Registry.standins_for`)."""
    return Registry.for_config(cfg).standins_for(cfg)


def build_captioner_standins(cfg, force: bool = False) -> list[Path]:
    """Build (idempotently) every stand-in captioner of the registry into ``paths.standins``
    (stage 05's literal prompts; notebook 05 shows one even when the study's literal source is not
    a captioner)."""
    registry = Registry.for_config(cfg)
    specs = [s for s in registry.captioners.values() if s.is_standin]
    return [build_standin(spec, registry, force=force) for spec in specs]  # type: ignore[arg-type]


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
    for path in build_for_config(cfg, force=args.force) + build_captioner_standins(cfg, force=args.force):
        print(f"stand-in ready: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
