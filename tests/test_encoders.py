"""Encoders: every backend embeds to L2-normalised float32 exactly as its own model computes it,
hf-clip copes with transformers 5's output objects, and nothing ever falls back silently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scoring_fixtures import REPO_ROOT, photo

from iconicity_utils.registry import EncoderSpec, Registry
from iconicity_utils.registry.encoders import (
    EncoderError,
    EncoderLoadError,
    describe_encoder,
    embed_images,
    hf_clip_image_features,
    load_encoder,
    pool_tokens,
)


@pytest.fixture(scope="module")
def reg(standins):
    return Registry.load()


@pytest.fixture(scope="module")
def images():
    return [photo("astronaut", (70, 50)), photo("coffee", (64, 64)), photo("chelsea", (40, 90))]


def tmp_registry(root, *specs: EncoderSpec) -> Registry:
    return Registry(
        models={},
        encoders={s.name: s for s in specs},
        root=root,
        standins_dir=REPO_ROOT / ".cache" / "standins",
    )


@pytest.mark.parametrize("name, dim", [("tiny-clip", 64), ("tiny-dino", 32), ("tiny-sscd", 512)])
def test_every_backend_gives_l2_normalised_float32(reg, images, name, dim):
    enc = load_encoder(name, reg)
    e = embed_images(enc, images)
    assert e.dtype == np.float32 and e.shape == (3, dim)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e, embed_images(enc, images, batch_size=1), atol=1e-6)  # batching-invariant
    assert enc.info["encoder"] == name and enc.info["device"] == "cpu" and enc.info["dtype"] == "float32"
    assert len(enc.info["fingerprint"]) == 16


def test_open_clip_embedding_is_encode_image_normalised(reg, images):
    enc = load_encoder("tiny-clip", reg)
    x = torch.stack([enc.transform(im) for im in images])
    with torch.no_grad():
        want = enc.model.encode_image(x).numpy().astype(np.float64)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(embed_images(enc, images), want, atol=1e-6)


def test_timm_pools_all_tokens_or_cls(reg, images):
    enc = load_encoder("tiny-dino", reg)
    x = torch.stack([enc.transform(im) for im in images])
    with torch.no_grad():
        tokens = enc.model.forward_features(x).numpy().astype(np.float64)  # (B, 1 + 16, 32)
    assert tokens.shape[1] == 17  # CLS + 4x4 patches at 56 px: the mean includes CLS
    mean_all = tokens.mean(axis=1)
    cls = tokens[:, 0]
    for pool, want in (("mean_all", mean_all), ("cls", cls)):
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(embed_images(enc, images, pool=pool), want, atol=1e-6)
    assert enc.effective_pool("cls") == "cls"
    assert load_encoder("tiny-clip", reg).effective_pool("cls") == "native"


def test_pool_tokens_rejects_what_it_cannot_honour():
    with pytest.raises(EncoderError, match="class token"):
        pool_tokens(torch.zeros(1, 4, 3), "cls", 0)
    with pytest.raises(EncoderError, match="feature map"):
        pool_tokens(torch.zeros(1, 3, 2, 2), "cls", 1)
    with pytest.raises(ValueError, match="unknown pool"):
        pool_tokens(torch.zeros(1, 4, 3), "max", 1)
    np.testing.assert_allclose(pool_tokens(torch.ones(2, 3, 4, 4), "mean_all", 0).numpy(), np.ones((2, 3)))


def test_token_cells_average_patch_tokens_into_the_grid(tmp_path, images):
    """A 112-px ViT/14 has 8x8 patch tokens: each of the 4x4 cells must be the mean of a 2x2 block."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(
        "vit_small_patch14_dinov2",
        pretrained=False,
        num_classes=0,
        img_size=112,
        depth=1,
        embed_dim=16,
        num_heads=2,
    )
    ckpt = tmp_path / "vit.pt"
    torch.save(model.state_dict(), ckpt)
    spec = EncoderSpec(
        name="vit112",
        backend="timm",
        source="vit_small_patch14_dinov2",
        weights=str(ckpt),
        model_kwargs={
            "img_size": 112,
            "depth": 1,
            "embed_dim": 16,
            "num_heads": 2,
            "pretrained_cfg_overlay": {"input_size": [3, 112, 112]},
        },
    )
    enc = load_encoder(spec, tmp_registry(tmp_path, spec))
    x = torch.stack([enc.token_input(im) for im in images])
    assert x.shape[-2:] == (112, 112)  # resized whole, not center-cropped
    with torch.no_grad():
        tok = enc.model.forward_features(x).numpy().astype(np.float64)[:, 1:]  # drop CLS
    grid = tok.reshape(3, 8, 8, 16)
    want = np.zeros((3, 16, 16))
    for r in range(4):
        for c in range(4):
            want[:, r * 4 + c] = grid[:, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean(axis=(1, 2))
    want /= np.linalg.norm(want, axis=-1, keepdims=True)
    np.testing.assert_allclose(enc.token_cells(x, (4, 4)).numpy(), want, atol=1e-5)


def _tiny_hf_clip(folder):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    config = CLIPConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "vocab_size": 99,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=12,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )


def test_hf_clip_backend_returns_projected_features(tmp_path, images):
    folder = tmp_path / "tiny-hf-clip"
    _tiny_hf_clip(folder)
    spec = EncoderSpec(name="tiny-hf", backend="hf-clip", source=str(folder))
    enc = load_encoder(spec, tmp_registry(tmp_path, spec))
    got = embed_images(enc, images)
    assert got.shape == (3, 12)
    px = enc.transform(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():  # the definition, written out: projection of the pooled CLS output
        want = enc.model.visual_projection(enc.model.vision_model(pixel_values=px).pooler_output)
    np.testing.assert_allclose(got, F.normalize(want, dim=-1).numpy(), atol=1e-6)


class _FakeClip(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out
        self.config = type("C", (), {"projection_dim": 4})()

    def get_image_features(self, pixel_values):
        return self.out


def test_hf_clip_features_tensor_output_object_and_failures():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    feats = torch.randn(2, 4)
    assert torch.equal(hf_clip_image_features(_FakeClip(feats), None), feats)  # transformers < 5
    wrapped = BaseModelOutputWithPooling(last_hidden_state=torch.randn(2, 5, 8), pooler_output=feats)
    assert torch.equal(hf_clip_image_features(_FakeClip(wrapped), None), feats)  # transformers 5
    with pytest.raises(EncoderError, match="pooler_output"):
        hf_clip_image_features(_FakeClip(BaseModelOutputWithPooling(last_hidden_state=feats)), None)
    with pytest.raises(EncoderError, match="expected \\(batch, 4\\)"):  # e.g. unprojected features
        hf_clip_image_features(_FakeClip(torch.randn(2, 8)), None)


def test_no_silent_fallback_on_load(tmp_path):
    bad = [
        (
            EncoderSpec(name="no-arch", backend="open_clip", source="NoSuchArch-B-99", weights="openai"),
            "NoSuchArch",
        ),
        (
            EncoderSpec(
                name="no-ckpt",
                backend="timm",
                source="vit_small_patch14_dinov2",
                weights=str(tmp_path / "x.pt"),
            ),
            "no-ckpt",
        ),
        (EncoderSpec(name="no-script", backend="sscd", source=str(tmp_path / "sscd.pt")), "no-script"),
        (EncoderSpec(name="no-hf", backend="hf-clip", source=str(tmp_path / "missing")), "no-hf"),
    ]
    for spec, needle in bad:
        with pytest.raises(EncoderLoadError, match=needle):
            load_encoder(spec, tmp_registry(tmp_path, *[s for s, _ in bad]))
    unbuilt = EncoderSpec(name="tiny-unbuilt", backend="sscd", standin={"builder": "tiny-sscd"})
    empty = Registry(
        models={}, encoders={"tiny-unbuilt": unbuilt}, root=tmp_path, standins_dir=tmp_path / "none"
    )
    with pytest.raises(EncoderLoadError, match="has not been built"):
        load_encoder("tiny-unbuilt", empty)
    with pytest.raises(ValueError, match="CUDA autocast"):
        load_encoder(unbuilt, empty, precision="fp16")


def test_encoder_failure_names_encoder_and_images(reg, images, tmp_path, monkeypatch):
    enc = load_encoder("tiny-dino", reg)

    def broken(x):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(enc.model, "forward_features", broken)
    p = tmp_path / "a.png"
    images[0].save(p)
    with pytest.raises(EncoderError, match=r"tiny-dino.*a\.png.*kaboom"):
        embed_images(enc, [p])
    monkeypatch.setattr(enc.model, "forward_features", lambda x: torch.full((x.shape[0], 3, 4), float("nan")))
    with pytest.raises(EncoderError, match="non-finite"):
        embed_images(enc, [p])


def test_fingerprint_follows_the_weights(reg, tmp_path):
    a = load_encoder("tiny-sscd", reg)
    assert load_encoder("tiny-sscd", reg).fingerprint == a.fingerprint  # stable
    assert describe_encoder("tiny-sscd", reg) == a.info  # known without loading the model
    from iconicity_utils.demo.tiny_encoders import TinySSCD as _TinySSCD

    torch.manual_seed(123)
    other = tmp_path / "other.pt"
    torch.jit.script(_TinySSCD.build(512).eval()).save(str(other))
    spec = EncoderSpec(name="sscd-other", backend="sscd", source=str(other), image_size=64)
    b = load_encoder(spec, tmp_registry(tmp_path, spec))
    assert b.fingerprint != a.fingerprint
