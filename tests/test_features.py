"""The feature engine: DataLoader workers change nothing, feature specs validate and name their
cache folders, and stores keep what they flushed."""

from __future__ import annotations

import numpy as np
import pytest
from scoring_fixtures import photo

from iconicity_utils.encoders import load_encoder
from iconicity_utils.features import FeatureSpec, FeatureStore, content_hash, extract
from iconicity_utils.registry import Registry


@pytest.fixture(scope="module")
def encoders(standins):
    reg = Registry.load()
    return {n: load_encoder(n, reg) for n in ("tiny-dino", "tiny-clip", "tiny-sscd")}


def test_dataloader_workers_give_identical_features(encoders, tmp_path):
    paths = []
    for i, (name, size) in enumerate(
        [("astronaut", (90, 62)), ("coffee", (64, 64)), ("chelsea", (50, 77)), ("rocket", (64, 40))]
    ):
        p = tmp_path / f"{i}.png"
        photo(name, size).save(p)
        paths.append(p)
    specs = [
        FeatureSpec("cells-crop", "tiny-dino"),
        FeatureSpec("cells-tokens", "tiny-dino"),
        FeatureSpec("global", "tiny-clip", pool="mean_all"),
        FeatureSpec("phash"),
        FeatureSpec("gray", size=32),
    ]
    results = []
    for workers in (0, 2):
        stores = {s: FeatureStore(tmp_path / f"w{workers}" / s.key.replace("/", "_")) for s in specs}
        counts = extract(paths, specs, encoders, stores, batch_size=20, num_workers=workers)
        assert counts["images"] == 4
        results.append(stores)
    for s in specs:
        for p in paths:
            np.testing.assert_array_equal(
                results[0][s].get(content_hash(p)), results[1][s].get(content_hash(p))
            )
    assert results[0][specs[0]].get(content_hash(paths[0])).shape == (16, 32)


def test_feature_specs_validate_and_name_their_cache_folders():
    assert FeatureSpec("cells-crop", "tiny-dino").key == "tiny-dino/cells-crop-4x4-mean_all"
    assert FeatureSpec("cells-tokens", "tiny-dino", grid=(2, 3)).key == "tiny-dino/cells-tokens-2x3"
    assert FeatureSpec("global", "tiny-clip", pool="native").key == "tiny-clip/global-native"
    assert FeatureSpec("phash").key == "_image/phash64" and not FeatureSpec("phash").batched
    assert FeatureSpec("gray", size=32).key == "_image/gray32"
    with pytest.raises(ValueError, match="unknown feature 'patches'"):
        FeatureSpec("patches", "tiny-dino")
    with pytest.raises(ValueError, match="needs an encoder"):
        FeatureSpec("global")


def test_store_keeps_flushed_shards_and_names_a_damaged_one(tmp_path):
    store = FeatureStore(tmp_path / "s")
    store.put("a", np.arange(3, dtype=np.float32))
    store.flush()
    store.put("b", np.ones(3, dtype=np.float32))  # buffered, never flushed: lost on a crash
    again = FeatureStore(tmp_path / "s")
    assert "a" in again and "b" not in again
    np.testing.assert_array_equal(again.get("a"), np.arange(3))
    next((tmp_path / "s").glob("part-*.npz")).write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"part-.*\.npz is unreadable"):
        FeatureStore(tmp_path / "s")
