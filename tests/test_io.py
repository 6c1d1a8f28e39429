"""Atomic writes, provenance and the stand-in label on tables and figures."""

from __future__ import annotations

import json
import os
import stat

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from iconicity_utils.core import io, plotting
from iconicity_utils.registry import STANDIN_LABEL


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "table.json"
    io.atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]  # no temp file left behind


def test_write_table_labels_standin_rows_and_records_provenance(tmp_path, demo_cfg):
    df = pd.DataFrame({"slug": ["a", "b"], "cra": [0.5, 1.0]})
    path = io.write_table(df, tmp_path / "t.parquet", demo_cfg, stage="test")
    back = io.read_table(path)
    assert (back["note"] == STANDIN_LABEL).all()
    prov = back.attrs["provenance"]
    assert prov["standin"] is True and prov["config"] == "demo" and prov["stage"] == "test"
    assert prov["packages"]["torch"] == "2.14.1"
    assert "note" not in df.columns  # the caller's frame is not modified


def test_real_config_tables_carry_no_standin_note(tmp_path, repo_root):
    from iconicity_utils.config import load_config

    cfg = load_config(repo_root / "configs" / "paper.yaml")
    back = io.read_table(io.write_table(pd.DataFrame({"x": [1]}), tmp_path / "p.parquet", cfg))
    assert "note" not in back.columns
    assert back.attrs["provenance"]["standin"] is False


def test_read_table_missing_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.parquet"):
        io.read_table(tmp_path / "nothing.parquet")


def test_standin_figures_say_so_on_their_face(tmp_path, demo_cfg, repo_root):
    from iconicity_utils.config import load_config

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    plotting.save_figure(fig, tmp_path / "demo.png", demo_cfg)
    assert any(STANDIN_LABEL in t.get_text() for t in fig.texts)
    assert (tmp_path / "demo.png").stat().st_size > 1000
    fig2, _ = plt.subplots()
    plotting.save_figure(fig2, tmp_path / "paper.png", load_config(repo_root / "configs" / "paper.yaml"))
    assert not any(STANDIN_LABEL in t.get_text() for t in fig2.texts)
    plt.close("all")


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_outputs_are_readable_with_the_usual_umask_permissions(tmp_path, demo_cfg):
    """Temporary files are owner-only (0o600); the renamed output has the umask's permissions."""
    expected = 0o666 & ~_umask()
    paths = [
        io.write_table(pd.DataFrame({"x": [1]}), tmp_path / "t.parquet", demo_cfg),
        io.atomic_write_text(tmp_path / "notes.txt", "hello\n"),
        io.atomic_write_json(tmp_path / "record.json", {"v": 1}),
        io.atomic_write_bytes(tmp_path / "sub" / "blob.bin", b"\x00\x01"),
    ]
    fig, _ = plt.subplots()
    paths.append(plotting.save_figure(fig, tmp_path / "figure.png", standin=False))
    plt.close(fig)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.name


def test_new_file_mode_follows_the_umask():
    umask = _umask()
    assert io.new_file_mode() == 0o666 & ~umask
    assert io.new_file_mode(directory=True) == 0o777 & ~umask


def test_standin_folder_is_readable(tmp_path, repo_root):
    from iconicity_utils.demo.standins import build_standin
    from iconicity_utils.registry import Registry

    reg = Registry.load(repo_root, standins_dir=tmp_path / "standins")
    folder = build_standin(reg.encoder("tiny-sscd"), reg)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~_umask()  # not mkdtemp's 0o700


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    from iconicity_utils.core.io import atomic_dir, new_file_mode

    target = tmp_path / "built"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="half way"), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("half way")
    assert [p.name for p in target.iterdir()] == ["old.txt"]  # untouched by the failed build
    assert [p.name for p in tmp_path.iterdir()] == ["built"]  # and no temporary folder left
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert target.stat().st_mode & 0o777 == new_file_mode(directory=True)
