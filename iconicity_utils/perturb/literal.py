"""Literal descriptions of stage 05 (docs/method.md §5.1): the ``literal`` prompt of every reference,
a description of the image that names neither the work, its creator nor anyone in it.

From one source (``perturbation.literal_source``): Wikidata's class-level labels through a template
(:func:`compose_literal`), a captioner of ``configs/captioners.yaml``
(:func:`~iconicity_utils.perturb.captions.caption_images`), or a user CSV (:func:`read_literal_csv`).
:func:`literal_rows` gives the rows of the prompts table, each checked for named someones
(:func:`~iconicity_utils.perturb.names.named_words`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.perturb.captions import caption_images
from iconicity_utils.perturb.names import named_words, subject_labels
from iconicity_utils.perturb.wordnet import load_wordnet
from iconicity_utils.perturb.words import cell_items
from iconicity_utils.registry import Registry
from iconicity_utils.score.inputs import reference_files

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "CLASS_NOUNS",
    "CLASS_COLUMNS",
    "DEPICTABLE_LEXNAMES",
    "depictable",
    "compose_literal",
    "read_literal_csv",
    "literal_rows",
]

#: what a ``literal`` prompt of a dynamic reference is a still of, when its genres do not say
CLASS_NOUNS = {"Q11424": "film", "Q5398426": "television series"}
#: the references-table columns of stage 01 that the template and the named-someone check read
CLASS_COLUMNS = ("depicts_classes", "main_subject_classes", "named_subjects")
#: WordNet lexicographer files (supersenses) of things an image can show: a main subject whose
#: most frequent noun sense is in one of them is depictable (*robot*, *prison*, *family*, *chess*);
#: *time* (noun.event), *death* (noun.event), *artificial intelligence* (noun.cognition) are not
DEPICTABLE_LEXNAMES = frozenset(
    f"noun.{name}"
    for name in ("artifact", "animal", "plant", "object", "body", "food", "substance", "person",
                 "group", "act", "location", "phenomenon", "shape")
)  # fmt: skip


def _article(phrase: str) -> str:
    """``a``/``an`` + a phrase."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _item(label: str) -> str:
    """A class label as a thing shown: with ``a``/``an``, none where its plural is itself in lemminflect's
    lexicon (mass nouns, *chess*, *furniture*; invariant plurals, *sheep*, read as plurals)."""
    from lemminflect import getInflection

    head = label.split()[-1].lower()
    plural = getInflection(head, "NNS")
    return label if plural and plural[0] == head else _article(label)


def _enumerate(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def depictable(label: str, wn) -> bool | None:
    """Whether an image can show ``label``: the lexicographer file of its most frequent WordNet noun
    sense (the whole label, else its last word) is in :data:`DEPICTABLE_LEXNAMES`; None when WordNet
    does not know the label."""
    for lookup in (label.strip().replace(" ", "_"), label.split()[-1] if label.split() else ""):
        base = wn.morphy(lookup.lower(), "n") if lookup else None
        synsets = wn.synsets(base, "n") if base else []
        if synsets:
            return synsets[0].lexname() in DEPICTABLE_LEXNAMES
    return None


def _genre_noun(kind: str, genres: list[str], class_qid: str | None) -> str:
    """``portrait painting``, ``landscape and religious painting``, ``action and science fiction film``,
    ``sitcom``: the genres as qualifiers of the class noun (a genre that is a noun of its own, like
    *sitcom*, stands for it)."""
    noun = "painting" if kind == "static" else CLASS_NOUNS.get(str(class_qid), "film")
    heads = ("painting", "art") if kind == "static" else (noun,)
    qualifiers, nouns = [], []
    for g in genres:
        head = next((h for h in heads if g == h or g.endswith(" " + h)), None)
        if head is None and kind == "static":
            qualifiers.append(g)  # portrait, nude
        elif head is None:
            nouns.append(g)  # sitcom, anime
        elif g != head:
            qualifiers.append(g[: -len(head) - 1])
    if nouns:
        return _enumerate(nouns)
    return (" and ".join(qualifiers) + " " + noun) if qualifiers else noun


def _shown(depicts: list[str], subjects: list[str], wn, mode: str) -> tuple[list[str], list[str], list[str]]:
    """``(shown, abstract, unknown)``: the depicts classes and the main subject classes an image can
    show (``mode``: ``depictable``, ``all`` or ``none`` of the main subjects)."""
    shown, abstract, unknown = list(depicts), [], []
    for label in subjects:
        verdict = depictable(label, wn) if mode == "depictable" else mode == "all"
        if verdict is None:
            unknown.append(label)
        if verdict is False:
            abstract.append(label)
        elif label not in shown:
            shown.append(label)
    return shown, abstract, unknown


def compose_literal(
    kind: str,
    *,
    depicts_classes: Any,
    main_subject_classes: Any,
    genre: Any,
    named_subjects: Any,
    wn,
    class_qid: str | None = None,
    main_subjects: str = "depictable",
) -> tuple[str | None, str, str]:
    """A literal description from Wikidata's class-level labels: ``(prompt or None, method, reason)``.

    Templates (ours; labels as stage 01 stores them, in the table's order):

    - static: ``"A[n] <genres> painting depicting <classes>."`` (*landscape art* -> *landscape
      painting*; no genre: ``"A painting"``);
    - dynamic: ``"A still from a[n] <genres> <film|television series> showing <classes>."`` (a
      genre that is a noun of its own: ``"A still from a sitcom showing a family."``).

    The classes are the depicts classes (P180, all of them: a depicted thing is visible) and the main
    subject classes (P921) that an image can show (``main_subjects="depictable"``, :func:`depictable`;
    ``"all"``; ``"none"``).  Named subjects (people, characters, named individuals) are never used;
    the method says what was left out.  A reference with no class to show gets no description: a
    genre alone does not describe an image.
    """
    depicts, subjects, genres = (
        cell_items(depicts_classes),
        cell_items(main_subject_classes),
        cell_items(genre),
    )
    named = cell_items(named_subjects)
    shown, abstract, unknown = _shown(depicts, subjects, wn, main_subjects)
    method = (
        f"wikidata template ({kind}): genre={genres}, depicts classes={depicts}, "
        f"main subject classes={subjects}; left out: named subjects={named}, abstract main subjects={abstract}"
        + (f"; not in WordNet (kept): {unknown}" if unknown else "")
    )
    if not shown:
        given = [f"{what} ({', '.join(labels)})" for what, labels in
                 (("the genre", genres), ("named subjects", subject_labels(named)), ("abstract main subjects", abstract)) if labels]  # fmt: skip
        reason = "no class-level depicts (P180) or depictable main subject (P921) on Wikidata"
        if given:
            reason += "; Wikidata gives only " + _enumerate(given)
        if genres:
            reason += "; a genre does not describe an image"
        return None, method, reason
    noun = _genre_noun(kind, genres, class_qid)
    if kind == "static":
        text, verb = _article(noun), "depicting"
        text = text[:1].upper() + text[1:]
    else:
        text, verb = "A still from " + _article(noun), "showing"
    return f"{text} {verb} {_enumerate([_item(c) for c in shown])}.", method, ""


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


def _wikidata_rows(cfg: StudyConfig, refs: pd.DataFrame, wn) -> list[dict[str, Any]]:
    source = "wikidata (class-level P180 depicts, P921 main subject; P136 genre)"
    rows = []
    for r in refs.itertuples(index=False):
        prompt, method, reason = compose_literal(
            r.kind, depicts_classes=r.depicts_classes, main_subject_classes=r.main_subject_classes,
            genre=r.genre, named_subjects=r.named_subjects, wn=wn, class_qid=r.class_qid,
            main_subjects=cfg.perturbation.literal_main_subjects,
        )  # fmt: skip
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


def _require_columns(cfg: StudyConfig, refs: pd.DataFrame) -> None:
    """Stage 01's class-level columns must be there: no fall-back to ``depicts``."""
    needed = CLASS_COLUMNS if cfg.perturbation.literal_source == "wikidata" else ("named_subjects",)
    lacking = [c for c in needed if c not in refs.columns]
    if lacking:
        raise ValueError(
            f"{cfg.references_table}: the references table lacks column(s) {lacking}, which the literal "
            f"descriptions need (class-level depicts and main subjects, and the named subjects to leave "
            f"out and flag); re-run stage 01 (python -m iconicity_utils collect) to add them"
        )


def literal_rows(
    cfg: StudyConfig, refs: pd.DataFrame, known_slugs: Iterable[str], wn=None
) -> list[dict[str, Any]]:
    """The ``literal`` row of every reference (``slug, prompt, source, method, reason, named_words,
    named`` [, ``standin``]), from the configured source (``perturbation.literal_source``).

    Every prompt is checked for named someones (:func:`~iconicity_utils.perturb.names.named_words`,
    with the reference's ``named_subjects``); a named row says so in ``reason``, and whether it is left
    out of the comparison (``perturbation.exclude_named``).  ``wn``: a WordNet reader (default:
    :func:`~iconicity_utils.perturb.wordnet.load_wordnet` on the config).

    Raises:
        ValueError: the references table lacks stage 01's ``depicts_classes``,
            ``main_subject_classes`` or ``named_subjects`` (it says to re-run stage 01).
    """
    _require_columns(cfg, refs)
    wn = wn if wn is not None else load_wordnet(cfg)
    source = cfg.perturbation.literal_source
    if source == "wikidata":
        rows = _wikidata_rows(cfg, refs, wn)
    elif source == "csv":
        rows = _csv_rows(cfg, refs, known_slugs)
    else:
        rows = _captioner_rows(cfg, refs)
    subjects = dict(zip(refs["slug"], refs["named_subjects"], strict=True))
    for row in rows:
        found = named_words(row["prompt"], subjects[row["slug"]], wn) if row["prompt"] else []
        row.update(named_words=found, named=bool(found))
        if found:
            left_out = cfg.perturbation.exclude_named
            row["reason"] = f"names someone ({', '.join(found)}); " + (
                "left out of the comparison (perturbation.exclude_named)" if left_out
                else "kept in the comparison (perturbation.exclude_named is false)"
            )  # fmt: skip
    return rows
