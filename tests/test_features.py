"""The feature engine: DataLoader workers change nothing, feature specs validate and name their
cache folders, and stores keep what they flushed."""

from __future__ import annotations

import numpy as np
import pytest
from scoring_fixtures import photo

from iconicity_utils.registry import Registry
from iconicity_utils.registry.encoders import load_encoder
from iconicity_utils.score.features import FeatureSpec, content_hash, extract
from iconicity_utils.score.store import FeatureStore


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
    shard = next((tmp_path / "s").glob("part-*"))
    assert sorted(f.name for f in shard.iterdir()) == ["keys.npy", "values.npy"]  # plain .npy files
    (shard / "values.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"part-[0-9a-f]{32} is unreadable"):
        FeatureStore(tmp_path / "s")


def _values(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_store_reads_values_from_disk_and_sees_other_writers(tmp_path, monkeypatch):
    import iconicity_utils.score.store as store_module

    a, b = FeatureStore(tmp_path / "s", tag="p0"), FeatureStore(tmp_path / "s", tag="p1")
    va, vb = _values(5, seed=1), _values(3, seed=2)
    for i, v in enumerate(va):
        a.put(f"a{i}", v)
    a.flush()
    for i, v in enumerate(vb):
        b.put(f"b{i}", v)
    b.flush()
    assert not a._buffer and not hasattr(a, "_data")  # nothing held in memory once flushed
    assert "b0" not in a and a.refresh() == 1 and "b0" in a  # another writer's shard, once refreshed
    np.testing.assert_array_equal(
        a.get_many(["b2", "a4", "a0", "b0"]), np.stack([vb[2], va[4], va[0], vb[0]])
    )
    assert a.missing(["a1", "zz", "b1", "yy"]) == ["zz", "yy"] and len(a) == 8
    assert sorted(p.name.split("-")[1] for p in a.shards) == ["p0", "p1"]  # each writer its own shard
    with pytest.raises(KeyError, match="zz"):
        a.get_many(["a1", "zz"])
    # the pre-existing format (keys as a unicode array) is still read
    np.savez(tmp_path / "s" / "part-old.npz", keys=np.array(["old"]), values=_values(1, seed=3))
    np.testing.assert_array_equal(FeatureStore(tmp_path / "s").get("old"), _values(1, seed=3)[0])
    assert not list((tmp_path / "s").glob("*.npz")) and (tmp_path / "s" / "part-old" / "values.npy").is_file()
    # merging: only the small shards a writer wrote itself, while others may still write
    monkeypatch.setattr(store_module, "SHARD_TARGET_BYTES", 1 << 20)
    c = FeatureStore(tmp_path / "m", max_shards=3, tag="p0")
    other = FeatureStore(tmp_path / "m", tag="p1")
    other.put("x", va[0])
    other.flush()
    for i, v in enumerate(_values(10, seed=4)):
        c.put(f"k{i}", v)
        c.flush()
    assert len(c.shards) < 10 and "x" not in c  # own shards merged on the way; x not yet indexed
    assert (tmp_path / "m" / other.shards[0].name).exists()  # the other writer's shard was not touched
    c.refresh()
    assert c.compact(force=True) >= 2 and len(c.shards) == 1  # everyone's, once writers are done
    np.testing.assert_array_equal(c.get_many([f"k{i}" for i in range(10)] + ["x"])[:10], _values(10, seed=4))
    np.testing.assert_array_equal(FeatureStore(tmp_path / "m").get("x"), va[0])


def test_float16_storage_halves_the_values_and_reads_back_float32(tmp_path):
    v = _values(64, d=256, seed=5)
    sizes = {}
    for dtype in ("float32", "float16"):
        store = FeatureStore(tmp_path / dtype, dtype=dtype)
        for i, row in enumerate(v):
            store.put(f"{i:064x}", row)
        store.flush()
        back = store.get_many([f"{i:064x}" for i in range(64)])
        assert back.dtype == np.float32
        sizes[dtype] = store.nbytes
    np.testing.assert_allclose(back, v, atol=1e-3)
    assert 0.45 < sizes["float16"] / sizes["float32"] < 0.55
    gray = FeatureStore(tmp_path / "gray", dtype="float16")  # integer features are stored as given
    gray.put("g", np.arange(4, dtype=np.uint8))
    gray.flush()
    assert gray.get("g").dtype == np.uint8
