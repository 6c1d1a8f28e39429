"""The real tokenizers of the stand-ins: CLIP's BPE (rebuilt from open_clip's bundled merges) and a T5 one.

A stand-in's weights are random, but its tokenizer is the real one, so that token ids (and prompt
truncation) match what the real pipelines do.
"""

from __future__ import annotations

import gzip
from pathlib import Path

__all__ = ["clip_tokenizer", "t5_tokenizer"]


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> unicode table (as in OpenAI's and open_clip's tokenizers)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A transformers ``CLIPTokenizer`` with the real CLIP vocabulary (49,408 tokens).

    ``pad_token``: ``"<|endoftext|>"`` as SD 1.x/2.x and the CLIP-L tokenizers of SDXL and SD3;
    ``"!"`` as their OpenCLIP-bigG ``tokenizer_2``.
    """
    import open_clip
    from transformers import CLIPTokenizer

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path) as fh:
        merges = fh.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(_bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(vocab)},
        merges=[tuple(m.split()) for m in merges],
        model_max_length=77,
        pad_token=pad_token,
    )


#: printable ASCII and Latin-1 letters: every piece a T5 stand-in needs to spell any title
_T5_CHARS = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0xC0, 0x100) if chr(c).isalpha()]
#: one-character words
_T5_WORD_CHARS = [c for c in _T5_CHARS if c.isalnum()]


def t5_tokenizer(
    n_words: int = 2000, n_capitalised: int = 2000, n_subwords: int = 1000, extra_ids: int = 100
):
    """A small T5 tokenizer (``T5TokenizerFast``: a sentencepiece-style Unigram model), built offline.

    Real T5 tokenizers are 32,000-piece sentencepiece models downloaded from the hub.  Here the pieces
    come from open_clip's bundled BPE vocabulary, in merge order (roughly frequency order): the
    first ``n_words`` word-final merges as word-initial pieces (``the</w>`` -> ``▁the``), capitalised
    copies of the first ``n_capitalised``, the first ``n_subwords`` word-internal merges, one-letter
    words (``▁A``, score -10), and every printable ASCII character and Latin-1 letter (score -20),
    so any title is spelt without ``<unk>``.  A piece of rank ``r`` scores ``-ln(r + 2)``, so Viterbi
    prefers whole words.
    Special tokens are T5's: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then ``extra_ids`` sentinels.

    The vocabulary is *constructed*, not trained: a Unigram model trained with the ``tokenizers``
    library differs from run to run (its trainer seeds its hash maps randomly, even on one thread),
    which would change the stand-in's bytes, and so its digest, on every build.
    """
    import math

    import open_clip
    from transformers import T5TokenizerFast

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path) as fh:
        merges = ["".join(m.split()) for m in fh.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]]
    words = [
        m[: -len("</w>")] for m in merges if m.endswith("</w>") and m[:-4].isascii() and m[:-4].isalpha()
    ]
    inner = [m for m in merges if not m.endswith("</w>") and m.isascii() and m.isalpha()]
    pieces = ["▁" + w for w in words[:n_words]]
    pieces += ["▁" + w.capitalize() for w in words[:n_capitalised]]
    pieces += inner[:n_subwords]
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = {p for p, _ in vocab}
    for rank, piece in enumerate(pieces):
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, -math.log(rank + 2)))
    for piece, score in [
        *(("▁" + c, -10.0) for c in _T5_WORD_CHARS),
        *((c, -20.0) for c in ["▁", *_T5_CHARS]),
    ]:
        if piece not in seen:  # one-letter words ("▁A") are no merge; then single characters
            seen.add(piece)
            vocab.append((piece, score))
    return T5TokenizerFast(vocab=vocab, extra_ids=extra_ids, model_max_length=512)
