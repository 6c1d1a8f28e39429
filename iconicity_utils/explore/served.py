"""What a served explorer may open: the page's query string, checked against the served roots.

Voilà hands the kernel the page's query string (``QUERY_STRING``), so
``http://host:8866/?config=configs/paper.yaml&results=results/paper`` explores another run without
editing the notebook.  Any visitor can write that address, so a value from the query string is
never opened as it is: :func:`check_path` resolves it (symlinks included) and refuses it unless it
lies under one of the served roots (:func:`served_roots`): the project's ``configs/`` and
``results/``, plus the folders the *server* names in :data:`ROOTS_ENV` (never the query string).
A refusal (:class:`Refused`) carries a message that is safe to show to the visitor: the same for a
folder outside the roots and a missing one, so the page tells nothing about the rest of the disk.

Outside Voilà (JupyterLab, papermill) there is no query string and nothing here changes a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from iconicity_utils.registry import PROJECT_ROOT

__all__ = [
    "ROOTS_ENV",
    "Refused",
    "served_roots",
    "check_path",
    "is_served",
    "query_parameters",
    "served_parameters",
]

#: the server-side option that widens the roots: folders separated by ``os.pathsep``
ROOTS_ENV = "ICONICITY_EXPLORER_ROOTS"
#: the project folders a served explorer may open by default
DEFAULT_ROOTS = ("configs", "results")
#: longer query values are refused before they reach the file system
MAX_VALUE_CHARS = 1024
#: what each query parameter must name
KINDS = {"config": "file", "results": "dir"}
CONFIG_SUFFIXES = (".yaml", ".yml")


class Refused(Exception):
    """A value a served explorer will not open; ``str(exc)`` is the message shown on the page."""

    def __init__(self, name: str, value: Any, why: str | None = None):
        self.name = name
        self.value = value
        shown = _shown(value)
        why = why or (
            "a served explorer opens only the study configs and results folders under the "
            "folders its server shares (by default the project's configs/ and results/; the "
            f"server widens them with {ROOTS_ENV}), and this value names none of them"
        )
        super().__init__(f"The explorer did not open {name}={shown}: {why}.  Nothing was loaded.")


def _shown(value: Any, limit: int = 80) -> str:
    """The value as the page may show it: escapes for control characters, cut to ``limit``."""
    text = str(value).encode("unicode_escape").decode("ascii")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def served_roots(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The folders a served explorer may open, resolved: the project's ``configs/`` and
    ``results/``, then each folder of :data:`ROOTS_ENV` (``os.pathsep``-separated; relative ones
    from the project root; empty entries ignored)."""
    environ = os.environ if environ is None else environ
    extra = [e for e in environ.get(ROOTS_ENV, "").split(os.pathsep) if e.strip()]
    roots = []
    for entry in (*DEFAULT_ROOTS, *extra):
        p = Path(entry)
        roots.append((p if p.is_absolute() else PROJECT_ROOT / p).resolve())
    return tuple(dict.fromkeys(roots))


def check_path(name: str, value: Any, roots: tuple[Path, ...], base: Path = PROJECT_ROOT) -> Path:
    """The real path a query value names, if a served explorer may open it.

    ``name`` is the query parameter: ``results`` must name a folder, ``config`` a YAML file.  A
    relative value is taken from ``base`` (the project root).  The value is resolved with
    ``Path.resolve(strict=True)`` (every symlink followed) and must lie under one of ``roots``.

    Raises:
        Refused: the value is empty, too long or holds a control character (NUL included); it
            does not exist; its real path lies outside every root; or it is not a folder
            (``results``) or a ``.yaml`` file (``config``).  One message for all of them.
    """
    if not isinstance(value, str | os.PathLike):
        raise Refused(name, value)
    text = os.fspath(value)
    if not text or len(text) > MAX_VALUE_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise Refused(name, value)
    p = Path(text)
    try:
        real = (p if p.is_absolute() else base / p).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name too long
        raise Refused(name, value) from None
    if not any(real.is_relative_to(r) for r in roots):
        raise Refused(name, value)
    if KINDS.get(name, "dir") == "dir" and not real.is_dir():
        raise Refused(name, value)
    if KINDS.get(name) == "file" and not (real.is_file() and real.suffix in CONFIG_SUFFIXES):
        raise Refused(name, value)
    return real


def is_served(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this kernel runs a page served by Voilà (which sets ``QUERY_STRING``, even empty,
    and ``SERVER_SOFTWARE=voila/...``)."""
    environ = os.environ if environ is None else environ
    return "QUERY_STRING" in environ or environ.get("SERVER_SOFTWARE", "").startswith("voila/")


def query_parameters(config, results=None, query: str | None = None) -> tuple[Any, Any]:
    """``config`` and ``results`` overridden by the page's query string, as they are (unchecked:
    a served page goes through :func:`served_parameters`).  Outside Voilà (JupyterLab,
    papermill) the values are returned unchanged."""
    query = os.environ.get("QUERY_STRING", "") if query is None else query
    values = parse_qs(query or "")
    config = values.get("config", [config])[-1]
    results = values.get("results", [results])[-1]
    return config, results


def served_parameters(
    config, results=None, environ: Mapping[str, str] | None = None
) -> tuple[Any, Any, bool]:
    """``config``, ``results`` and whether the query string gave either of them.

    Outside Voilà the values come back unchanged.  Served, each value the query string gives is
    checked with :func:`check_path` against :func:`served_roots` and replaced by its real path.

    Raises:
        Refused: a query value a served explorer may not open.
    """
    environ = os.environ if environ is None else environ
    if not is_served(environ):
        return config, results, False
    values = parse_qs(environ.get("QUERY_STRING", ""))
    roots = served_roots(environ)
    given = False
    if "config" in values:
        config, given = check_path("config", values["config"][-1], roots), True
    if "results" in values:
        results, given = check_path("results", values["results"][-1], roots), True
    return config, results, given
