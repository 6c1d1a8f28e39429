"""The part of speech of each word of a title, from the title's grammar and a lexicon (docs/method.md §5.1).

A title is a short noun phrase, rarely a sentence, so a tagger trained on sentences helps little.
:func:`title_parts_of_speech` uses the lexicon of ``lemminflect`` (which parts of speech a word
can take, and their lemmas) and a few rules of English noun phrases, in order:

1. function words, numbers and number words, words of one or two letters and words with an
   apostrophe are kept (``keep``);
2. an ``-ing`` form of a verb is a participle (``VBG``): *Liberty Leading*, *The Sleeping Gypsy*;
   a form that is only a verb's past participle is ``VBN`` (*Gone*);
3. a word that can be an adverb, not after a determiner, possessive or preposition, is an adverb
   (``keep``: *Apocalypse Now*);
4. a word followed by another content word that can be a noun is a modifier: an adjective when it
   can be one (*The Great Wave*), else a noun (*The Night Watch*, *Star Wars*);
5. any other word is a noun when it can be one (*The Kiss*, after a determiner), else an adjective.
"""

from __future__ import annotations

from dataclasses import dataclass

from iconicity_utils.perturb.words import FUNCTION_WORDS, fold

__all__ = ["NUMBER_WORDS", "WordTag", "title_parts_of_speech"]

_NUMBER_TEXT = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million first second third fourth fifth sixth seventh eighth ninth tenth twelfth hundredth "
    "thousandth"
)
#: cardinal and ordinal number words, kept as numbers are
NUMBER_WORDS = frozenset(_NUMBER_TEXT.split())
#: words after which the next content word begins a noun phrase
_PHRASE_OPENERS = FUNCTION_WORDS - {"not", "very", "too", "also", "just", "only", "there", "here"}


@dataclass(frozen=True)
class WordTag:
    """One word's part of speech: ``pos`` (``NOUN``, ``VERB``, ``ADJ``, ``ADV`` or ``keep``), its
    lemma, its Penn tag (``NN``, ``NNS``, ``VBG``, ``VBN``, ``JJ``) and why it was chosen."""

    word: str
    pos: str
    lemma: str
    tag: str
    why: str


def _lexicon(word: str) -> dict[str, str]:
    """Part of speech -> lemma, from lemminflect's lexicon (lower case)."""
    from lemminflect import getAllLemmas

    return {pos: lemmas[0] for pos, lemmas in getAllLemmas(word).items()}


def _fixed(word: str) -> str:
    """Why a word is kept whatever its grammar ("" when it is not)."""
    w = fold(word)
    if w.isdigit() or w in NUMBER_WORDS:
        return "number"
    if not w.isalpha():
        return "not a plain word (apostrophe)"
    if w in FUNCTION_WORDS:
        return "function word"
    if len(w) <= 2:
        return "two letters or fewer (abbreviation)"
    return ""


def _tag(word: str, lex: dict[str, str], after_opener: bool, before_noun: bool) -> WordTag:
    """One content word's part of speech by the rules of the module docstring (2-5)."""
    w = fold(word)
    verb = lex.get("VERB")
    if verb and w.endswith("ing") and verb != w:
        return WordTag(word, "VERB", verb, "VBG", "-ing form of a verb: a participle")
    if verb and verb != w and not ({"NOUN", "ADJ"} & set(lex)) and not w.endswith("s"):
        return WordTag(word, "VERB", verb, "VBN", "past participle")
    if "ADV" in lex and not after_opener and not before_noun:
        return WordTag(word, "keep", w, "RB", "adverb (kept)")
    if before_noun and "ADJ" in lex:
        return WordTag(word, "ADJ", lex["ADJ"], "JJ", "modifies the noun that follows: an adjective")
    if "NOUN" in lex:
        lemma = lex["NOUN"]
        tag = "NNS" if lemma != w else "NN"
        why = "modifies the noun that follows: a noun" if before_noun else "a noun (the phrase's head)"
        return WordTag(word, "NOUN", lemma, tag, why)
    if "ADJ" in lex:
        return WordTag(word, "ADJ", lex["ADJ"], "JJ", "an adjective")
    if verb:
        return WordTag(word, "VERB", verb, "VB", "a verb")
    return WordTag(word, "keep", w, "", "not in the lexicon")


def title_parts_of_speech(words: list[str]) -> list[WordTag]:
    """The part of speech of each word of a title (its words in order, as written)."""
    lexica = [{} if _fixed(w) else _lexicon(fold(w)) for w in words]
    out = []
    for i, word in enumerate(words):
        why = _fixed(word)
        if why:
            out.append(WordTag(word, "keep", fold(word), "", why))
            continue
        after = i == 0 or fold(words[i - 1]) in _PHRASE_OPENERS or words[i - 1].endswith(("'s", "’s"))
        nxt = lexica[i + 1] if i + 1 < len(words) else {}
        before_noun = "NOUN" in nxt and not fold(words[i + 1]).endswith("ing")
        out.append(_tag(word, lexica[i], after, before_noun))
    return out
