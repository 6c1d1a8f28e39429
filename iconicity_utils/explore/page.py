"""The page of notebook 07: the explorer, or a refusal, for the config and results it is given.

:func:`open_explorer` is what notebook 07 calls.  Outside Voilà it loads the given config and
results folder.  Served, it first checks the page's query string against the served roots
(:mod:`~iconicity_utils.explore.served`) and returns a :class:`Refusal` (a message on the page,
no traceback, nothing loaded) instead of raising.  A served page only reads: it never scores,
builds stand-ins, writes caches or starts an encoder; a folder that would need any of these gets
a refusal that says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from iconicity_utils.config.notebook import setup
from iconicity_utils.explore.app import Explorer
from iconicity_utils.explore.render import refusal_html
from iconicity_utils.explore.served import Refused, check_path, is_served, served_parameters, served_roots

__all__ = ["Refusal", "open_explorer"]


@dataclass
class Refusal:
    """What a served explorer shows instead of the app: a message, and nothing loaded."""

    message: str

    def describe(self) -> str:
        return self.message

    def snapshot_html(self) -> str:
        return refusal_html(self.message)

    def show(self, interactive: bool = True):
        """Display the message (the same with or without widgets)."""
        from IPython.display import HTML, display

        display(HTML(self.snapshot_html()))


#: what a served page says when a folder holds no score tables: it would have to score them
NOT_SCORED = (
    "{what} holds no score tables.  A served explorer only shows scores that already exist: it "
    "never scores, builds stand-ins, writes caches or starts an encoder.  Score the study on the "
    "server first (./run_all.sh --config ...), then reload this page"
)


def _config(config):
    """A config path loaded as notebooks do (:func:`~iconicity_utils.config.notebook.setup`: the
    banner, the figure style); a config object or None as it is."""
    return setup(config) if isinstance(config, str | os.PathLike) else config


def _served_load(config, results, environ: Mapping[str, str], **kwargs) -> Explorer:
    """Load for a served page: query values checked (:func:`served_parameters`), and the results
    folder a query-given config names checked too."""
    config, results, given = served_parameters(config, results, environ)
    cfg = _config(config)
    if given and results is None and cfg is not None:
        results = check_path("results", str(cfg.results_dir), served_roots(environ))
    try:
        return Explorer.load(cfg, results, **kwargs)
    except FileNotFoundError:
        raise Refused("results", results or "(the config's)", NOT_SCORED.format(what="this folder")) from None


def open_explorer(
    config=None, results=None, *, environ: Mapping[str, str] | None = None, **kwargs
) -> Explorer | Refusal:
    """The explorer notebook 07 shows: over ``results`` (default: the config's results folder).

    Outside Voilà (JupyterLab, papermill: no query string) this is ``notebook.setup(config)``
    then :meth:`Explorer.load`, and errors raise as usual.  Served by Voilà, ``?config=`` and
    ``?results=`` in the page address replace the arguments, but only inside the served roots
    (:func:`~iconicity_utils.explore.served.served_roots`); anything refused or unreadable gives
    a :class:`Refusal` (its message on the page, no traceback, nothing loaded).

    Args:
        config: the study config (path or object) or None.
        results: a results folder, e.g. a ``score_folders`` ``out_dir``, or None.
        environ: the kernel's environment (default ``os.environ``; tests pass their own).
        **kwargs: passed to :class:`Explorer` (``thumb_px``, ``bins``).
    """
    environ = os.environ if environ is None else environ
    if not is_served(environ):
        return Explorer.load(_config(config), results, **kwargs)
    try:
        return _served_load(config, results, environ, **kwargs)
    except Refused as exc:
        return Refusal(str(exc))
    except Exception as exc:  # noqa: BLE001 (a visitor sees a message, never a traceback)
        return Refusal(f"The explorer could not open this page's study: {exc}.  Nothing was loaded.")
