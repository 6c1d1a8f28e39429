"""What a served explorer may open (issue 21): the path check as a pure function, the served roots,
the notebook's front door in and out of Voilà, and a served page that writes nothing and starts no
encoder.  The same hostile addresses in a real browser: test_explorer_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import explorer_fixtures as ef
import pytest

from iconicity_utils.explore import Explorer, Refusal, open_explorer
from iconicity_utils.explore import served as sv
from iconicity_utils.registry import PROJECT_ROOT

REFUSED = "a served explorer opens only the study configs and results folders"


@pytest.fixture
def tree(tmp_path):
    """A root holding a scored folder, an empty folder, a config and two symlinks (one leaving the
    root), and a scored folder outside the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    inside, _ = ef.hand_results(root / "run")
    outside_folder, _ = ef.hand_results(outside)
    (root / "empty").mkdir()
    (root / "study.yaml").write_text("name: x\n")
    (root / "notes.txt").write_text("x\n")
    (root / "escape").symlink_to(outside_folder, target_is_directory=True)
    (root / "alias").symlink_to(inside, target_is_directory=True)
    return root.resolve(), inside.resolve(), outside_folder.resolve()


HOSTILE = {
    "absolute path outside the root": lambda root, out: str(out),
    "../../": lambda root, out: "../../",
    "relative path climbing out": lambda root, out: os.path.relpath(out, root),
    "symlink inside the root pointing outside": lambda root, out: "escape",
    "missing folder inside the root": lambda root, out: "no-such-run",
    "NUL byte": lambda root, out: "run/results\x00/../../outside",
    "5000 characters": lambda root, out: "a" * 5000,
    "5000 characters of ../": lambda root, out: "../" * 1666 + "ab",
    "empty": lambda root, out: "",
    "a file, not a folder": lambda root, out: "notes.txt",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_check_path_refuses_hostile_values(tree, case):
    root, _, outside = tree
    value = HOSTILE[case](root, outside)
    with pytest.raises(sv.Refused) as info:
        sv.check_path("results", value, (root,), base=root)
    message = str(info.value)
    assert REFUSED in message and "Nothing was loaded" in message
    assert "\x00" not in message and len(message) < 600  # shown escaped and cut
    assert str(outside) not in message or value == str(outside)  # the real target is never named


def test_missing_and_outside_get_the_same_message(tree):
    """No oracle: the page does not tell a missing folder from one that exists outside the root."""
    root, _, outside = tree
    messages = set()
    for value in ("x1", "escape"):
        with pytest.raises(sv.Refused) as info:
            sv.check_path("results", value, (root,), base=root)
        messages.add(str(info.value).replace(repr(value), "V"))
    assert len(messages) == 1


def test_check_path_accepts_what_lies_inside(tree):
    root, inside, _ = tree
    assert sv.check_path("results", str(inside), (root,), base=root) == inside
    assert sv.check_path("results", "run/results", (root,), base=root) == inside
    assert sv.check_path("results", "alias", (root,), base=root) == inside  # a link that stays inside
    assert sv.check_path("results", "run/results/../results", (root,), base=root) == inside
    assert sv.check_path("config", "study.yaml", (root,), base=root) == root / "study.yaml"
    for value in ("notes.txt", "run", "missing.yaml"):
        with pytest.raises(sv.Refused):
            sv.check_path("config", value, (root,), base=root)


def test_served_roots_default_and_widened(tmp_path):
    default = sv.served_roots({})
    assert default == ((PROJECT_ROOT / "configs").resolve(), (PROJECT_ROOT / "results").resolve())
    extra = sv.served_roots({sv.ROOTS_ENV: os.pathsep.join([str(tmp_path), "", "data/fixtures"])})
    assert extra == (*default, tmp_path.resolve(), (PROJECT_ROOT / "data" / "fixtures").resolve())


def test_query_values_are_checked_only_when_served(tree):
    root, inside, outside = tree
    # JupyterLab / papermill: no query string, nothing changes (even a folder outside every root)
    assert sv.served_parameters("c.yaml", str(outside), {}) == ("c.yaml", str(outside), False)
    env = {"QUERY_STRING": "token=t", sv.ROOTS_ENV: str(root)}
    assert sv.served_parameters("c.yaml", None, env) == ("c.yaml", None, False)
    env["QUERY_STRING"] = f"token=t&results={inside}"
    assert sv.served_parameters("c.yaml", None, env) == ("c.yaml", inside, True)
    for query in (
        f"results={outside}",
        "results=%2E%2E%2F%2E%2E%2F",
        "results=%00",
        "config=%2Fetc%2Fpasswd",
    ):
        env["QUERY_STRING"] = query
        with pytest.raises(sv.Refused):
            sv.served_parameters("c.yaml", None, env)
    assert sv.is_served({"SERVER_SOFTWARE": "voila/0.5.13"}) and not sv.is_served({})


def test_open_explorer_served_refuses_without_raising(tree):
    root, inside, outside = tree
    env = {"QUERY_STRING": f"results={outside}", sv.ROOTS_ENV: str(root)}
    page = open_explorer(None, None, environ=env)
    assert isinstance(page, Refusal) and REFUSED in page.describe()
    assert "class='ic-refused'" in page.snapshot_html() and "Traceback" not in page.snapshot_html()
    env["QUERY_STRING"] = f"results={inside}"
    assert isinstance(open_explorer(None, None, environ=env), Explorer)
    # outside Voilà the arguments are opened as given, as before
    assert isinstance(open_explorer(None, outside, environ={}), Explorer)


def test_served_page_never_scores_a_folder_that_has_no_tables(tree):
    root, _, _ = tree
    env = {"QUERY_STRING": f"results={root / 'empty'}", sv.ROOTS_ENV: str(root)}
    page = open_explorer(None, None, environ=env)
    assert isinstance(page, Refusal)
    assert "never scores, builds stand-ins, writes caches or starts an encoder" in page.describe()
    with pytest.raises(FileNotFoundError):  # outside Voilà: the error, as before
        open_explorer(None, root / "empty", environ={})


def test_served_config_whose_results_lie_outside_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "configs").mkdir(parents=True)
    src = (PROJECT_ROOT / "configs" / "demo.yaml").read_text()
    (root / "configs" / "demo.yaml").write_text(src)
    for name in ("models.yaml", "encoders.yaml"):  # the registry of the config's project root
        (root / "configs" / name).write_text((PROJECT_ROOT / "configs" / name).read_text())
    env = {
        "QUERY_STRING": "config=" + str(root / "configs" / "demo.yaml"),
        sv.ROOTS_ENV: str(root / "configs"),
    }
    page = open_explorer("configs/demo.yaml", None, environ=env)
    assert isinstance(page, Refusal) and REFUSED in page.describe()


WATCH = r"""
import json, os, sys
sys.dont_write_bytecode = True
import matplotlib.figure, matplotlib.backends.backend_agg  # the server's own caches, warmed first
from iconicity_utils.explore import open_explorer
ENCODERS = ("torch", "open_clip", "timm", "transformers", "diffusers")
before = {m for m in sys.modules if m.split(".")[0] in ENCODERS}
events = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1] or "", args[2] or 0
        if any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            events.append([event, str(args[0])])
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.symlink", "shutil.rmtree", "subprocess.Popen",
                   "os.system", "os.exec", "os.posix_spawn", "os.fork"):
        events.append([event, str(args[0])])
sys.addaudithook(hook)
ex = open_explorer(sys.argv[1], None)
ex.set_thresholds(static=0.5)
ex.overlay.value = True
ex.tabs.selected_index = 3
ex.tabs.selected_index = 1
html = ex.snapshot_html()
after = {m for m in sys.modules if m.split(".")[0] in ENCODERS}
print(json.dumps({"kind": type(ex).__name__, "events": events, "encoders": sorted(after - before)}))
"""


@pytest.mark.slow
def test_a_served_page_writes_nothing_and_starts_no_encoder(tmp_path):
    """Open, re-threshold and render a served explorer under an audit hook: no file opened for
    writing, no folder made, no process started, no encoder library imported."""
    folder, _ = ef.hand_results(tmp_path / "served", features=True)
    env = {k: v for k, v in os.environ.items() if k != "QUERY_STRING"}
    env.update(
        {"QUERY_STRING": f"results={folder}", sv.ROOTS_ENV: str(tmp_path / "served"), "MPLBACKEND": "Agg"}
    )
    out = subprocess.run(
        [sys.executable, "-c", WATCH, "configs/demo.yaml"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"kind": "Explorer", "events": [], "encoders": []}
