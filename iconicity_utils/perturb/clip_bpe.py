"""CLIP's byte-pair encoding, for the leak check of stage 05 (docs/method.md §5.2).

The models read a prompt as CLIP BPE tokens (open_clip's :class:`~open_clip.tokenizer.SimpleTokenizer`,
whose vocabulary ``bpe_simple_vocab_16e6.txt.gz`` ships in the open_clip wheel: no download).
:func:`bpe_pieces` splits a text into those tokens, :func:`clip_words` into the words the tokenizer
encodes one by one; :func:`bpe_contains` says whether a leak word is among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from iconicity_utils.perturb.words import fold

__all__ = ["Piece", "clip_tokenizer", "bpe_pieces", "clip_words", "bpe_contains", "INNER_MIN_LETTERS"]

#: a leak word of fewer letters matches only a whole CLIP word
INNER_MIN_LETTERS = 4
_END = "</w>"


@dataclass(frozen=True)
class Piece:
    """One CLIP BPE token: its letters (without the end-of-word mark), whether it starts and whether
    it ends a word of the tokenizer's pre-split."""

    text: str
    starts_word: bool
    ends_word: bool


@lru_cache(maxsize=1)
def clip_tokenizer():
    """open_clip's ``SimpleTokenizer`` (CLIP's 49 152-token BPE), loaded once.

    Raises:
        ImportError: open_clip is not installed (it is a dependency of the package).
    """
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def bpe_pieces(text: str) -> list[Piece]:
    """The CLIP BPE tokens of ``text`` folded to lower case without accents (``StarWars`` ->
    ``starwars``; ``Guernica's`` -> ``guer nica 's``)."""
    tok = clip_tokenizer()
    out = []
    for chunk in tok.pat.findall(tok.clean_fn(fold(text))):
        chunk = "".join(tok.byte_encoder[b] for b in chunk.encode("utf-8"))
        parts = tok.bpe(chunk).split(" ")
        for k, part in enumerate(parts):
            ends = part.endswith(_END)
            out.append(Piece(part[: -len(_END)] if ends else part, k == 0, ends))
    return out


def clip_words(text: str) -> list[str]:
    """The words of ``text`` as CLIP's tokenizer pre-splits it, folded (``Guernica's`` -> ``guernica``,
    ``'s``; ``Kanagawa-style`` -> ``kanagawa``, ``-``, ``style``; ``#monalisa`` -> ``#``, ``monalisa``)."""
    tok = clip_tokenizer()
    return tok.pat.findall(tok.clean_fn(fold(text)))


def bpe_contains(prompt_words: list[str], word: str) -> bool:
    """Whether a leak ``word`` is in a prompt read as CLIP reads it (``prompt_words`` from :func:`clip_words`).

    A leak word that CLIP's vocabulary spells with **one token** (a word common in CLIP's training
    text: *wars*, *memory*, *car*) or that has fewer than :data:`INNER_MIN_LETTERS` letters matches
    only a whole CLIP word, so that short common tokens do not match inside other words (*scarface*
    is clean for *car*); a leak word of **several tokens** (*guer·nica*, *kan·agawa*) also matches
    inside a longer CLIP word (*theguernicapainting*, *#kanagawawave*).
    """
    word = fold(word)
    if not word:
        return False
    inner_ok = len(bpe_pieces(word)) > 1 and len(word) >= INNER_MIN_LETTERS
    return any(w == word or (inner_ok and word in w) for w in prompt_words)
