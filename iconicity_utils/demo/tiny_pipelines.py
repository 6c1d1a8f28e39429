"""Tiny random-weight diffusion pipelines: Stable Diffusion 1.x/2.x, SDXL, SD3 and FLUX stand-ins.

Each builder writes a pipeline of the registry entry's diffusers class into an empty folder with
``save_pretrained``, so that ``from_pretrained`` on that folder takes the same path as a hub id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iconicity_utils.demo.tokenizers import clip_tokenizer, t5_tokenizer
from iconicity_utils.registry import ModelSpec, Registry

__all__ = ["build_tiny_flux", "build_tiny_sd", "build_tiny_sd3", "build_tiny_sdxl"]


def build_tiny_sd(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
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
    _sd_pipeline(unet, vae, text_encoder, tok, params).save_pretrained(out)


def _sd_pipeline(unet, vae, text_encoder, tokenizer, params: dict[str, Any]):
    """A ``StableDiffusionPipeline`` of the built parts, without safety checker (draws no random numbers)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        unet=unet,
        scheduler=_sd_scheduler(params),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


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


def build_tiny_sdxl(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
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


def build_tiny_sd3(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
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


def build_tiny_flux(spec: ModelSpec, params: dict[str, Any], out: Path, registry: Registry) -> None:
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
