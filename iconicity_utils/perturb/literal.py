"""Literal descriptions of stage 05 (docs/method.md §5.1): the ``literal`` prompt of every reference.

From one source (``perturbation.literal_source``): Wikidata labels through a template
(:func:`compose_literal`), a captioner of ``configs/captioners.yaml``
(:func:`~iconicity_utils.perturb.captions.caption_images`), or a user CSV (:func:`read_literal_csv`).
:func:`literal_rows` gives the rows of the prompts table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.perturb.captions import caption_images
from iconicity_utils.registry import Registry
from iconicity_utils.score.inputs import reference_files

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["CLASS_NOUNS", "compose_literal", "read_literal_csv", "literal_rows"]

#: what a ``literal`` prompt of a dynamic reference is a still of, when Wikidata gives no genre
CLASS_NOUNS = {"Q11424": "film", "Q5398426": "television series"}


def _labels(value: Any) -> list[str]:
    """A list of non-empty labels from a table cell (list, array, ``;``-separated string or None)."""
    if isinstance(value, str):
        items = value.split(";")
    elif isinstance(value, list | tuple | np.ndarray):
        items = list(value)
    else:  # None, NaN, pd.NA
        return []
    return [str(v).strip() for v in items if isinstance(v, str) and v.strip()]


def _article(phrase: str) -> str:
    """``a``/``an`` + phrase; a capitalised label (a name: ``Moon``, ``RMS Titanic``) takes none."""
    if phrase[:1].isupper():
        return phrase
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _enumerate(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def compose_literal(
    kind: str,
    depicts: Any = None,
    genre: Any = None,
    main_subject: Any = None,
    class_qid: str | None = None,
) -> tuple[str | None, str, str]:
    """A literal description from Wikidata labels: ``(prompt or None, method, reason)``.

    Templates (ours; labels as stage 01 stores them, in the table's order):

    - static: ``"A[n] <genres> painting about <main subjects>, depicting <depicts>."`` (the word
      *painting* is not repeated after a genre that ends with it; with no genre: ``"A painting"``);
    - dynamic: ``"A still from a[n] <genres> about <main subjects>, showing <depicts>."`` (with no
      genre: the class, *film* or *television series*).

    A label that starts with a capital (a name) takes no article.  A reference with no depicts
    (P180), genre (P136) or main subject (P921) label gets no description (reason given).
    """
    depicts, genre, main_subject = _labels(depicts), _labels(genre), _labels(main_subject)
    method = f"wikidata template ({kind}): depicts={depicts}, genre={genre}, main subject={main_subject}"
    if not (depicts or genre or main_subject):
        return None, method, "no depicts (P180), genre (P136) or main subject (P921) label on Wikidata"
    if kind == "static":
        noun = _enumerate(genre) if genre else "painting"
        if genre and not genre[-1].endswith("painting"):
            noun += " painting"
        text = _article(noun)
        text = text[:1].upper() + text[1:]
        verb = "depicting"
    else:
        noun = _enumerate(genre) if genre else CLASS_NOUNS.get(str(class_qid), "film")
        text = "A still from " + _article(noun)
        verb = "showing"
    if main_subject:
        text += " about " + _enumerate(main_subject)
    if depicts:
        text += ("," if main_subject else "") + f" {verb} " + _enumerate([_article(d) for d in depicts])
    return text + ".", method, ""


def read_literal_csv(path: str | Path, known_slugs: Iterable[str]) -> dict[str, tuple[str, int]]:
    """``slug -> (prompt, line)`` from a user CSV with columns ``slug, prompt`` (others ignored).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column, an empty slug or prompt, a slug that is not in the
            references table, or a slug given twice; the message names the file, the line and the value.
    """

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"literal description CSV not found: {path} (perturbation.literal_csv)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    lacking = [c for c in ("slug", "prompt") if c not in df.columns]
    if lacking:
        raise ValueError(
            f"{path}: lacks column(s) {lacking}; expected slug, prompt (found {list(df.columns)})"
        )
    known = set(known_slugs)
    out: dict[str, tuple[str, int]] = {}
    for i, (slug, prompt) in enumerate(zip(df["slug"], df["prompt"], strict=True)):
        line = i + 2  # the header is line 1
        slug, prompt = slug.strip(), " ".join(prompt.split())
        if not slug:
            raise ValueError(f"{path}: line {line}: empty slug")
        if not prompt:
            raise ValueError(f"{path}: line {line} (slug {slug!r}): empty prompt")
        if slug not in known:
            raise ValueError(f"{path}: line {line}: slug {slug!r} is not in the references table")
        if slug in out:
            raise ValueError(f"{path}: line {line}: slug {slug!r} already given on line {out[slug][1]}")
        out[slug] = (prompt, line)
    return out


def _wikidata_rows(refs: pd.DataFrame) -> list[dict[str, Any]]:
    source = "wikidata (P180 depicts, P136 genre, P921 main subject)"
    rows = []
    for r in refs.itertuples(index=False):
        prompt, method, reason = compose_literal(r.kind, r.depicts, r.genre, r.main_subject, r.class_qid)
        rows.append({"slug": r.slug, "prompt": prompt, "source": source, "method": method, "reason": reason})
    return rows


def _csv_rows(cfg: StudyConfig, refs: pd.DataFrame, known_slugs: Iterable[str]) -> list[dict[str, Any]]:
    path = cfg.absolute(cfg.perturbation.literal_csv)
    given = read_literal_csv(path, known_slugs)
    source = f"csv {cfg.relative(path)}"
    rows = []
    for slug in refs["slug"]:
        if slug in given:
            prompt, line = given[slug]
            rows.append(
                {"slug": slug, "prompt": prompt, "source": source, "method": f"line {line}", "reason": ""}
            )
        else:
            rows.append(
                {
                    "slug": slug,
                    "prompt": None,
                    "source": source,
                    "method": "",
                    "reason": f"no row in {source[4:]}",
                }
            )
    return rows


def _captioner_rows(cfg: StudyConfig, refs: pd.DataFrame) -> list[dict[str, Any]]:
    p = cfg.perturbation
    spec = Registry.for_config(cfg).captioner(p.captioner)  # type: ignore[arg-type]
    images = [
        reference_files(cfg.reference_dir(r.kind, r.slug), r.kind)[0] for r in refs.itertuples(index=False)
    ]
    captions = caption_images(cfg, spec.name, images) if images else []
    source = f"captioner {spec.name}" + (f" ({STANDIN_LABEL})" if spec.is_standin else f" ({spec.source})")
    rows = []
    for r, image, text in zip(refs.itertuples(index=False), images, captions, strict=True):
        rows.append(
            {
                "slug": r.slug,
                "prompt": text or None,
                "source": source,
                "method": f"caption of {cfg.relative(image)} (max_new_tokens={p.captioner_max_new_tokens}, "
                f"num_beams={p.captioner_num_beams})",
                "reason": "" if text else "the captioner returned an empty caption",
                "standin": spec.is_standin,
            }
        )
    return rows


def literal_rows(cfg: StudyConfig, refs: pd.DataFrame, known_slugs: Iterable[str]) -> list[dict[str, Any]]:
    """The ``literal`` row of every reference (``slug, prompt, source, method, reason`` [, ``standin``]),
    from the configured source (``perturbation.literal_source``)."""
    source = cfg.perturbation.literal_source
    if source == "wikidata":
        return _wikidata_rows(refs)
    if source == "csv":
        return _csv_rows(cfg, refs, known_slugs)
    return _captioner_rows(cfg, refs)
