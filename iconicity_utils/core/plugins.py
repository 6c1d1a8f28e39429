"""Providers found by name: how the science code uses a piece it must not import.

Some choices of a study config are served by code that is not part of the science: the demo's local
SPARQL endpoint (``collection.endpoint: local``), its synthetic reference images
(``collection.reference_images: synthetic``) and its synthetic caption corpus
(``correlates.frequency.synthetic_corpus: true``) live in :mod:`iconicity_utils.demo`.  Such a
provider registers itself under a name in the package metadata (``[project.entry-points]`` in
``pyproject.toml``, the standard Python plugin mechanism), and the stage asks for it by that name:

    >>> from iconicity_utils.core.plugins import GROUPS
    >>> sorted(GROUPS)
    ['caption_corpus', 'reference_images', 'sparql_endpoint']

A provider that is not installed is an error that names the group, the name and what is installed;
nothing falls back silently.  Your own provider (a mirror of the query service, another corpus) is
one entry point in your own package's metadata.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

__all__ = ["GROUPS", "ProviderError", "provider", "provider_names"]

#: provider kind -> entry-point group
GROUPS = {
    "sparql_endpoint": "iconicity.sparql_endpoint",
    "reference_images": "iconicity.reference_images",
    "caption_corpus": "iconicity.caption_corpus",
}


class ProviderError(LookupError):
    """No provider of that kind and name is installed."""


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise ProviderError(f"unknown provider kind {kind!r}; known: {sorted(GROUPS)}")
    return GROUPS[kind]


def provider_names(kind: str) -> list[str]:
    """The names registered for ``kind`` in the installed packages' metadata."""
    return sorted(ep.name for ep in entry_points(group=_group(kind)))


def provider(kind: str, name: str) -> Any:
    """Load the object registered as ``name`` for ``kind`` (an entry point of group ``GROUPS[kind]``).

    Raises:
        ProviderError: nothing of that name is registered (names what is, and how to install the demo's).
    """
    found = [ep for ep in entry_points(group=_group(kind)) if ep.name == name]
    if not found:
        raise ProviderError(
            f"no {kind} provider named {name!r} is installed (entry-point group {GROUPS[kind]!r}; "
            f"installed: {provider_names(kind) or 'none'}). The demo's providers come with the package's "
            "metadata: reinstall it (`pip install -e .`, which ./run_all.sh does)."
        )
    return found[0].load()
