"""Stage 01, image side: safe folders, pHash dedup, synthetic stills, Commons and user stills."""

from __future__ import annotations

import io
import json
import random
import socket
from pathlib import Path

import imagehash
import pytest
from collection_http import Reply, ScriptedServer
from PIL import Image, ImageFilter
from study_configs import write_study_config

from iconicity_utils.collect import collection as col
from iconicity_utils.collect import reference_images as ri
from iconicity_utils.collect.labels import SLUG_MAX, SLUG_RE, slugify
from iconicity_utils.core.constants import KINDS, PHASH_MAX_DISTANCE, STANDIN_LABEL
from iconicity_utils.core.images import dedup_phash
from iconicity_utils.core.io import read_table
from iconicity_utils.demo import synthetic_references

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "data" / "snapshot" / "wikidata_demo.ttl"


def quiet(_msg: str) -> None:
    pass


# ---- folders: no slug can leave the data folder ------------------------------------------------------


def test_no_slug_can_escape_the_data_folder(make_config):
    """Fuzz: random hostile labels always give one safe path component inside the data folder."""
    cfg = make_config()
    rng = random.Random(0)
    alphabet = list("abcXYZ019 ./\\_-:*?\"'<>|{}\n\t\x00~$") + [
        "é",
        "ß",
        "½",
        "七",
        "🎬",
        "\u202e",
        "\u200b",
        "..",
    ]
    data = cfg.data_dir.resolve()
    for _ in range(3000):
        label = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        qid = f"Q{rng.randint(1, 10**9)}"
        slug = slugify(label, qid)
        assert SLUG_RE.fullmatch(slug) and len(slug) <= SLUG_MAX + len(qid) + 1, (label, slug)
        for kind in KINDS:
            folder = ri.reference_dir_checked(cfg, kind, slug).resolve()
            assert folder.parent.parent.parent == data and folder.name == slug


@pytest.mark.parametrize("bad", ["..", ".", "", "../x", "a/b", "A", "_x", "x\x00", "/etc"])
def test_reference_dir_checked_refuses_unsafe_slugs(make_config, bad):
    with pytest.raises(ValueError, match="unsafe slug"):
        ri.reference_dir_checked(make_config(), "static", bad)


def test_reference_dir_checked_refuses_unknown_kinds(make_config):
    with pytest.raises(ValueError, match="unknown reference kind"):
        ri.reference_dir_checked(make_config(), "../static", "ok")


# ---- pHash dedup on images with known distances -----------------------------------------------------


def _photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def test_dedup_keeps_the_first_in_file_name_order_against_any_kept_image(tmp_path):
    astronaut, coffee = _photo("astronaut"), _photo("coffee")
    astronaut.save(tmp_path / "a_0.png")
    coffee.save(tmp_path / "b_0.png")
    copy = astronaut.resize((300, 300)).convert("L").convert("RGB")
    copy.save(tmp_path / "c_0.jpg", quality=60)  # a near-duplicate of a_0, after an unrelated image
    expected = imagehash.phash(Image.open(tmp_path / "c_0.jpg").convert("RGB")) - imagehash.phash(astronaut)
    far = imagehash.phash(coffee) - imagehash.phash(astronaut)
    assert expected <= PHASH_MAX_DISTANCE < far  # the premise, computed with imagehash directly
    result = dedup_phash(
        sorted(tmp_path.iterdir(), reverse=True), threshold=PHASH_MAX_DISTANCE
    )  # input order is ignored
    assert [p.name for p in result.kept] == ["a_0.png", "b_0.png"]
    assert [(p.name, k.name, d) for p, k, d in result.removed] == [("c_0.jpg", "a_0.png", expected)]
    assert (result.n_before, result.n_kept, result.n_removed) == (3, 2, 1)


def test_dedup_threshold_is_inclusive(tmp_path):
    base = _photo("chelsea")
    base.save(tmp_path / "0.png")
    base.rotate(8).filter(ImageFilter.GaussianBlur(1)).save(tmp_path / "1.png")  # a moderate change
    d = imagehash.phash(Image.open(tmp_path / "1.png").convert("RGB")) - imagehash.phash(base)
    assert 0 < d <= 30
    at = dedup_phash([tmp_path / "0.png", tmp_path / "1.png"], threshold=d)
    below = dedup_phash([tmp_path / "0.png", tmp_path / "1.png"], threshold=d - 1)
    assert at.n_removed == 1 and at.removed[0][2] == d
    assert below.n_removed == 0 and below.n_kept == 2


def test_synthetic_stills_give_dedup_exactly_one_near_duplicate(make_config, tmp_path):
    cfg = make_config()
    row = {"slug": "the_godfather", "label_clean": "The Godfather", "qid": "Q47703"}
    paths = synthetic_references.write_synthetic_stills(
        cfg, row, tmp_path, min_distance=PHASH_MAX_DISTANCE + 4
    )
    result = dedup_phash(paths, threshold=PHASH_MAX_DISTANCE)
    assert [p.name for p in result.removed[0][:2]] == ["still_01_recompressed.jpg", "still_01.png"]
    assert result.n_kept == synthetic_references.SYNTHETIC_STILLS and result.n_removed == 1
    again = synthetic_references.write_synthetic_stills(
        cfg, row, tmp_path / "again", min_distance=PHASH_MAX_DISTANCE + 4
    )
    assert [p.read_bytes() for p in paths[:-1]] == [p.read_bytes() for p in again[:-1]]  # deterministic
    with Image.open(paths[0]) as im:
        assert "stand-in" in im.text["iconicity:standin"]


# ---- the demo's synthetic reference images, end to end ----------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One full demo collection into a temporary data root (shared by the tests below)."""
    root = tmp_path_factory.mktemp("stage01_images")
    cfg = write_study_config(root, "demo", collection={"snapshot": str(SNAPSHOT)})
    refs = col.collect_references(cfg, log=quiet)
    return cfg, refs


def test_demo_reference_images(demo_run):
    cfg, refs = demo_run
    images = read_table(ri.images_table_path(cfg))
    for row in refs.itertuples():
        folder = cfg.reference_dir(row.kind, row.slug)
        files = sorted(p.name for p in folder.iterdir())
        if row.kind == "static":
            assert files == ["reference.png"] and (row.n_before, row.n_kept, row.n_removed) == (1, 1, 0)
        else:
            assert files == ["still_00.png", "still_01.png", "still_02.png", "still_03.png"]
            assert (row.n_before, row.n_kept, row.n_removed) == (5, 4, 1)
        assert cfg.absolute(row.reference_dir) == folder
    dups = images[images["status"] == "duplicate"]
    assert len(dups) == 20 and (dups["duplicate_of"] == "still_01.png").all()
    assert (dups["hamming"] <= cfg.collection.phash_threshold).all()
    kept = images[images["status"] == "kept"]
    assert len(kept) == 100 and kept["standin"].all() and (images["note"] == STANDIN_LABEL).all()
    assert kept["licence"].str.contains("synthetic").all()
    for path in kept["path"].head(3):
        with Image.open(cfg.absolute(path)) as im:
            assert "not the real work" in im.text["iconicity:standin"]


# ---- real mode: Commons API and user-provided stills, against a local server ------------------------


def _png_bytes(seed: int) -> bytes:
    image = synthetic_references.synthetic_image(seed, seed + 1, (64, 80))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _imageinfo(server: ScriptedServer, thumb: str) -> bytes:
    page = {
        "title": "File:X.jpg",
        "imageinfo": [
            {
                "url": server.url("/orig.jpg"),
                "thumburl": server.url(thumb),
                "descriptionurl": "https://commons.wikimedia.org/wiki/File:X.jpg",
                "extmetadata": {
                    "LicenseShortName": {"value": "Public domain"},
                    "LicenseUrl": {"value": "https://creativecommons.org/publicdomain/mark/1.0/"},
                    "Artist": {"value": '<a href="//x">Leonardo da Vinci</a> &amp; workshop'},
                },
            }
        ],
    }
    return json.dumps({"batchcomplete": True, "query": {"pages": [page]}}).encode()


def test_commons_mode_downloads_records_and_resumes(make_config):
    script = {"/w/api.php": [], "/thumb/ok.png": [Reply(200, _png_bytes(1), content_type="image/png")]}
    with ScriptedServer(script) as server:
        server.script["/w/api.php"] = [
            Reply(429, b"", {"Retry-After": "0"}, "text/plain"),
            Reply(200, _imageinfo(server, "/thumb/ok.png"), content_type="application/json"),
        ]
        cfg = make_config(
            collection={
                "reference_images": "commons",
                "commons_api": server.url("/w/api.php"),
                "top_k_static": 1,
                "top_k_dynamic": 1,
                "http": {"backoff_base_s": 0.0},
            }
        )
        refs = col.collect_references(cfg, log=quiet)
        calls = (server.count("/w/api.php"), server.count("/thumb/ok.png"))
        col.collect_references(cfg, use_saved_responses=True, log=quiet)  # resume: nothing re-fetched
        # a 429 then Mona Lisa's file, then the file of its matched control (the demo has controls
        # on): the controls' images go through the same Commons code
        assert (server.count("/w/api.php"), server.count("/thumb/ok.png")) == calls == (3, 2)
    api_call = next(s for s in server.seen if s.path == "/w/api.php")
    assert api_call.query["iiprop"] == ["url|extmetadata"] and api_call.query["iiurlwidth"] == ["256"]
    assert api_call.query["titles"] == ["File:Mona Lisa, by Leonardo da Vinci, from C2RMF retouched.jpg"]
    assert api_call.headers["User-Agent"] == cfg.collection.http.user_agent
    images = read_table(ri.images_table_path(cfg))
    mona = images[images["slug"] == "mona_lisa"].iloc[0]
    assert mona["status"] == "kept" and mona["file"].startswith("p18_") and not mona["standin"]
    assert sorted(p.name for p in cfg.reference_dir("static", "mona_lisa").iterdir()) == [mona["file"]]
    assert mona["licence"] == "Public domain" and mona["author"] == "Leonardo da Vinci & workshop"
    assert mona["source_url"] == "https://commons.wikimedia.org/wiki/File:X.jpg"
    assert mona["phash"] == str(imagehash.phash(Image.open(io.BytesIO(_png_bytes(1))).convert("RGB")))
    control = read_table(col.control_images_table_path(cfg)).iloc[0]
    assert control["slug"] == "portrait_of_a_lady_with_a_lace_collar" and control["status"] == "kept"
    assert control["path"].endswith(f"static/portrait_of_a_lady_with_a_lace_collar/{control['file']}")
    # no stills provided for the dynamic reference: reported, not fatal
    godfather = refs.set_index("qid").loc["Q47703"]
    assert godfather["n_kept"] == 0 and refs.attrs["report"]["missing_stills"] == ["the_godfather"]


def test_commons_failures_are_reported_not_fatal(make_config):
    script = {
        "/w/api.php": [],
        "/thumb/bad.png": [Reply(200, b"\x89PNG\r\n\x1a\n truncated", content_type="image/png")],
    }
    with ScriptedServer(script) as server:
        server.script["/w/api.php"] = [
            Reply(200, json.dumps({"query": {"pages": [{"title": "File:X", "missing": True}]}}).encode()),
            Reply(200, _imageinfo(server, "/thumb/bad.png"), content_type="application/json"),
        ]
        cfg = make_config(
            collection={
                "reference_images": "commons",
                "commons_api": server.url("/w/api.php"),
                "top_k_static": 2,
                "top_k_dynamic": 1,
            }
        )
        refs = col.collect_references(cfg, log=quiet)
    images = read_table(ri.images_table_path(cfg)).set_index("slug")
    assert images.loc["mona_lisa", "status"] == "failed" and "has no file" in images.loc["mona_lisa", "error"]
    bad = images.loc["the_starry_night"]
    assert bad["status"] == "unreadable" and "cannot read image" in bad["error"]
    assert not list(cfg.reference_dir("static", "the_starry_night").iterdir())  # nothing unusable left there
    assert Path(cfg.absolute(bad["source_path"])).is_file()  # the bad download is kept aside, for inspection
    assert refs.set_index("slug").loc["the_starry_night", "n_kept"] == 0


def test_user_stills_are_deduplicated_and_a_corrupt_one_is_skipped(make_config):
    cfg = make_config(collection={"reference_images": "commons", "top_k_static": 1, "top_k_dynamic": 1})
    stills = cfg.path("data", "stills", "the_godfather")
    stills.mkdir(parents=True)
    astronaut = _photo("astronaut")
    astronaut.save(stills / "01.png")
    astronaut.resize((256, 256)).save(stills / "02.jpg", quality=50)
    _photo("coffee").save(stills / "03.png")
    (stills / "04.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server_less = cfg.with_overrides(
        collection={"commons_api": f"http://127.0.0.1:{port}/api.php", "http": {"max_retries": 0}}
    )
    refs = col.collect_references(server_less, log=quiet)
    row = refs.set_index("slug").loc["the_godfather"]
    assert (row["n_before"], row["n_kept"], row["n_removed"]) == (4, 2, 1)
    assert sorted(p.name for p in cfg.reference_dir("dynamic", "the_godfather").iterdir()) == [
        "01.png",
        "03.png",
    ]
    images = read_table(ri.images_table_path(cfg)).set_index("file")
    assert images.loc["02.jpg", "status"] == "duplicate" and images.loc["02.jpg", "duplicate_of"] == "01.png"
    assert (
        images.loc["04.jpg", "status"] == "unreadable"
        and str(stills / "04.jpg") in images.loc["04.jpg", "error"]
    )
    # the static reference could not be fetched (nothing listens there): reported, not fatal
    assert images.loc[images["kind"] == "static", "status"].tolist() == ["failed"]


# ---- figure ----------------------------------------------------------------------------------------


def test_reference_examples_figure_draws_from_the_tables(demo_run):
    import matplotlib

    matplotlib.use("agg")
    cfg, refs = demo_run
    images = read_table(ri.images_table_path(cfg))
    fig = ri.plot_reference_examples(cfg, refs, images, n_static=2, n_dynamic=1)
    assert sum(1 for ax in fig.axes if ax.images) == 2 + 5
