"""Preflight: every check on this machine, the failures, and the "could not check" paths.

Network checks talk only to servers on 127.0.0.1 (a fake hub API, a local oxigraph SPARQL server)
or to closed ports; nothing contacts a real host.  The GPU is simulated where a test needs one.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from fake_hub import FakeHub, Repo, commit

from iconicity_utils.config import load_config
from iconicity_utils.demo.standins import build_captioner_standins
from iconicity_utils.pipeline import preflight, preflight_system
from iconicity_utils.pipeline.preflight import FAIL, OK, UNCHECKED, WARN, estimate_disk, run_preflight
from iconicity_utils.registry import Registry, lock_path, write_lock

REPO_ROOT = Path(__file__).resolve().parents[1]
GiB = 1024**3


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _rows(report, check: str) -> dict[str, tuple[str, str]]:
    return {r.subject.split(" ")[0]: (r.status, r.detail) for r in report.of(check)}


def _index(cls: str = "StableDiffusionPipeline") -> bytes:
    return json.dumps(
        {
            "_class_name": cls,
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }
    ).encode()


def _hub_study(tmp_path: Path, models: dict, encoders: dict, study_models: list[str], **sections):
    """A project root with its own registry (hub ids), and a study config using it."""
    root = tmp_path / "project"
    (root / "configs").mkdir(parents=True, exist_ok=True)
    real_enc = yaml.safe_load((REPO_ROOT / "configs" / "encoders.yaml").read_text())["encoders"]
    base = {"pipeline": "StableDiffusionPipeline", "steps": 2, "guidance": 5.0, "height": 64, "width": 64}
    (root / "configs" / "models.yaml").write_text(
        yaml.safe_dump({"models": {name: {**base, **entry} for name, entry in models.items()}})
    )
    (root / "configs" / "encoders.yaml").write_text(
        yaml.safe_dump({"encoders": {**encoders, "tiny-sscd": real_enc["tiny-sscd"]}})
    )
    study = {
        "name": "preflight",
        "models": study_models,
        "encoders": {
            "recognition": next(iter(encoders), "tiny-sscd"),
            "realization": "tiny-sscd",
            "copy_detection": None,
        },
        "generation": {"device": "cpu"},
        "collection": {"endpoint": "local", "snapshot": str(REPO_ROOT / "data/snapshot/wikidata_demo.ttl")},
        "paths": {"standins": str(REPO_ROOT / ".cache" / "standins")},
    }
    for key, value in sections.items():
        study[key] = {**study.get(key, {}), **value}
    path = root / "configs" / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return load_config(path)


@pytest.fixture
def hub_cache_dir(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "hub"


# --------------------------------------------------------------------------------------------
# Whole reports
# --------------------------------------------------------------------------------------------


def test_demo_study_is_ready(make_config, standins, capsys):
    cfg = make_config("pf")
    report = run_preflight(cfg)
    statuses = {(r.check, r.status) for r in report.rows}
    assert {s for _, s in statuses} == {OK}, report.table()
    assert [r.check for r in report.rows].count("config") == 5  # two models, three encoders
    assert report.exit_code == 0
    assert "READY: every check passed" in report.table()
    sparql = report.of("sparql")[0]
    assert sparql.subject.startswith("local oxigraph") and "answered" in sparql.detail


def test_paper_study_offline_says_what_it_could_not_check(monkeypatch, tmp_path):
    import torch
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config(REPO_ROOT / "configs" / "paper.yaml")
    report = run_preflight(cfg, offline=True)
    access = _rows(report, "hub access")
    assert set(access) == {
        "sd15",
        "sd21",
        "sdxl",
        "sd35-medium",
        "flux1-schnell",
        "clip-vit-b16-openai",
        "dinov3-vitb16",
    }
    assert all(status == UNCHECKED and "offline" in detail for status, detail in access.values())
    assert all(s == UNCHECKED for s, _ in _rows(report, "config").values() if s != FAIL)
    assert report.of("sparql")[0].status == UNCHECKED and "offline" in report.of("sparql")[0].detail
    stills = report.of("stills")[0]
    assert stills.status == UNCHECKED and "run stage 01" in stills.detail
    device = report.of("device")[0]
    assert device.status == FAIL and "no CUDA device" in device.detail
    assert report.of("lock")[0].status == WARN  # no paper.lock.yaml in the repository
    disk = report.of("disk")
    assert disk and "38350 images of 767 references" in disk[0].detail
    assert report.exit_code == 1
    table = report.table()
    assert "OFFLINE" in table and "NOT CHECKED  hub access sd15" in table and "NOT READY" in table


def test_nothing_failed_but_unchecked_exits_3(monkeypatch, tmp_path, make_config, standins):
    cfg = make_config("pf3", collection={"endpoint": "https://query.example.org/sparql"})
    report = run_preflight(cfg, offline=True)
    assert report.of("sparql")[0].status == UNCHECKED
    assert {r.status for r in report.rows} == {OK, UNCHECKED}
    assert report.exit_code == 3 and "NOT VERIFIED" in report.table()


def test_command_line_prints_one_table_and_writes_json(make_config, standins, capsys, tmp_path):
    cfg = make_config("pfcli", collection={"endpoint": _closed_port() + "/sparql"})
    out = tmp_path / "report.json"
    code = preflight.main(["--config", str(cfg.source), "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert text.startswith(f"Preflight of {cfg.relative(cfg.source)}") and "CHECK" in text.splitlines()[1]
    assert "FAILED  sparql" in text and "did not answer" in text
    data = json.loads(out.read_text())
    assert data["exit_code"] == 1 and any(
        r["check"] == "sparql" and r["status"] == FAIL for r in data["rows"]
    )
    assert preflight.main(["--config", str(tmp_path / "nope.yaml")]) == 2


# --------------------------------------------------------------------------------------------
# Hub access and configs, against a hub on 127.0.0.1
# --------------------------------------------------------------------------------------------


def test_hub_access_and_configs(tmp_path, hub_cache_dir, standins):
    weights = {
        "unet/diffusion_pytorch_model.safetensors": b"w",
        "vae/diffusion_pytorch_model.safetensors": b"w",
    }
    fp16 = {k.replace(".safetensors", ".fp16.safetensors"): v for k, v in weights.items()}
    repos = {
        "t/open": Repo(commit("open"), {"model_index.json": _index(), **weights}),
        "t/gated-ok": Repo(
            commit("gok"), {"model_index.json": _index(), **weights}, gated="manual", access=True
        ),
        "t/gated-no": Repo(
            commit("gno"), {"model_index.json": _index(), **weights}, gated="manual", access=False
        ),
        "t/wrong": Repo(commit("wrong"), {"model_index.json": _index("FluxPipeline"), **weights}),
        "t/novariant": Repo(commit("nov"), {"model_index.json": _index(), **weights}),
        "t/variant": Repo(commit("var"), {"model_index.json": _index(), **fp16}),
        "timm/enc.tag": Repo(commit("enc"), {"config.json": b"{}", "model.safetensors": b"e"}),
    }
    models = {
        "open": {"source": "t/open"},
        "gated-ok": {"source": "t/gated-ok"},
        "gated-no": {"source": "t/gated-no"},
        "gone": {"source": "t/gone"},
        "wrong": {"source": "t/wrong"},
        "novariant": {"source": "t/novariant", "variant": "fp16"},
        "variant": {"source": "t/variant", "variant": "fp16"},
    }
    encoders = {"enc": {"backend": "hf-clip", "source": "timm/enc.tag"}}
    cfg = _hub_study(tmp_path, models, encoders, list(models))
    with FakeHub(repos) as hub:
        report = run_preflight(cfg, endpoint=hub.endpoint, checks=("models",))
    access, config = _rows(report, "hub access"), _rows(report, "config")
    assert access["open"][0] == OK and "not gated" in access["open"][1]
    assert access["gated-ok"][0] == OK and "access granted" in access["gated-ok"][1]
    assert access["gated-no"][0] == FAIL and "accept the conditions" in access["gated-no"][1]
    assert access["gone"][0] == FAIL and "not found on the hub" in access["gone"][1]
    assert config["open"][0] == OK and "no weights downloaded" in config["open"][1]
    assert config["wrong"][0] == FAIL and "names FluxPipeline" in config["wrong"][1]
    assert config["novariant"][0] == FAIL and "no 'fp16' weight files" in config["novariant"][1]
    assert config["variant"][0] == OK
    assert config["gated-no"][0] == UNCHECKED
    assert config["enc"][0] == OK and "model.safetensors" in config["enc"][1]
    assert config["tiny-sscd"][0] == OK  # a local stand-in, checked on disk
    # only metadata travelled: the API and the model_index.json files, never a weight file
    fetched = [path for method, path in hub.requests if "/resolve/" in path]
    assert fetched and all(path.endswith("model_index.json") for path in fetched)
    assert report.exit_code == 1


def test_unreachable_hub_is_not_checked_and_cached_configs_still_are(tmp_path, hub_cache_dir, standins):
    from fake_hub import hub_cache

    cfg = _hub_study(
        tmp_path,
        {"cached": {"source": "t/cached"}, "uncached": {"source": "t/uncached"}},
        {},
        ["cached", "uncached"],
    )
    hub_cache(hub_cache_dir, "t/cached", commit("c"), {"model_index.json": _index()})
    report = run_preflight(cfg, endpoint=_closed_port(), checks=("models",))
    access, config = _rows(report, "hub access"), _rows(report, "config")
    assert access["uncached"][0] == UNCHECKED and "hub unreachable" in access["uncached"][1]
    assert access["cached"][0] == UNCHECKED and "hub unreachable" in access["cached"][1]
    assert config["cached"][0] == OK  # resolved and read from the cache
    assert config["uncached"][0] == UNCHECKED
    assert report.exit_code == 3


# --------------------------------------------------------------------------------------------
# Device, disk, stills, SPARQL, lock
# --------------------------------------------------------------------------------------------


def _fake_gpu(monkeypatch, free_gib: float, total_gib: float = 80.0):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(name="Fake GPU"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (int(free_gib * GiB), int(total_gib * GiB)))


@pytest.mark.parametrize(("free_gib", "status"), [(8.0, FAIL), (40.0, OK)])
def test_gpu_memory_against_the_largest_model(
    tmp_path, hub_cache_dir, monkeypatch, standins, free_gib, status
):
    big = {"model_index.json": _index(), "unet/diffusion_pytorch_model.safetensors": b"w"}
    repo = Repo(commit("big"), big, sizes={"unet/diffusion_pytorch_model.safetensors": 20 * GiB})
    cfg = _hub_study(tmp_path, {"big": {"source": "t/big"}}, {}, ["big"], generation={"device": "cuda"})
    _fake_gpu(monkeypatch, free_gib)
    with FakeHub({"t/big": repo}) as hub:
        report = run_preflight(cfg, endpoint=hub.endpoint, checks=("models", "device"))
    gpu = _rows(report, "device")["cuda"]
    assert gpu[0] == status and "Fake GPU" in gpu[1] and f"{free_gib:.1f} of 80.0 GiB free" in gpu[1]
    assert "big" in gpu[1] and "≈ 25.0 GiB" in gpu[1]  # 20 GiB of weights x 1.25


def test_device_checks_without_model_sizes_and_without_cuda(monkeypatch, make_config, standins):
    import torch

    cfg = make_config("pfdev", generation={"device": "cuda"})
    _fake_gpu(monkeypatch, 4.0)
    report = run_preflight(cfg, checks=("device",))  # no model check: sizes unknown
    assert (
        _rows(report, "device")["cuda"][0] == WARN and "sizes unknown" in _rows(report, "device")["cuda"][1]
    )
    cpu = _rows(report, "device")["cpu"]
    assert cpu[0] == OK and "GiB RAM" in cpu[1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = run_preflight(cfg, checks=("device",))
    assert _rows(report, "device")["cuda"][0] == FAIL


def test_disk_estimate_and_check(monkeypatch, make_config, repo_root):
    paper = load_config(repo_root / "configs" / "paper.yaml")
    est = estimate_disk(paper, Registry.for_config(paper))
    assert (est["references"], est["images"]) == (767, 767 * 5 * 10)
    assert est["generated_png"] > 40 * GiB  # 1024 px images dominate
    # stage 08's edits are counted: 11 photographs and the first 100 static references, each edited
    from iconicity_utils.validate.dataset import edit_plan

    sources = len(paper.validation.skimage_sources) + min(paper.validation.max_references, 380)
    assert est["validation_images"] == len(edit_plan(paper, [f"s{i}" for i in range(sources)])) > 1000
    assert est["validation_png"] == int(est["validation_images"] * paper.validation.image_size**2 * 1.5)
    cfg = make_config("pfdisk")
    usage = SimpleNamespace(total=10 * GiB, used=0, free=1024)
    monkeypatch.setattr(preflight_system.shutil, "disk_usage", lambda p: usage)
    report = run_preflight(cfg, checks=("disk",))
    assert report.of("disk")[0].status == FAIL and "needs ≈" in report.of("disk")[0].detail
    usage.free = 100 * GiB
    assert run_preflight(cfg, checks=("disk",)).of("disk")[0].status == OK


def test_stills_for_every_dynamic_reference(make_config):
    from iconicity_utils.core.io import write_table

    cfg = make_config("pfstills", collection={"reference_images": "commons"})
    report = run_preflight(cfg, checks=("stills",))
    assert report.of("stills")[0].status == UNCHECKED  # no references table yet
    refs = pd.DataFrame(
        {"slug": ["casablanca", "psycho", "mona_lisa"], "kind": ["dynamic", "dynamic", "static"]}
    )
    write_table(refs, cfg.references_table, cfg)
    folder = cfg.path("data", "stills", "casablanca")
    folder.mkdir(parents=True)
    (folder / "01.png").write_bytes(b"\x89PNG")
    row = run_preflight(cfg, checks=("stills",)).of("stills")[0]
    assert row.status == FAIL and "1 of 2 dynamic references have no stills: psycho" in row.detail
    (cfg.path("data", "stills", "psycho")).mkdir()
    (cfg.path("data", "stills", "psycho", "a.jpg")).write_bytes(b"x")
    assert run_preflight(cfg, checks=("stills",)).of("stills")[0].status == OK


def test_sparql_endpoint_answering_or_not(make_config, repo_root):
    from iconicity_utils.demo.oxigraph import LocalOxigraph

    with LocalOxigraph(repo_root / "data" / "snapshot" / "wikidata_demo.ttl") as server:
        cfg = make_config("pfsparql", collection={"endpoint": server.endpoint})
        row = run_preflight(cfg, checks=("sparql",)).of("sparql")[0]
        assert (row.subject, row.status) == (server.endpoint, OK) and "answered" in row.detail
        assert run_preflight(cfg, offline=True, checks=("sparql",)).of("sparql")[0].status == UNCHECKED
    closed = make_config("pfsparql2", collection={"endpoint": _closed_port() + "/sparql"})
    row = run_preflight(closed, checks=("sparql",)).of("sparql")[0]
    assert row.status == FAIL and "no HTTP answer" in row.detail
    saved = make_config("pfsparql3", collection={"endpoint": _closed_port(), "use_saved_responses": True})
    assert run_preflight(saved, checks=("sparql",)).of("sparql")[0].status == OK


def test_lock_row(make_config, standins):
    cfg = make_config("pflock")
    assert run_preflight(cfg, checks=("lock",)).of("lock")[0].status == OK  # stand-ins only: nothing to pin
    write_lock(cfg)
    row = run_preflight(cfg, checks=("lock",)).of("lock")[0]
    assert row.status == OK and "locked revisions" in row.detail
    data = yaml.safe_load(lock_path(cfg.source).read_text())
    del data["models"]["tiny-sd-b"]
    lock_path(cfg.source).write_text(yaml.safe_dump(data))
    report = run_preflight(cfg, checks=("lock",))
    assert report.of("lock")[0].status == FAIL and "lacks model 'tiny-sd-b'" in report.of("lock")[0].detail


def test_the_captioner_of_a_study_has_its_rows(tmp_path, hub_cache_dir, standins):
    """The captioner of the literal prompts is checked like a model: hub access, and its weights file
    at the resolved commit (a stand-in: on disk)."""
    root = tmp_path / "project" / "configs"
    root.mkdir(parents=True)
    real = yaml.safe_load((REPO_ROOT / "configs" / "captioners.yaml").read_text())["captioners"]
    captioners = {"cap": {"source": "t/cap"}, "cap-empty": {"source": "t/cap-empty"}}
    (root / "captioners.yaml").write_text(
        yaml.safe_dump({"captioners": {**captioners, "tiny-captioner": real["tiny-captioner"]}})
    )
    repos = {
        "t/m": Repo(
            commit("m"), {"model_index.json": _index(), "unet/diffusion_pytorch_model.safetensors": b"w"}
        ),
        "t/cap": Repo(commit("cap"), {"config.json": b"{}", "model.safetensors": b"c"}),
        "t/cap-empty": Repo(commit("capx"), {"config.json": b"{}"}),
    }
    cfg = _hub_study(
        tmp_path,
        {"m": {"source": "t/m"}},
        {},
        ["m"],
        perturbation={"literal_source": "captioner", "captioner": "cap"},
    )
    with FakeHub(repos) as hub:
        report = run_preflight(cfg, endpoint=hub.endpoint, checks=("models",))
        access, config = _rows(report, "hub access"), _rows(report, "config")
        assert access["cap"][0] == OK and "not gated" in access["cap"][1]
        assert config["cap"][0] == OK and f"model.safetensors at {commit('cap')[:12]}" in config["cap"][1]
        empty = cfg.with_overrides(perturbation={"captioner": "cap-empty"})
        config = _rows(run_preflight(empty, endpoint=hub.endpoint, checks=("models",)), "config")
        assert config["cap-empty"][0] == FAIL and "none of ['model.safetensors'" in config["cap-empty"][1]
    build_captioner_standins(cfg)
    standin = _rows(
        run_preflight(cfg.with_overrides(perturbation={"captioner": "tiny-captioner"}), checks=("models",)),
        "config",
    )
    assert standin["tiny-captioner"][0] == OK and standin["tiny-captioner"][1].startswith("sha256:")
    wikidata = cfg.with_overrides(perturbation={"literal_source": "wikidata"})
    assert "cap" not in _rows(run_preflight(wikidata, offline=True, checks=("models",)), "config")
