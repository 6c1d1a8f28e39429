"""The leak check of stage 05 on the cases of issue 17: creator words without function words or
epithets, spelling variants caught, near words not, and the Zipf cut-off."""

from __future__ import annotations

import perturbation_fixtures as pf
import pytest

from iconicity_utils.perturb.leaks import find_leaks, leak_words
from iconicity_utils.perturb.words import FUNCTION_WORDS, creator_words, spelling_variant


@pytest.fixture(scope="module")
def wn(demo_cfg):
    return pf.load_wn(demo_cfg)


@pytest.mark.parametrize(
    ("creator", "expected"),
    [
        ("Pieter Bruegel the Elder", ["pieter", "bruegel"]),
        ("Hans Holbein the Younger", ["hans", "holbein"]),
        ("Francis Ford Coppola", ["coppola"]),
        ("Vincent van Gogh", ["gogh"]),
        ("Leonardo da Vinci", ["leonardo", "vinci"]),
        ("Rembrandt", ["rembrandt"]),
    ],
)
def test_creator_words_are_the_surname_and_distinctive_given_names(creator, expected):
    got = creator_words(creator)
    assert got == expected
    assert not set(got) & FUNCTION_WORDS


@pytest.mark.parametrize(
    ("title", "creator", "prompt", "leaks"),
    [
        ("The Hunters in the Snow", "Pieter Bruegel the Elder", "A painting depicting the sea", []),
        ("The Ambassadors", "Hans Holbein the Younger", "A painting depicting the sea", []),
        ("The Ambassadors", "Hans Holbein the Younger", "The Embassadors", ["ambassadors"]),
        ("The Sleeping Gypsy", "Henri Rousseau", "The Slumbering Gipsy", ["gypsy"]),
        ("Star Wars", "George Lucas", "Star Warfares", ["wars"]),
        ("The Godfather", "Francis Ford Coppola", "a Ford car", []),
        ("The Godfather", "Francis Ford Coppola", "a film by Coppola", ["coppola"]),
        ("The Scream", "Edvard Munch", "a stream at night", []),
        ("The Starry Night", "Vincent van Gogh", "a painting of light", []),
        # a common word that is the stem of a distinctive one is no leak (the Zipf cut-off) ...
        ("The Starry Night", "Vincent van Gogh", "bright stars over a sleeping village", []),
        ("The Starry Night", "Vincent van Gogh", "a star above a village", []),
        # ... the distinctive word itself, or a rare spelling of it, is
        ("The Starry Night", "Vincent van Gogh", "a starry sky", ["starry"]),
        ("The Starry Night", "Vincent van Gogh", "a starrie sky", ["starry"]),
    ],
)
def test_leak_check_cases_of_issue_17(wn, title, creator, prompt, leaks):
    assert find_leaks(prompt, leak_words(title, creator), wn) == leaks


def test_zipf_cut_off():
    # "star" (Zipf 5.2) and "night" (5.6) are common, "wars" (4.6) and "scream" (4.1) distinctive
    assert leak_words("Star Wars", None) == ["wars"]
    assert leak_words("The Starry Night", None) == ["starry"]
    assert leak_words("Star Wars", None, max_zipf=5.5) == ["star", "wars"]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("gypsy", "gipsy", True), ("ambassadors", "embassadors", True), ("war", "warfare", True),
     ("star", "superstar", True), ("taxi", "taxicab", True), ("scream", "stream", False),
     ("night", "light", False), ("lead", "guide", False), ("hunter", "huntsman", False)],
)  # fmt: skip
def test_spelling_variant(a, b, same):
    assert spelling_variant(a, b) is same


# --------------------------------------------------------------------------------------------
# Matching on the words CLIP's BPE tokenizer reads (issue 17, item 4)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "creator", "prompt", "words_only", "with_bpe"),
    [
        # glued, hyphenated, possessive and hashtag forms are caught
        ("Star Wars", "George Lucas", "a StarWars poster", ["wars"], ["wars"]),
        ("The Great Wave off Kanagawa", "Hokusai", "a Kanagawa-style print", ["kanagawa"], ["kanagawa"]),
        ("Guernica", "Pablo Picasso", "Guernica's horse", ["guernica"], ["guernica"]),
        ("Mona Lisa", "Leonardo da Vinci", "#monalisa", ["lisa", "mona"], ["lisa", "mona"]),
        ("Guernica", "Pablo Picasso", "#guernica", ["guernica"], ["guernica"]),
        # a leak word of several CLIP tokens inside a longer word: only the BPE rule sees it
        ("Guernica", "Pablo Picasso", "theguernicapainting", [], ["guernica"]),
        ("The Great Wave off Kanagawa", "Hokusai", "#kanagawawave", ["kanagawa", "wave"], ["kanagawa", "wave"]),
        ("The Great Wave off Kanagawa", "Hokusai", "thekanagawawavepainting", [], ["kanagawa"]),
        # one-token leak words do not flood inside other words
        ("Star Wars", "George Lucas", "a swarm of scarab beetles", [], []),
        ("The Godfather", "Francis Ford Coppola", "a Ford car", [], []),
        ("The Hunters in the Snow", "Pieter Bruegel the Elder", "A painting depicting the sea", [], []),
        ("The Ambassadors", "Hans Holbein the Younger", "A painting depicting the sea", [], []),
        ("The Scream", "Edvard Munch", "a stream at night", [], []),
    ],
)  # fmt: skip
def test_leak_check_on_clip_bpe_words(wn, title, creator, prompt, words_only, with_bpe):
    words = leak_words(title, creator)
    assert find_leaks(prompt, words, wn, match="words") == words_only
    assert find_leaks(prompt, words, wn) == with_bpe  # words+clip_bpe is the default


def test_bpe_one_token_words_match_whole_words_only():
    from iconicity_utils.perturb.clip_bpe import bpe_contains, bpe_pieces, clip_words

    assert [p.text for p in bpe_pieces("Guernica")] == ["guer", "nica"]  # two tokens: rare to CLIP
    assert [p.text for p in bpe_pieces("car")] == ["car"]  # one token: common
    assert clip_words("Guernica's Kanagawa-style #monalisa") == [
        "guernica", "'s", "kanagawa", "-", "style", "#", "monalisa",
    ]  # fmt: skip
    assert bpe_contains(clip_words("a car"), "car") and not bpe_contains(clip_words("scarface"), "car")
    assert bpe_contains(clip_words("holbeinesque"), "holbein")  # hol·bein: several tokens
    assert not bpe_contains(clip_words("Dalí"), "gala") and bpe_contains(clip_words("Dalí"), "dali")


def test_unknown_leak_match_rule(wn):
    with pytest.raises(ValueError, match="unknown leak match rule 'bpe'"):
        find_leaks("a car", ["car"], wn, match="bpe")
