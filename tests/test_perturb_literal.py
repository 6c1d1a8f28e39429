"""Literal descriptions of stage 05 that describe the image and name no one (issue 17, item 3).

The judged table below was written by hand, Wikidata-like rows of famous works and the description
judged right for each, before the code was run on them: class-level depicts and main subjects only,
the genre a qualifier of the painting or the still, abstract main subjects (*time*, *artificial
intelligence*, *death*) left out, and no description where Wikidata gives only a genre and named
subjects.  Then the named-someone check on hand-written descriptions, and the prompts-table columns.
"""

from __future__ import annotations

import re

import pandas as pd
import perturbation_fixtures as pf
import pytest

from iconicity_utils.perturb import literal
from iconicity_utils.perturb import prompts as pv
from iconicity_utils.perturb.names import named_words, subject_labels

FILM, SERIES, PAINTING = "Q11424", "Q5398426", "Q3305213"


@pytest.fixture(scope="module")
def wn(demo_cfg):
    return pf.load_wn(demo_cfg)


#: title -> (kind, class, genre, depicts classes, main subject classes, named subjects, judged description)
JUDGED = {
    "Liberty Leading the People": (
        "static", PAINTING, ["history painting"], ["flag", "crowd", "woman"], [],
        ["Marianne (Q900000302: fictional character)"], "A history painting depicting a flag, a crowd and a woman.",
    ),
    "The Starry Night": (
        "static", PAINTING, ["landscape art"], ["church building", "sky", "star", "tree", "village"], [],
        ["Moon (Q405: natural satellite)"],
        "A landscape painting depicting a church building, a sky, a star, a tree and a village.",
    ),
    "The Persistence of Memory": (
        "static", PAINTING, [], ["clock", "sea", "tree"], ["time"], [],
        "A painting depicting a clock, a sea and a tree.",
    ),
    "The Last Supper": (
        "static", PAINTING, ["religious art"], ["table"], [],
        ["Jesus (Q302: human)", "Judas Iscariot (Q81980: human)"], "A religious painting depicting a table.",
    ),
    "The Birth of Venus": (
        "static", PAINTING, ["mythological painting"], ["sea", "scallop"], [], ["Venus (Q47652: Roman deity)"],
        "A mythological painting depicting a sea and a scallop.",
    ),
    "Mona Lisa": (
        "static", PAINTING, ["portrait"], ["landscape", "woman"], [], ["Lisa Gherardini (Q185423: human)"],
        "A portrait painting depicting a landscape and a woman.",
    ),
    "The Great Wave off Kanagawa": (
        "static", PAINTING, ["landscape art"], ["wave", "boat", "mountain"], [], ["Mount Fuji (Q39231: mountain)"],
        "A landscape painting depicting a wave, a boat and a mountain.",
    ),
    "Girl with a Pearl Earring": (
        "static", PAINTING, ["portrait"], ["girl", "earring", "turban"], [], [],
        "A portrait painting depicting a girl, an earring and a turban.",
    ),
    "American Gothic": (
        "static", PAINTING, ["genre art"], ["man", "woman", "pitchfork", "house"], [], [],
        "A genre painting depicting a man, a woman, a pitchfork and a house.",
    ),
    "Impression, Sunrise": (
        "static", PAINTING, ["landscape art"], ["harbour", "ship", "sunrise"], [], [],
        "A landscape painting depicting a harbour, a ship and a sunrise.",
    ),
    "The Kiss": (
        "static", PAINTING, [], ["kiss", "man", "woman"], [], [], "A painting depicting a kiss, a man and a woman.",
    ),
    "Olympia": (
        "static", PAINTING, ["nude"], ["cat", "woman", "bouquet"], [], ["Victorine Meurent (Q467795: human)"],
        "A nude painting depicting a cat, a woman and a bouquet.",
    ),
    "The Son of Man": ("static", PAINTING, [], [], [], [], None),
    "Star Wars": (
        "dynamic", FILM, ["science fiction film"], ["robot", "spacecraft"], [],
        ["Luke Skywalker (Q51797: fictional character)", "Darth Vader (Q12206942: fictional character)"],
        "A still from a science fiction film showing a robot and a spacecraft.",
    ),
    "2001: A Space Odyssey": (
        "dynamic", FILM, ["science fiction film"], ["spacecraft"], ["artificial intelligence"],
        ["HAL 9000 (Q193279: fictional character)"], "A still from a science fiction film showing a spacecraft.",
    ),
    "Metropolis": (
        "dynamic", FILM, ["science fiction film"], [], ["robot"], ["Maria (Q3291218: fictional character)"],
        "A still from a science fiction film showing a robot.",
    ),
    "The Godfather": (
        "dynamic", FILM, ["crime film", "drama film"], [], ["family"],
        ["Vito Corleone (Q1139428: fictional character)", "Michael Corleone (Q1139416: fictional character)"],
        "A still from a crime and drama film showing a family.",
    ),
    "The Seventh Seal": (
        "dynamic", FILM, ["drama film", "fantasy film"], [], ["chess", "death"],
        ["Antonius Block (Q4778185: fictional character)"], "A still from a drama and fantasy film showing chess.",
    ),
    "The Shawshank Redemption": (
        "dynamic", FILM, ["drama film"], [], ["prison"], ["Andy Dufresne (Q4758478: fictional character)"],
        "A still from a drama film showing a prison.",
    ),
    "Psycho": (
        "dynamic", FILM, ["horror film", "thriller film"], ["shower", "knife"], [],
        ["Marion Crane (Q3294026: fictional character)", "Norman Bates (Q1994455: fictional character)"],
        "A still from a horror and thriller film showing a shower and a knife.",
    ),
    "The Simpsons": (
        "dynamic", SERIES, ["sitcom"], [], ["family"], ["Homer Simpson (Q7810: fictional character)"],
        "A still from a sitcom showing a family.",
    ),
    "The Matrix": (
        "dynamic", FILM, ["action film", "science fiction film"], [], ["artificial intelligence"],
        ["Neo (Q1059346: fictional character)"], None,
    ),
    "Pulp Fiction": (
        "dynamic", FILM, ["crime film"], [], [],
        ["Vincent Vega (Q2300434: fictional character)", "Mia Wallace (Q3307626: fictional character)"], None,
    ),
    "Titanic": (
        "dynamic", FILM, ["drama film", "romance film"], [], [],
        ["RMS Titanic (Q25173: ship)", "Jack Dawson (Q2006424: fictional character)"], None,
    ),
    "Game of Thrones": (
        "dynamic", SERIES, ["drama television series", "fantasy television series"], [], [],
        ["Daenerys Targaryen (Q2708078: fictional character)"], None,
    ),
}  # fmt: skip


def _compose(wn, title, **kw):
    kind, cls, genre, depicts, subjects, named, _ = JUDGED[title]
    return literal.compose_literal(
        kind, depicts_classes=depicts, main_subject_classes=subjects, genre=genre, named_subjects=named,
        wn=wn, class_qid=cls, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("title", list(JUDGED))
def test_judged_descriptions_of_famous_works(wn, title):
    kind, _, genre, _, _, named, expected = JUDGED[title]
    prompt, method, reason = _compose(wn, title)
    assert prompt == expected
    for label in subject_labels(named):  # the named subjects are left out, and the method says so
        assert label in method
        assert prompt is None or not set(label.lower().split()) & set(re.findall(r"\w+", prompt.lower()))
    if prompt is None:
        assert reason.startswith("no class-level depicts (P180) or depictable main subject (P921)")
    else:  # never a genre-only description: there is always something shown
        assert re.search(r" (depicting|showing) ", prompt) and reason == ""
    assert ("a genre does not describe an image" in (reason or "")) == (prompt is None and bool(genre))


def test_reasons_say_what_wikidata_gives(wn):
    _, _, reason = _compose(wn, "Pulp Fiction")
    assert "the genre (crime film)" in reason and "named subjects (Vincent Vega, Mia Wallace)" in reason
    _, method, reason = _compose(wn, "The Matrix")
    assert "abstract main subjects (artificial intelligence)" in reason
    assert "abstract main subjects=['artificial intelligence']" in method
    _, method, _ = _compose(wn, "The Persistence of Memory")
    assert "abstract main subjects=['time']" in method
    assert _compose(wn, "The Son of Man")[2] == (
        "no class-level depicts (P180) or depictable main subject (P921) on Wikidata"
    )


def test_main_subject_modes(wn):
    assert _compose(wn, "Metropolis", main_subjects="none")[0] is None
    assert _compose(wn, "The Persistence of Memory", main_subjects="all")[0] == (
        "A painting depicting a clock, a sea, a tree and a time."
    )
    assert literal.depictable("robot", wn) and literal.depictable("church building", wn)
    assert not literal.depictable("time", wn) and not literal.depictable("artificial intelligence", wn)
    assert literal.depictable("zzyzx qwerty", wn) is None


# --------------------------------------------------------------------------------------------
# The named-someone check (every literal source), on descriptions judged first
# --------------------------------------------------------------------------------------------

MARIANNE = ["Marianne (Q900000302: fictional character)"]


@pytest.mark.parametrize(
    ("prompt", "subjects", "expected"),
    [
        ("A painting of Marianne leading a crowd", None, ["Marianne"]),  # not in WordNet, capitalised
        ("A painting of Marianne leading a crowd", MARIANNE, ["Marianne"]),
        ("Marianne's flag over the barricade", None, ["Marianne"]),
        ("a woman with a flag, marianne", MARIANNE, ["marianne"]),  # a captioner's lower case
        ("A still from a film showing Luke Skywalker and a robot", None, ["Luke", "Skywalker"]),
        ("Darth Vader in a dark corridor", None, ["Darth", "Vader"]),
        ("a man in a tuxedo holding a gun, vito corleone", ["Vito Corleone (Q1139428: fictional character)"],
         ["vito", "corleone"]),
        ("Jesus at a long table with his disciples", None, ["Jesus"]),
        ("a still of jesus", None, ["jesus"]),
        ("A painting of Venus rising from the sea", None, ["Venus"]),
        ("Napoleon on a horse", None, ["Napoleon"]),
        ("St. Jerome in his study", None, ["Jerome"]),
        ("Jack Dawson and Rose on the bow of a ship",
         ["Jack Dawson (Q1: fictional character)", "Rose DeWitt Bukater (Q2: fictional character)"],
         ["Jack", "Dawson", "Rose"]),
        ("A view of Paris at night", None, ["Paris"]),  # a named place is a named individual too
        # clean: the Moon is the thing seen (a common noun), a style, a holiday, nationalities
        ("A painting depicting the Moon over a village", ["Moon (Q405: natural satellite)"], []),
        ("A film still showing a robot in a desert", None, []),
        ("A painting in the style of the Dutch Golden Age", None, []),
        ("A Christmas scene", None, []),
        ("a napoleon pastry on a plate", None, []),
        ("A portrait of a Dutch girl with a pearl earring", None, []),
        ("A woman in a Victorian dress", None, []),
        ("A Japanese woodblock print of a wave", None, []),
        ("A rose in a vase", ["Rose DeWitt Bukater (Q2: fictional character)"], []),  # lower case: the flower
        ("A landscape painting depicting a church building, a sky, a star, a tree and a village.", None, []),
    ],
)  # fmt: skip
def test_named_someone(wn, prompt, subjects, expected):
    assert named_words(prompt, subjects, wn) == expected


def test_subject_labels():
    assert subject_labels("Marianne (Q900000302: fictional character);Moon (Q405)") == ["Marianne", "Moon"]
    assert subject_labels(["HAL 9000 (Q193279: fictional character)"]) == ["HAL 9000"]
    assert subject_labels(None) == [] and subject_labels(float("nan")) == []


# --------------------------------------------------------------------------------------------
# The prompts table: class-level columns required, the named flag and its exclusion
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory, standins):
    return pf.make_study(tmp_path_factory.mktemp("literal-study"))


def test_missing_class_columns_name_the_table_and_stage_01(study, wn):
    refs = pf.references_table().drop(columns=["depicts_classes"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['depicts_classes'\].*re-run stage 01") as info:
        pv.build_prompts(study, write=False, text_distance=False, references=refs, wordnet=wn)
    assert str(study.references_table) in str(info.value)


def test_named_rows_are_flagged_and_left_out(study, wn, tmp_path):
    csv = tmp_path / "descriptions.csv"
    csv.write_text(
        "slug,prompt\n"
        "mona_lisa,a woman with folded hands\n"
        "the_starry_night,A swirling night sky over a village with Marianne\n"
    )
    cfg = study.with_overrides(
        perturbation={"literal_source": "csv", "literal_csv": str(csv), "controls": False}
    )
    df = pv.build_prompts(cfg, write=False, text_distance=False, wordnet=wn)
    lit = df[df["variant"] == "literal"].set_index("slug")
    assert lit.loc["the_starry_night", "named"] and list(lit.loc["the_starry_night", "named_words"]) == [
        "Marianne"
    ]
    assert not lit.loc["the_starry_night", "in_comparison"] and lit.loc["the_starry_night", "status"] == "ok"
    assert "names someone (Marianne)" in lit.loc["the_starry_night", "reason"]
    assert not lit.loc["mona_lisa", "named"] and lit.loc["mona_lisa", "in_comparison"]
    assert not df.loc[df["variant"] != "literal", "named"].any()
    kept = pv.build_prompts(cfg.with_overrides(perturbation={"exclude_named": False}), write=False,
                            text_distance=False, wordnet=wn)  # fmt: skip
    row = kept[(kept["slug"] == "the_starry_night") & (kept["variant"] == "literal")].iloc[0]
    assert row["named"] and row["in_comparison"] and "kept in the comparison" in row["reason"]


def test_prompts_table_columns(study, wn):
    refs = pf.references_table(["the_starry_night"])
    df = pv.build_prompts(study.with_overrides(perturbation={"controls": False}), write=False,
                          text_distance=False, references=refs, wordnet=wn)  # fmt: skip
    assert list(df.columns) == pv.PROMPT_COLUMNS
    assert {"named", "named_words"} <= set(df.columns)
    assert isinstance(df, pd.DataFrame)
