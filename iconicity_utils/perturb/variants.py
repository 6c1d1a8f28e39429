"""Stage 05's prompt variants: the prompts table of every reference and variant.

Builds ``title``, ``synonym`` (WordNet 3.0) and ``literal`` (Wikidata labels, a captioner of
``configs/captioners.yaml``, or a user CSV) prompts, runs the leak check and adds the CLIP text
distance to the title.  Front doors: :func:`build_prompts` (written to :func:`prompts_path`),
:func:`synonym_variants`, :func:`compose_literal`, :func:`leak_words` / :func:`find_leaks`,
:func:`load_captioners` / :func:`caption_images` and :func:`read_literal_csv`.  The rules are
docs/method.md §5.1-5.2.
"""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.core.schema import Section
from iconicity_utils.generate.generation import BASE_VARIANT
from iconicity_utils.perturb.wordnet import load_wordnet, wordnet_source
from iconicity_utils.registry import PROJECT_ROOT, Registry, is_local, is_standin_config, load_entries

if TYPE_CHECKING:
    import pandas as pd

    from iconicity_utils.config import StudyConfig

__all__ = [
    "PROMPTS_TABLE",
    "PROMPT_COLUMNS",
    "FUNCTION_WORDS",
    "CaptionerSpec",
    "SynonymVariant",
    "synonym_variants",
    "compose_literal",
    "leak_words",
    "find_leaks",
    "load_captioners",
    "captioner_spec",
    "build_captioner_standins",
    "caption_images",
    "read_literal_csv",
    "select_references",
    "variant_names",
    "build_prompts",
    "prompts_path",
    "write_stage_table",
    "text_features",
    "add_text_distance",
]

#: the prompts table, under the data root
PROMPTS_TABLE = "prompts.parquet"
#: the prompts table's columns, in order
PROMPT_COLUMNS = [
    "slug", "kind", "title", "variant", "prompt", "status", "source", "method", "reason", "leak",
    "leak_words", "in_comparison", "standin", "text_encoder", "text_cosine", "text_distance",
]  # fmt: skip

#: English function words: kept by the synonym variant, never leak words (our list; docs/method.md §5)
FUNCTION_WORDS = frozenset(
    (
        # determiners
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "some",
        "any",
        "no",
        "every",
        "each",
        "all",
        "both",
        "either",
        "neither",
        "such",
        "what",
        "which",
        "whose",
        "another",
        "other",
        # prepositions
        "about",
        "above",
        "across",
        "after",
        "against",
        "along",
        "amid",
        "among",
        "around",
        "as",
        "at",
        "before",
        "behind",
        "below",
        "beneath",
        "beside",
        "besides",
        "between",
        "beyond",
        "by",
        "despite",
        "down",
        "during",
        "except",
        "for",
        "from",
        "in",
        "inside",
        "into",
        "like",
        "near",
        "of",
        "off",
        "on",
        "onto",
        "out",
        "outside",
        "over",
        "past",
        "per",
        "since",
        "through",
        "throughout",
        "till",
        "to",
        "toward",
        "towards",
        "under",
        "underneath",
        "until",
        "up",
        "upon",
        "via",
        "with",
        "within",
        "without",
        # conjunctions
        "and",
        "but",
        "or",
        "nor",
        "so",
        "yet",
        "if",
        "than",
        "then",
        "though",
        "although",
        "because",
        "while",
        "whereas",
        "whether",
        "when",
        "where",
        "how",
        "why",
        "once",
        "unless",
        # pronouns
        "i",
        "me",
        "you",
        "he",
        "him",
        "she",
        "it",
        "we",
        "us",
        "they",
        "them",
        "myself",
        "yourself",
        "himself",
        "herself",
        "itself",
        "ourselves",
        "themselves",
        "who",
        "whom",
        "one",
        # auxiliaries, modals and particles
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "will",
        "would",
        "shall",
        "should",
        "can",
        "could",
        "may",
        "might",
        "must",
        "not",
        "there",
        "here",
        "very",
        "too",
        "also",
        "just",
        "only",
        "o",
    )  # fmt: skip
)
#: particles of personal names, not checked as creator words (``van`` in Vincent van Gogh)
NAME_PARTICLES = frozenset(
    (
        "van",
        "von",
        "der",
        "den",
        "de",
        "del",
        "della",
        "dei",
        "di",
        "da",
        "du",
        "la",
        "le",
        "ter",
        "ten",
        "y",
        "bin",
        "ibn",
        "al",
    )
)
#: what a ``literal`` prompt of a dynamic reference is a still of, when Wikidata gives no genre
CLASS_NOUNS = {"Q11424": "film", "Q5398426": "television series"}

_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+")


# ============================================================================================
# Words: function words, proper names, base forms
# ============================================================================================


def _fold(text: str) -> str:
    """Lower case without accents: ``Dalí`` -> ``dali``."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _base_forms(word: str, wn) -> set[str]:
    """The word (folded) and its WordNet base forms in every part of speech (``kissing`` -> kiss)."""
    w = _fold(word)
    forms = {w}
    if w.isalpha():
        for pos in ("n", "v", "a", "r"):
            base = wn.morphy(w, pos)
            if base:
                forms.add(_fold(base))
    return forms


def _creator_words(creator: Any) -> list[str]:
    """Words of the creator's name(s) (``;``-separated), without name particles and initials."""
    if not isinstance(creator, str) or not creator.strip():
        return []
    out = []
    for word in _words(creator):
        w = _fold(word)
        if len(w) > 1 and w not in NAME_PARTICLES and w not in out:
            out.append(w)
    return out


def _plural(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: the last word takes -s, -es or -ies."""
    head, _, last = noun.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _cased_like(original: str, replacement: str) -> str:
    """``replacement`` (WordNet's ``young_woman``) with spaces, capitalised like ``original``."""
    words = replacement.replace("_", " ").split()
    if original[:1].isupper():
        words = [w[:1].upper() + w[1:] for w in words]
    return " ".join(words)


# ============================================================================================
# Synonyms
# ============================================================================================


@dataclass
class SynonymVariant:
    """One synonym variant of a title: the prompt (None when missing), how it was made, or why not."""

    prompt: str | None
    method: str
    reason: str = ""


@dataclass
class _Choice:
    """What happens to one word of the title."""

    word: str
    candidates: list[str] = field(default_factory=list)  # replacements, best first
    sense: str = ""
    kept: str = ""  # why the word is kept ("" when it has candidates)
    proper: bool = False
    plural: bool = False


def _matching_lemmas(synset, word: str):
    return [lemma for lemma in synset.lemmas() if _fold(lemma.name()) == word]


def _senses(wn, word: str) -> tuple[list[Any], str, bool]:
    """WordNet senses of ``word`` in its own form, or of its singular (plural nouns)."""
    surface = [s for s in wn.synsets(word) if _matching_lemmas(s, word)]
    if surface:
        return surface, word, False
    base = wn.morphy(word, "n")
    if base and base != word and _plural(base) == word:
        senses = [s for s in wn.synsets(base, "n") if _matching_lemmas(s, base)]
        if senses:
            return senses, base, True
    return [], word, False


def _rank(lemmas: Iterable[Any], exclude: str) -> list[str]:
    """Candidate lemma names: lower case in WordNet, not the word itself; by tag count, Zipf, name."""
    from wordfreq import zipf_frequency

    best: dict[str, tuple[int, float, str]] = {}
    for lemma in lemmas:
        name = lemma.name()
        text = name.replace("_", " ")
        folded = _fold(text)
        if name[:1].isupper() or folded == exclude or exclude in folded.split():
            continue
        key = (-lemma.count(), -zipf_frequency(text, "en"), folded)
        if folded not in best or key < best[folded]:
            best[folded] = key
    return [name for name, _ in sorted(best.items(), key=lambda item: item[1])]


def _choose(wn, word: str, creator_words: Sequence[str]) -> _Choice:
    """The replacements of one title word, best first (or why it is kept)."""
    w = _fold(word)
    if w.isdigit():
        return _Choice(word, kept="number")
    if not w.isalpha():
        return _Choice(word, kept="not a plain word (apostrophe)")
    if w in FUNCTION_WORDS:
        return _Choice(word, kept="function word")
    if len(w) == 1:
        return _Choice(word, kept="single letter")
    if w in creator_words:
        return _Choice(word, kept="proper name (in the creator's name)", proper=True)
    senses, lemma, plural = _senses(wn, w)
    if not senses:
        inflected = wn.synsets(w)
        why = f"inflected form of {inflected[0].lemmas()[0].name()!r}" if inflected else "not in WordNet"
        return _Choice(word, kept=why)
    # the most frequent sense: the highest SemCor tag count of this word's lemma; ties keep
    # WordNet's order (nouns, verbs, adjectives, adverbs; senses by frequency within each)
    sense = max(senses, key=lambda s: max(lem.count() for lem in _matching_lemmas(s, lemma)))
    mine = _matching_lemmas(sense, lemma)
    if all(lem.name()[:1].isupper() for lem in mine):
        return _Choice(word, sense=sense.name(), kept=f"proper name ({sense.name()})", proper=True)
    candidates = _rank(sense.lemmas(), lemma)
    how = sense.name()
    if not candidates and sense.pos() in ("a", "s"):  # the adjective's cluster (similar-to synsets)
        candidates = _rank((lem for s in sense.similar_tos() for lem in s.lemmas()), lemma)
        how = f"similar to {sense.name()}"
    if not candidates:
        return _Choice(word, sense=sense.name(), kept=f"no other lemma in {sense.name()}")
    return _Choice(word, candidates=candidates, sense=how, plural=plural)


def synonym_variants(
    title: str,
    wn,
    *,
    n: int = 1,
    proper_names: str = "keep",
    creator: str | None = None,
) -> list[SynonymVariant]:
    """``n`` synonym variants of a title (docs/method.md §5).

    Rules, word by word (words are runs of letters; numbers and punctuation are kept as written):

    - **function words** (:data:`FUNCTION_WORDS`), single letters and numbers are kept;
    - a word's **senses** are the WordNet synsets with a lemma equal to the word; a plural noun
      with none uses its singular's noun senses and its replacements are pluralised;
    - the **most frequent sense** is the one whose lemma for the word has the highest tag count
      (WordNet's ``cntlist``, ``Lemma.count()``); ties keep WordNet's order;
    - a **proper name** is a word of the creator's name, or a word whose lemma in its most frequent
      sense is capitalised in WordNet (Venus, Olympia, American); ``proper_names`` keeps it or drops it;
    - the **replacements** are that sense's other lemmas that are lower case in WordNet (an
      adjective with none takes its cluster's, the synsets it is similar to), ranked by tag
      count, then wordfreq Zipf frequency, then alphabetically; the k-th variant uses each word's
      k-th replacement (its last if it has fewer), written with spaces and the word's capitalisation;
    - **at least one word must change**; a variant equal to the title or to an earlier variant
      is missing, with the reason.  Words WordNet does not know are kept (nothing is invented).

    Args:
        title: the bare title.
        wn: the WordNet reader (:func:`load_wordnet`).
        n: how many variants.
        proper_names: ``"keep"`` or ``"drop"``.
        creator: the creator's name(s), ``;``-separated.

    Returns:
        ``n`` :class:`SynonymVariant`, in order (``synonym``, ``synonym-2``, ...).
    """
    if proper_names not in ("keep", "drop"):
        raise ValueError(f"unknown proper_names rule {proper_names!r}; expected 'keep' or 'drop'")
    creator_words = _creator_words(creator)
    pieces, choices, pos = [], [], 0
    for match in _TOKEN.finditer(title):
        pieces.append(title[pos : match.start()])
        choices.append(_choose(wn, match.group(), creator_words))
        pieces.append(len(choices) - 1)
        pos = match.end()
    pieces.append(title[pos:])
    out: list[SynonymVariant] = []
    seen = {title}
    for k in range(1, n + 1):
        text, notes = "", []
        for piece in pieces:
            if isinstance(piece, str):
                text += piece
                continue
            c = choices[piece]
            if c.candidates:
                pick = c.candidates[min(k, len(c.candidates)) - 1]
                word = _cased_like(c.word, _plural(pick.replace("_", " ")) if c.plural else pick)
                text += word
                notes.append(f"{c.word}→{word} ({c.sense})")
            elif c.proper and proper_names == "drop":
                notes.append(f"{c.word} dropped ({c.kept})")
            else:
                text += c.word
                notes.append(f"{c.word} kept ({c.kept})")
        prompt = re.sub(r"\s+", " ", text).strip()
        method = "; ".join(notes)
        if not any(c.candidates for c in choices):
            out.append(SynonymVariant(None, method, "no word of the title has a WordNet synonym"))
        elif prompt in seen:
            why = "the title" if prompt == title else "an earlier synonym variant"
            out.append(SynonymVariant(None, method, f"no further synonym: it would repeat {why}"))
        else:
            seen.add(prompt)
            out.append(SynonymVariant(prompt, method))
    return out


# ============================================================================================
# Literal descriptions
# ============================================================================================


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


# ============================================================================================
# The leak check
# ============================================================================================


def leak_words(
    title: str,
    creator: str | None,
    *,
    mode: str = "rare",
    max_zipf: float = 5.0,
) -> list[str]:
    """The words a variant of ``title`` must not contain (folded to lower case without accents).

    - the title's **distinctive words**: with ``mode="rare"``, its content words (not function
      words, at least two letters) whose wordfreq Zipf frequency in English is below
      ``max_zipf`` (5.0 is 100 occurrences per million words: *starry* 3.2 and *scream* 4.1 are
      distinctive, *night* 5.6 is not), with ``mode="content"`` every content word; numbers always;
    - every word of the **creator's name(s)**, less name particles (*van*, *da*) and initials.
    """
    from wordfreq import zipf_frequency

    if mode not in ("rare", "content"):
        raise ValueError(f"unknown leak word rule {mode!r}; expected 'rare' or 'content'")
    out = []
    for word in _words(title):
        w = _fold(word)
        if w.isdigit():
            keep = True
        else:
            content = w not in FUNCTION_WORDS and len(w) > 1
            keep = content and (mode == "content" or zipf_frequency(w, "en") < max_zipf)
        if keep and w not in out:
            out.append(w)
    return out + [w for w in _creator_words(creator) if w not in out]


def find_leaks(prompt: str, words: Sequence[str], wn) -> list[str]:
    """The leak ``words`` that ``prompt`` contains, sorted: whole words compared after folding to
    lower case without accents, and through their WordNet base forms in every part of speech
    (``kissing`` leaks *kiss*, ``Nights`` leaks *night*)."""
    targets: dict[str, str] = {}
    for word in words:
        for form in _base_forms(word, wn):
            targets.setdefault(form, word)
    hits = set()
    for word in _words(prompt):
        for form in _base_forms(word, wn):
            if form in targets:
                hits.add(targets[form])
    return sorted(hits)


# ============================================================================================
# Captioners (image-to-text models), as data: configs/captioners.yaml
# ============================================================================================


class CaptionerSpec(Section):
    """An image-to-text model, loaded with transformers ``AutoModelForImageTextToText``."""

    name: str
    source: str | None = None  # hub id or local path; stand-ins: derived
    revision: str | None = None
    standin: dict[str, Any] | None = None
    notes: str = ""

    @property
    def is_standin(self) -> bool:
        return self.standin is not None


def load_captioners(root: str | Path = PROJECT_ROOT) -> dict[str, CaptionerSpec]:
    """The captioner registry ``<root>/configs/captioners.yaml``, validated (errors name file and key)."""
    path = Path(root) / "configs" / "captioners.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"captioner registry not found: {path}")
    return load_entries(path, "captioners", CaptionerSpec)


def captioner_spec(cfg: StudyConfig, name: str) -> CaptionerSpec:
    """The registered captioner ``name`` (``perturbation.captioner``) of the config's project."""
    specs = load_captioners(cfg.root)
    if name not in specs:
        raise KeyError(f"unknown captioner {name!r} (perturbation.captioner); known: {sorted(specs)}")
    return specs[name]


def build_captioner_standins(cfg: StudyConfig, force: bool = False) -> list[Path]:
    """Build (idempotently) every stand-in captioner of the registry into ``paths.standins``."""
    from iconicity_utils.demo.standins import build_standin

    registry = Registry.for_config(cfg)
    specs = [s for s in load_captioners(cfg.root).values() if s.is_standin]
    return [build_standin(spec, registry, force=force) for spec in specs]  # type: ignore[arg-type]


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' warnings and weight-loading bars off while a captioner loads and runs; restored after."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def caption_images(cfg: StudyConfig, name: str, images: Sequence[str | Path]) -> list[str]:
    """Captions of ``images`` by the registered captioner ``name``, greedy or beam search.

    Loads ``AutoModelForImageTextToText``, ``AutoImageProcessor`` and ``AutoTokenizer`` from the
    entry's hub id or local folder (a stand-in: its built folder) on ``encoders.device``, and calls
    ``generate(pixel_values=..., max_new_tokens=perturbation.captioner_max_new_tokens,
    num_beams=perturbation.captioner_num_beams, do_sample=False)``.

    Raises:
        RuntimeError: the captioner cannot be loaded (names it and the cause); nothing else is used.
    """
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    from iconicity_utils.core.images import open_rgb

    spec = captioner_spec(cfg, name)
    registry = Registry.for_config(cfg)
    source = str(registry.standin_path(name)) if spec.is_standin else registry.resolve_path(spec.source or "")
    if spec.is_standin and not Path(source).is_dir():
        raise RuntimeError(
            f"stand-in captioner {name!r} has not been built at {source}; run "
            f"`python -m iconicity_utils.perturb.perturbation --setup --config {cfg.source}` (run_all.sh does this)"
        )
    kwargs = {"revision": spec.revision} if spec.revision and not is_local(source) else {}
    p = cfg.perturbation
    out: list[str] = []
    with _quiet_transformers():
        try:
            model = (
                AutoModelForImageTextToText.from_pretrained(source, **kwargs).eval().to(cfg.encoders.device)
            )
            processor = AutoImageProcessor.from_pretrained(source, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        except Exception as exc:  # re-raised with the id: never another captioner
            raise RuntimeError(
                f"could not load captioner {name!r} from {source!r}: {type(exc).__name__}: {exc}"
            ) from exc
        for start in range(0, len(images), 8):
            pils = [open_rgb(path) for path in images[start : start + 8]]
            pixels = processor(images=pils, return_tensors="pt")["pixel_values"].to(cfg.encoders.device)
            with torch.inference_mode():
                ids = model.generate(
                    pixel_values=pixels,
                    max_new_tokens=p.captioner_max_new_tokens,
                    num_beams=p.captioner_num_beams,
                    do_sample=False,
                )
            out += [" ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


# ============================================================================================
# The user's CSV
# ============================================================================================


def read_literal_csv(path: str | Path, known_slugs: Iterable[str]) -> dict[str, tuple[str, int]]:
    """``slug -> (prompt, line)`` from a user CSV with columns ``slug, prompt`` (others ignored).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column, an empty slug or prompt, a slug that is not in the
            references table, or a slug given twice; the message names the file, the line and the value.
    """
    import pandas as pd

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


# ============================================================================================
# The prompts table
# ============================================================================================


def prompts_path(cfg: StudyConfig) -> Path:
    """``<data>/processed/prompts.parquet``."""
    return cfg.path("data", "processed", PROMPTS_TABLE)


def variant_names(cfg: StudyConfig) -> list[str]:
    """The variant names of the prompts table: ``title``, ``synonym`` [``synonym-2`` ...], ``literal``."""
    names = []
    for v in cfg.perturbation.variants:
        if v == "synonym":
            names += ["synonym"] + [f"synonym-{k}" for k in range(2, cfg.perturbation.n_synonyms + 1)]
        else:
            names.append(v)
    return names


def select_references(cfg: StudyConfig, refs: pd.DataFrame) -> pd.DataFrame:
    """The references stage 05 perturbs: ``perturbation.slugs`` (table order), or the first
    ``max_references`` (ceil(m/2) static and floor(m/2) dynamic in the table's order, the other
    kind filling in when one runs short), or all.

    Raises:
        ValueError: a slug of ``perturbation.slugs`` is not in the references table.
    """
    import pandas as pd

    p = cfg.perturbation
    if p.slugs is not None:
        unknown = [s for s in p.slugs if s not in set(refs["slug"])]
        if unknown:
            raise ValueError(
                f"{cfg.source}: perturbation.slugs {unknown} are not in the references table {cfg.references_table}"
            )
        return refs[refs["slug"].isin(p.slugs)].reset_index(drop=True)
    if p.max_references is None:
        return refs.reset_index(drop=True)
    static, dynamic = refs[refs["kind"] == "static"], refs[refs["kind"] != "static"]
    m = p.max_references
    n_dynamic = min(len(dynamic), m - min(len(static), math.ceil(m / 2)))
    n_static = min(len(static), m - n_dynamic)
    return pd.concat([static.head(n_static), dynamic.head(n_dynamic)]).reset_index(drop=True)


def _references(cfg: StudyConfig) -> pd.DataFrame:
    refs = read_table(cfg.references_table)
    lacking = [c for c in ("slug", "kind", "label_clean") if c not in refs.columns]
    if lacking:
        raise ValueError(f"{cfg.references_table}: references table lacks column(s) {lacking}")
    for col in ("creator", "depicts", "genre", "main_subject", "class_qid"):
        if col not in refs.columns:
            refs[col] = None
    return refs


def _literal_rows(cfg: StudyConfig, refs: pd.DataFrame, known_slugs: Iterable[str]) -> list[dict[str, Any]]:
    """The ``literal`` row of every reference, from the configured source."""
    from iconicity_utils.score.scoring import reference_files

    p = cfg.perturbation
    rows = []
    if p.literal_source == "wikidata":
        source = "wikidata (P180 depicts, P136 genre, P921 main subject)"
        for r in refs.itertuples(index=False):
            prompt, method, reason = compose_literal(r.kind, r.depicts, r.genre, r.main_subject, r.class_qid)
            rows.append(
                {"slug": r.slug, "prompt": prompt, "source": source, "method": method, "reason": reason}
            )
    elif p.literal_source == "csv":
        path = cfg.absolute(p.literal_csv)
        given = read_literal_csv(path, known_slugs)
        source = f"csv {cfg.relative(path)}"
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
    else:
        spec = captioner_spec(cfg, p.captioner)  # type: ignore[arg-type]
        images = [
            reference_files(cfg.reference_dir(r.kind, r.slug), r.kind)[0]
            for r in refs.itertuples(index=False)
        ]
        captions = caption_images(cfg, spec.name, images) if images else []
        source = f"captioner {spec.name}" + (
            f" ({STANDIN_LABEL})" if spec.is_standin else f" ({spec.source})"
        )
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


def build_prompts(
    cfg: StudyConfig,
    *,
    write: bool = True,
    text_distance: bool = True,
    references: pd.DataFrame | None = None,
    wordnet=None,
) -> pd.DataFrame:
    """The prompts table of stage 05 (columns :data:`PROMPT_COLUMNS`), written to :func:`prompts_path`.

    One row per selected reference (:func:`select_references`) and variant (:func:`variant_names`):
    the prompt (None when missing), ``status`` (``ok`` / ``missing``), ``source`` (WordNet, Wikidata,
    the captioner, the CSV), ``method`` (how it was made: the replaced words and senses, the template
    and labels, the captioned image, the CSV line), ``reason`` (why missing), the leak flag and the
    leaking words, ``in_comparison`` (ok, and not leaking unless ``exclude_leaks`` is off),
    ``standin`` (made by a random-weight stand-in captioner) and the CLIP text cosine to the title.

    Args:
        cfg: the study config (``perturbation`` section).
        write: write the table (atomically, with provenance; rewritten whole on every run).
        text_distance: compute the text cosine (loads the text encoder); else NaN.
        references: the references table (default: stage 01's).
        wordnet: a WordNet reader (default: :func:`load_wordnet` on the config).

    Raises:
        :class:`~iconicity_utils.perturb.wordnet.WordNetMissingError`: WordNet is not installed (the message says how to install it).
    """
    import pandas as pd

    p = cfg.perturbation
    everything = references if references is not None else _references(cfg)
    refs = select_references(cfg, everything)
    if refs.empty:
        raise ValueError(f"{cfg.references_table}: no reference to perturb (the references table is empty)")
    names = variant_names(cfg)
    wn = wordnet if wordnet is not None or names == [BASE_VARIANT] else load_wordnet(cfg)
    wn_source = wordnet_source(wn) if wn is not None else None
    base = {r.slug: r for r in refs.itertuples(index=False)}
    rows: list[dict[str, Any]] = []
    for r in refs.itertuples(index=False):
        rows.append(
            {"slug": r.slug, "variant": BASE_VARIANT, "prompt": r.label_clean, "source": "title (label_clean)",
             "method": "the bare title", "reason": ""}
        )  # fmt: skip
        if "synonym" in p.variants:
            made = synonym_variants(
                r.label_clean, wn, n=p.n_synonyms, proper_names=p.proper_names, creator=r.creator
            )
            for name, v in zip([n for n in names if n.startswith("synonym")], made, strict=True):
                rows.append(
                    {"slug": r.slug, "variant": name, "prompt": v.prompt, "source": wn_source,
                     "method": v.method, "reason": v.reason}
                )  # fmt: skip
    if "literal" in p.variants:
        rows += [{**row, "variant": "literal"} for row in _literal_rows(cfg, refs, everything["slug"])]
    df = pd.DataFrame(rows)
    df["kind"] = [base[s].kind for s in df["slug"]]
    df["title"] = [base[s].label_clean for s in df["slug"]]
    df["status"] = np.where(df["prompt"].isna(), "missing", "ok")
    df["standin"] = df["standin"].eq(True) if "standin" in df else False
    leaks = []
    for row in df.itertuples(index=False):
        if row.variant == BASE_VARIANT or row.status != "ok":
            leaks.append([])
            continue
        words = leak_words(row.title, base[row.slug].creator, mode=p.leak_words, max_zipf=p.leak_max_zipf)
        leaks.append(find_leaks(row.prompt, words, wn))
    df["leak_words"] = leaks
    df["leak"] = [bool(w) for w in leaks]
    df["in_comparison"] = (df["status"] == "ok") & ~(df["leak"] & p.exclude_leaks)
    order = {name: i for i, name in enumerate(names)}
    df["_order"] = [order[v] for v in df["variant"]]
    position = {slug: i for i, slug in enumerate(base)}
    df["_ref"] = [position[s] for s in df["slug"]]
    df = df.sort_values(["_ref", "_order"], kind="stable").drop(columns=["_order", "_ref"])
    df = add_text_distance(cfg, df) if text_distance else df.assign(text_encoder=None, text_cosine=np.nan)
    df["text_distance"] = 1.0 - df["text_cosine"]
    df = df[PROMPT_COLUMNS].reset_index(drop=True)
    if write:
        where = getattr(wn, "location", None)
        write_stage_table(df, prompts_path(cfg), cfg, wordnet=where.describe() if where is not None else None)
    return df


def write_stage_table(df: pd.DataFrame, path: Path, cfg: StudyConfig, **extra: Any) -> Path:
    """``write_table`` with the stage's provenance; rows made by a stand-in captioner carry the label
    even when the config's models are real."""
    df = df.copy()
    if "standin" in df and df["standin"].any() and not is_standin_config(cfg):
        df["note"] = np.where(df["standin"], STANDIN_LABEL, "")
    meta = {
        "stage": "05 perturbation",
        "settings": cfg.section_dump("perturbation", "generation", "thresholds"),
    }
    return write_table(df, path, cfg, **meta, **extra)


# ============================================================================================
# Text distance: CLIP text embeddings
# ============================================================================================


def text_features(
    encoder, texts: Sequence[str], registry: Registry | None = None, batch_size: int = 256
) -> np.ndarray:
    """L2-normalised CLIP text embeddings ``(N, D)`` from a loaded open_clip or hf-clip encoder
    (texts longer than CLIP's 77 tokens are truncated, as in the diffusion models' own encoders).

    Raises:
        ValueError: the encoder has no text tower (timm, sscd).
    """
    import torch

    registry = registry or Registry.load()
    if encoder.backend == "open_clip":
        import open_clip

        tokenizer = open_clip.get_tokenizer(encoder.spec.source)

        def embed(chunk):
            return encoder.model.encode_text(tokenizer(chunk).to(encoder.device))

    elif encoder.backend == "hf-clip":
        from transformers import CLIPTokenizer

        source = registry.resolve_path(encoder.spec.source)
        kwargs = {"revision": encoder.spec.revision} if encoder.spec.revision else {}
        tokenizer = CLIPTokenizer.from_pretrained(source, **kwargs)

        def embed(chunk):
            inputs = tokenizer(chunk, padding=True, truncation=True, return_tensors="pt").to(encoder.device)
            out = encoder.model.get_text_features(**inputs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

    else:
        raise ValueError(
            f"encoder {encoder.name!r} ({encoder.backend}) has no text tower; set perturbation.text_encoder "
            "to a CLIP encoder (backend open_clip or hf-clip)"
        )
    texts = list(texts)
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            feats = embed(texts[start : start + batch_size])
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def add_text_distance(cfg: StudyConfig, prompts: pd.DataFrame, encoder=None) -> pd.DataFrame:
    """``prompts`` with ``text_encoder`` and ``text_cosine``: the CLIP text cosine between each prompt
    and its reference's title (``perturbation.text_encoder``, default ``encoders.recognition``)."""
    from iconicity_utils.registry.encoders import load_encoder

    name = cfg.perturbation.text_encoder or cfg.encoders.recognition
    registry = Registry.for_config(cfg)
    ok = prompts["status"] == "ok"
    texts = sorted(set(prompts.loc[ok, "prompt"]) | set(prompts["title"]))
    if encoder is None:
        encoder = load_encoder(name, registry, device=cfg.encoders.device, precision=cfg.encoders.precision)
    feats = dict(zip(texts, text_features(encoder, texts, registry), strict=True))
    cos = [
        float(feats[p] @ feats[t]) if o else np.nan
        for p, t, o in zip(prompts["prompt"], prompts["title"], ok, strict=True)
    ]
    return prompts.assign(text_encoder=name, text_cosine=cos)
