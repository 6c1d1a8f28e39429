"""One command line: ``python -m iconicity_utils <command>`` (console script ``iconicity``)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import tomllib

from iconicity_utils.cli import COMMANDS, main


def test_every_command_names_a_main_that_exists():
    for name, (module, function, help_) in COMMANDS.items():
        assert callable(getattr(importlib.import_module(module), function)), name
        assert help_ and not help_.endswith("."), name


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_answers_help_under_its_own_name(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: iconicity {command}")


def test_the_command_list_and_bad_commands(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in COMMANDS)
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m_and_the_console_script(repo_root):
    run = subprocess.run([sys.executable, "-m", "iconicity_utils", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "commands:" in run.stdout
    scripts = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"iconicity": "iconicity_utils.cli:main"}
