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
