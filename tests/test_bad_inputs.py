"""Bad inputs never stop a long run: one folder holding every case is scored in one run, by the
folder scorer and by the study scorer, with the expected rows and skips.

Broken files (truncated, zero bytes, text named .png, 3x3 and 1x40 pixels, a decompression bomb,
float pixels) are skipped and recorded with their reason; valid but unusual files (CMYK, 16-bit,
palette, RGBA, animated GIF, 4000x3000) are scored, each exactly as its 8-bit RGB *twin* (the
reading docs/method.md §3.8 fixes: 16-bit scaled, alpha dropped, first frame); a reference whose
image is truncated is dropped, and its generated images are recorded as not scored.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scoring_fixtures as sf
from PIL import Image
from scoring_fixtures import photo

from iconicity_utils.core.images import INPUT_PROBLEMS, check_image_file, open_rgb
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.registry import Registry
from iconicity_utils.registry.encoders import load_encoder
from iconicity_utils.score import BadInputError, score, score_folders
from iconicity_utils.score.inputs import SKIPPED
from iconicity_utils.score.tables import PER_REFERENCE

#: file -> the reason it is skipped
BAD = {
    "b_truncated.png": "truncated",
    "c_zero.png": "empty",
    "d_text.png": "not_an_image",
    "e_3x3.png": "too_small",
    "f_1x40.png": "too_small",
    "g_bomb.png": "too_large",
    "h_float.tif": "unsupported_mode",
}
#: valid but unusual files, each scored as its twin (an 8-bit RGB PNG of what it shows)
VALID = ("i_cmyk.jpg", "j_gray16.png", "k_palette.png", "l_rgba.png", "m_anim.gif", "n_big.png")
COPY = "a_copy.png"


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` pixels (no pixel data): a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def write_cases(folder: Path, ref: Image.Image) -> dict[str, Path]:
    """Every case in ``folder``; returns file name -> its twin (for the valid unusual files)."""
    folder.mkdir(parents=True, exist_ok=True)
    ref.save(folder / COPY)
    good = photo("coffee", (64, 48))
    good.save(folder / "b_truncated.png")
    data = (folder / "b_truncated.png").read_bytes()
    (folder / "b_truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "c_zero.png").write_bytes(b"")
    (folder / "d_text.png").write_text("this is not an image\n")
    good.resize((3, 3)).save(folder / "e_3x3.png")
    good.resize((1, 40)).save(folder / "f_1x40.png")
    _png_header_only(folder / "g_bomb.png", 20000, 20000)
    Image.fromarray(np.zeros((8, 8), np.float32), "F").save(folder / "h_float.tif")
    twins = {}
    good.convert("CMYK").save(folder / "i_cmyk.jpg", quality=95)
    twins["i_cmyk.jpg"] = Image.open(folder / "i_cmyk.jpg").convert("RGB")
    wide = (np.asarray(good.convert("L"), dtype=np.uint16) * 257 + np.arange(64, dtype=np.uint16)).astype(
        np.uint16
    )
    Image.fromarray(wide).save(folder / "j_gray16.png")  # 16-bit: the 8-bit reading is the high byte
    twins["j_gray16.png"] = Image.fromarray((wide >> 8).astype(np.uint8), "L").convert("RGB")
    pal = ref.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal.save(folder / "k_palette.png")
    twins["k_palette.png"] = pal.convert("RGB")
    rgba = ref.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(ref.size))
    rgba.save(folder / "l_rgba.png")
    twins["l_rgba.png"] = rgba.convert("RGB")  # alpha dropped, as Pillow's convert and the encoders
    frames = [ref, photo("rocket", ref.size), photo("camera", ref.size)]
    frames[0].save(folder / "m_anim.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    with Image.open(folder / "m_anim.gif") as gif:
        twins["m_anim.gif"] = gif.convert("RGB")  # the first frame
    big = np.linspace(0, 255, 4000, dtype=np.float32)[None, :, None] * np.ones((3000, 1, 3), np.float32)
    big[:1500] = 255 - big[:1500]
    Image.fromarray(big.astype(np.uint8)).save(folder / "n_big.png", compress_level=1)
    twins["n_big.png"] = Image.open(folder / "n_big.png").convert("RGB")
    for name, twin in twins.items():
        twin.save(folder / f"twin_{Path(name).stem}.png")
    return {name: folder / f"twin_{Path(name).stem}.png" for name in twins}


@pytest.fixture(scope="module")
def cases(tmp_path_factory, standins):
    root = tmp_path_factory.mktemp("bad_inputs")
    ref = photo("astronaut", (64, 64))
    refdir, gendir = root / "ref", root / "gen"
    (refdir / "Starry_Night").mkdir(parents=True)
    ref.save(refdir / "Starry_Night" / "00.png")
    (refdir / "Persistence").mkdir(parents=True)  # its only (static: first) image is truncated
    photo("coffee", (64, 64)).save(refdir / "Persistence" / "00.png")
    data = (refdir / "Persistence" / "00.png").read_bytes()
    (refdir / "Persistence" / "00.png").write_bytes(data[:200])
    twins = write_cases(gendir / "model_a" / "starry_night", ref)
    (gendir / "model_a" / "persistence").mkdir(parents=True)
    for i in range(2):
        photo("coffee", (64, 64)).rotate(10 * i).save(gendir / "model_a" / "persistence" / f"{i}.png")
    prompts = root / "prompts.csv"
    pd.DataFrame({"label_clean": ["Starry Night", "Persistence"]}).to_csv(prompts, index=False)
    cfg = sf.study_config(root)
    reg = Registry.for_config(cfg)
    encoders = {n: load_encoder(n, reg) for n in ("tiny-clip", "tiny-dino", "tiny-sscd")}
    return cfg, refdir, gendir, prompts, twins, encoders


def test_the_check_names_every_case(cases):
    _, _, gendir, _, twins, _ = cases
    folder = gendir / "model_a" / "starry_night"
    for name, reason in BAD.items():
        check = check_image_file(folder / name, (4, 4))
        assert check.reason == reason and check.detail, (name, check)
    notes = {name: check_image_file(folder / name, (4, 4)).note for name in VALID}
    assert notes["j_gray16.png"] == "16-bit scaled to 8 bits" and "alpha dropped" in notes["l_rgba.png"]
    assert "first of 3 frames" in notes["m_anim.gif"] and notes["i_cmyk.jpg"] == "CMYK converted to RGB"
    assert check_image_file(folder / "nope.png").reason == "missing"
    assert set(BAD.values()) | {"missing"} == set(INPUT_PROBLEMS) - {"unreadable"}
    for name, twin in twins.items():  # the reading the twins were made from
        np.testing.assert_array_equal(np.asarray(open_rgb(folder / name)), np.asarray(open_rgb(twin)))


def _expect(per_image, skipped, gen_root: str) -> None:
    """The rows and skips every scorer must give for the case folder."""
    names = sorted(Path(p).name for p in per_image["path"])
    twins = [f"twin_{Path(n).stem}.png" for n in VALID]
    assert names == sorted([COPY, *VALID, *twins])  # every valid file scored, nothing else
    assert per_image["slug"].str.lower().eq("starry_night").all()
    by_name = per_image.assign(name=[Path(p).name for p in per_image["path"]]).set_index("name")
    for name in VALID:
        twin = by_name.loc[f"twin_{Path(name).stem}.png"]
        row = by_name.loc[name]
        assert row["cra_sim"] == twin["cra_sim"] and row["ssim"] == twin["ssim"], name
        np.testing.assert_array_equal(row["vr_cells"], twin["vr_cells"])
    assert by_name.loc[COPY, "cra_sim"] == pytest.approx(1.0, abs=1e-5)
    gen = skipped[skipped["role"] == "generated"]
    got = {Path(p).name: r for p, r in zip(gen["path"], gen["reason"], strict=True) if gen_root in str(p)}
    assert {k: v for k, v in got.items() if k in BAD} == BAD
    assert sorted(v for k, v in got.items() if k not in BAD) == ["reference_dropped"] * 2
    assert (gen.loc[gen["reason"].isin(BAD.values()), "action"] == "image skipped").all()
    ref = skipped[skipped["role"] == "reference"]
    assert (
        len(ref) == 1 and ref["reason"].item() == "truncated" and ref["action"].item() == "reference dropped"
    )
    assert ref["slug"].str.lower().item() == "persistence" and ref["path"].item().endswith("00.png")
    assert skipped["detail"].astype(bool).all() and len(skipped) == len(BAD) + 2 + 1


def test_the_folder_scorer_scores_every_good_file_and_records_every_bad_one(cases, tmp_path):
    cfg, refdir, gendir, prompts, _, encoders = cases
    out = tmp_path / "out"
    res = score_folders(refdir, gendir, prompts, kind="static", config=cfg, encoders=encoders, out_dir=out)
    _expect(res.per_image, res.skipped_inputs, str(gendir))
    written = read_table(out / SKIPPED)  # next to the scores
    pd.testing.assert_frame_equal(written.drop(columns="note"), res.skipped_inputs, check_dtype=False)
    pr = read_table(out / PER_REFERENCE)
    assert pr[["slug", "n_images", "n_skipped"]].values.tolist() == [["Starry_Night", 13, len(BAD)]]
    summary = res.summary()
    for name in BAD:
        assert name in summary  # every problem, with its path and reason
    assert "1 references dropped (Persistence)" in summary and "truncated" in summary
    assert res.input_notes["CMYK converted to RGB"] == 1 and res.input_notes["16-bit scaled to 8 bits"] == 1
    prov = written.attrs["provenance"]["input_check"]
    assert prov["generated_skipped"] == len(BAD) + 2 and prov["references_dropped"] == ["Persistence"]
    # the other modes: "stop" lists every problem at once; "strict" stops at the first
    stop = cfg.with_overrides(scoring={"on_bad_image": "stop"})
    with pytest.raises(BadInputError, match="10 inputs cannot be scored") as err:
        score_folders(refdir, gendir, prompts, kind="static", config=stop, encoders=encoders)
    assert len(err.value.problems) == len(BAD) + 3
    strict = cfg.with_overrides(scoring={"on_bad_image": "strict"})
    with pytest.raises(BadInputError, match=r"b_truncated\.png: truncated") as err:
        score_folders(refdir, gendir, prompts, kind="static", config=strict, encoders=encoders)
    assert "c_zero" not in str(err.value)
    ref_strict = cfg.with_overrides(scoring={"on_bad_reference": "strict"})
    with pytest.raises(BadInputError, match=r"bad reference image .*Persistence.*truncated"):
        score_folders(refdir, gendir, prompts, kind="static", config=ref_strict, encoders=encoders)


def test_the_study_scorer_gives_the_same_rows_and_skips(cases, tmp_path):
    base, refdir, gendir, _, _, encoders = cases
    cfg = sf.study_config(tmp_path)
    rows = []
    for slug, folder in (("starry_night", "Starry_Night"), ("persistence", "Persistence")):
        dest = cfg.reference_dir("static", slug)
        shutil.copytree(refdir / folder, dest)
        files = sorted((gendir / "model_a" / slug).iterdir())
        for i, f in enumerate(files):
            target = cfg.generated_path("tiny-sd-a", "title", slug, i).with_name(f.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)
            rows.append({"model": "tiny-sd-a", "variant": "title", "slug": slug, "index": i, "seed": i,
                         "prompt": slug, "path": cfg.relative(target)})  # fmt: skip
    write_table(pd.DataFrame(rows), cfg.generations_manifest, cfg)
    refs = pd.DataFrame({"slug": ["starry_night", "persistence"], "kind": ["static", "static"]})
    write_table(refs, cfg.references_table, cfg)
    res = score(cfg, encoders=encoders)
    skipped = read_table(cfg.results_dir / SKIPPED)
    _expect(res.per_image, skipped, "generated")
    pr = res.per_reference
    assert pr[["slug", "n_images", "n_skipped"]].values.tolist() == [["starry_night", 13, len(BAD)]]
    gen = skipped[skipped.role == "generated"]  # each skip names its manifest row
    index = pd.DataFrame(rows).set_index("path")["index"]
    assert gen["index"].astype(int).tolist() == index.loc[gen["path"]].tolist()


def test_the_policies_are_named_modes(cases):
    from iconicity_utils.config import ConfigError

    cfg = cases[0]
    assert (cfg.scoring.on_bad_image, cfg.scoring.on_bad_reference) == ("skip", "drop")
    for key, value in (("on_bad_image", "ignore"), ("on_bad_reference", "skip"), ("cache_dtype", "bfloat16")):
        with pytest.raises(ConfigError, match=rf"scoring\.{key}"):
            cfg.with_overrides(scoring={key: value})
    with pytest.raises(ConfigError, match=r"scoring\.flush_every"):
        cfg.with_overrides(scoring={"flush_every": 0})
