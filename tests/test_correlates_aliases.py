"""Stage 06: the ``aliases`` count mode and the punctuation-insensitive normalisation, against regexes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from correlates_fixtures import (
    make_references,
    references_frame,
    slow_counts,
    slow_normalise,
    study_config,
    write_shards,
)

from iconicity_utils.core.io import read_table
from iconicity_utils.correlates import scan
from iconicity_utils.correlates.aliases import alias_is_weak
from iconicity_utils.correlates.counting import count_modes, count_table
from iconicity_utils.correlates.modes import build_spec, surnames

#: title, creator, year, aliases, weak (counts only with evidence)
WORKS = [
    ("Mona Lisa", "Leonardo da Vinci", 1503, ["La Gioconda", "La Joconde", "Mona Lisa"], [False, False, False]),
    ("Face/Off", "John Woo", 1997, ["Face Off"], [True]),
    ("Seven Samurai", "Akira Kurosawa", 1954, ["七人の侍"], [False]),
    ("Amélie", "Jean-Pierre Jeunet", 2001, ["Amelie"], [False]),
    ("Impression, Sunrise", "Claude Monet", 1872, ["Impression, soleil levant"], [False]),
    ("Up", "Pete Docter", 2009, [], []),
    ("Her", "Spike Jonze", 2013, [], []),
]  # fmt: skip
CAPTIONS = [
    "La Gioconda, oil on poplar", "Mona Lisa (La Gioconda) print", "LA JOCONDE au Louvre", "gioconda",
    "face off hockey game", "Face Off (1997) trailer", "John Woo's Face Off", "Face/Off Woo",
    "七人の侍 (1954)", "黒澤明 七人の侍 ポスター", "映画七人の侍", "Amelie dress", "amélie poster",
    "Impression Sunrise print", "Impression, soleil levant by Monet", "cheer up", "her new dress", None, "",
]  # fmt: skip


def rx(text: str, mode: str = "exact") -> re.Pattern:
    t = slow_normalise(text, mode)
    left = r"(?<!\w)" if re.match(r"\w", t[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", t[-1]) else ""
    return re.compile(left + re.escape(t) + right)


def slow_aliases(captions, works, mode="exact"):
    """Per work, one regex per name: (title count, captions holding the title or a name that counts)."""
    texts = [slow_normalise(c, mode) for c in captions]
    out = []
    for title, creator, year, aliases, weak in works:
        names = [rx(s, mode) for s in surnames(creator)]

        def evidence(x, names=names, year=year):  # a weak alias: the creator or the year, no kind word
            return any(n.search(x) for n in names) or rx(str(year)).search(x)

        strong = [rx(title, mode)] + [rx(a, mode) for a, w in zip(aliases, weak, strict=True) if not w]
        weak_rx = [rx(a, mode) for a, w in zip(aliases, weak, strict=True) if w]
        hold = [
            x
            for x in texts
            if any(r.search(x) for r in strong) or (any(r.search(x) for r in weak_rx) and evidence(x))
        ]
        out.append((sum(1 for x in texts if rx(title, mode).search(x)), len(hold)))
    return out


def spec_of(works, mode="exact"):
    return build_spec(
        [w[0] for w in works], [w[1] for w in works], [w[2] for w in works], 3,
        [w[3] for w in works], [w[4] for w in works], mode,
    )  # fmt: skip


def counted(captions, works, matcher="ahocorasick_rs", mode="exact"):
    spec = spec_of(works, mode)
    got = count_modes(captions, spec, matcher)
    return {w[0]: (int(got.counts[spec.title_pid[i]]), int(got.modes[i, 3])) for i, w in enumerate(works)}


@pytest.mark.parametrize("matcher", ["ahocorasick_rs", "hyperscan"])
def test_the_hard_alias_cases_by_hand(matcher):
    got = counted(CAPTIONS, WORKS, matcher)
    assert got["Mona Lisa"] == (1, 3)  # the caption with title and alias counts once
    assert got["Face/Off"] == (1, 3)  # "face off hockey game" has no evidence: the weak alias needs it
    assert got["Seven Samurai"] == (0, 2)  # "映画七人の侍" has no word boundary before the alias
    assert got["Amélie"] == (1, 2)  # "Amelie dress": a rare alias counts like a title
    assert got["Impression, Sunrise"] == (0, 1)  # strict punctuation; the French title counts
    assert got["Up"] == (1, 1) and got["Her"] == (1, 1)  # no aliases: the title count


@pytest.mark.parametrize("matcher", ["ahocorasick_rs", "hyperscan"])
def test_punctuation_normalisation_by_hand(matcher):
    got = counted(CAPTIONS, WORKS, matcher, "punctuation")
    assert got["Face/Off"] == (4, 4)  # "face off hockey game" now counts, as WIMBD's analysed text would
    assert got["Impression, Sunrise"] == (1, 2)
    assert got["Mona Lisa"] == (1, 3) and got["Seven Samurai"] == (0, 2)
    counts, _ = count_table(["Face Off poster", "impression sunrise", "M A S H", "faceoff"],
                            ["Face/Off", "Impression, Sunrise", "M*A*S*H"], matcher, normalise="punctuation")  # fmt: skip
    assert counts == [1, 1, 1]
    assert count_table(
        ["Face Off poster", "impression sunrise"], ["Face/Off", "Impression, Sunrise"], matcher
    )[0] == [0, 0]


def random_captions(n=3000, seed=5):
    rng = np.random.default_rng(seed)
    words = ["mona", "lisa", "la", "gioconda", "joconde", "face/off", "face", "off", "七人の侍", "映画七人の侍",
             "seven", "samurai", "amélie", "amelie", "impression,", "impression", "sunrise", "soleil", "levant",
             "up", "her", "woo", "kurosawa", "jeunet", "monet", "1997", "1954", "poster", "film", "-", "/", ",",
             "“", "”", "x", "still"]  # fmt: skip
    return [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(n)]


@pytest.mark.parametrize("mode", ["exact", "punctuation"])
@pytest.mark.parametrize("matcher", ["ahocorasick_rs", "hyperscan"])
@pytest.mark.parametrize("captions", [CAPTIONS, random_captions()], ids=["hard", "random"])
def test_aliases_equal_a_regex_per_name(captions, matcher, mode):
    got = counted(captions, WORKS, matcher, mode)
    want = slow_aliases(captions, WORKS, mode)
    assert list(got.values()) == want
    if mode == "exact":  # the title mode is today's count, aliases or not
        assert [g[0] for g in got.values()] == slow_counts(captions, [w[0] for w in WORKS])[0]


def test_which_aliases_are_weak():
    for common in ("Face Off", "The Night Watch", "Star Wars"):
        assert alias_is_weak(common), common
    for rare in ("La Gioconda", "Amelie", "七人の侍", "Impression, soleil levant"):
        assert not alias_is_weak(rare), rare
    assert alias_is_weak("Starry Night", title="The Starry Night")  # the title shortened: more generic
    assert alias_is_weak("Scream", title="The Scream") and not alias_is_weak("Amelie", title="Amélie")
    assert not alias_is_weak("Melting Clocks", title="The Persistence of Memory")
    assert alias_is_weak("La Gioconda", "evidence") and not alias_is_weak("Face Off", "always")
    with pytest.raises(ValueError, match="alias_rule"):
        alias_is_weak("x", "sometimes")


def test_the_scan_writes_the_aliases_mode_and_the_normalisation(tmp_path):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False})
    refs = make_references(cfg)
    write_shards(cfg.data_dir / "corpus", [CAPTIONS[:10], CAPTIONS[10:]])
    counts = scan.count_captions(cfg, workers=1, log=lambda _m: None).counts.set_index("slug")
    works = [(t, c, y, a, [alias_is_weak(x) for x in a]) for t, c, y, a in
             zip(refs.label_clean, [None] * len(refs), refs.year, refs.aliases, strict=True)]  # fmt: skip
    want = dict(zip(refs.slug, slow_aliases(CAPTIONS, [(*w[:2], None if pd.isna(w[2]) else int(w[2]), *w[3:]) for w in works]), strict=True))  # fmt: skip
    for slug, (title, aliases) in want.items():
        assert (counts.loc[slug, "caption_count"], counts.loc[slug, "caption_count_aliases"]) == (
            title,
            aliases,
        )
    assert (
        counts.loc["mona_lisa", "caption_count_aliases"] == 3
        and counts.loc["face_off", "caption_count_aliases"] == 2
    )
    assert set(counts["normalisation"]) == {"nfkc-lower-quotes-whitespace-trim/1"}
    prov = read_table(scan.counts_table_path(cfg)).attrs["provenance"]["caption_counts"]
    assert "aliases" in prov["count_modes"] and "evidence_if_common" in prov["aliases"]


def test_punctuation_is_recorded_and_scans_afresh(tmp_path):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False,
                                            "normalise": "punctuation"})  # fmt: skip
    make_references(cfg)
    write_shards(cfg.data_dir / "corpus", [CAPTIONS])
    counts = scan.count_captions(cfg, workers=1, log=lambda _m: None).counts.set_index("slug")
    assert (
        counts.loc["face_off", "caption_count"] == 4
        and counts.loc["impression_sunrise", "caption_count"] == 1
    )
    assert set(counts["normalisation"]) == {"nfkc-lower-quotes-whitespace-trim/1+punctuation-to-space/1"}
    exact = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False})
    assert scan.partials_dir(cfg, scan.count_spec(cfg).titles) != scan.partials_dir(
        exact, scan.count_spec(exact).titles
    )


def test_a_references_table_without_aliases_is_refused(tmp_path):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False})
    make_references(cfg, references_frame().drop(columns="aliases"))
    write_shards(cfg.data_dir / "corpus", [CAPTIONS])
    with pytest.raises(KeyError, match=r"references.*no 'aliases' column.*re-run stage 01"):
        scan.count_captions(cfg, workers=1, log=lambda _m: None)
    plain = study_config(tmp_path, "c06b", frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False,
                                                      "count_modes": ["title", "title_creator"]})  # fmt: skip
    counts = scan.count_captions(plain, workers=1, log=lambda _m: None).counts
    assert "caption_count_aliases" not in counts.columns and "caption_count_title_creator" in counts.columns


def test_an_alias_cell_that_is_not_a_list_is_named(tmp_path):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False})
    refs = references_frame()
    refs["aliases"] = refs["aliases"].astype(object)
    refs.at[0, "aliases"] = "La Gioconda"
    refs["creator"] = None
    with pytest.raises(TypeError, match="mona_lisa.*list of strings"):
        scan.count_spec(cfg, refs)


#: aliases as Wikidata gives them (altLabel, P1476), some holding the title itself
WIKIDATA_LIKE = {
    "mona_lisa": ["La Gioconda", "La Joconde", "Portrait of Lisa Gherardini"],
    "face_off": ["Face Off"],
    "psycho": ["Psycho (1960 film)"],  # holds the title: no captions of its own
    "impression_sunrise": ["Impression, soleil levant"],
    "star_wars": ["Star Wars: Episode IV – A New Hope", "A New Hope"],
}


def demo_counts(tmp_path, matcher="ahocorasick_rs", **frequency):
    from iconicity_utils.demo import caption_corpus

    cfg = study_config(tmp_path, frequency={"matcher": matcher, **frequency})
    refs = references_frame()
    refs["aliases"] = [WIKIDATA_LIKE.get(s, []) for s in refs["slug"]]
    refs["creator"] = ["Leonardo da Vinci", "Vincent van Gogh", "Gustav Klimt", "Pablo Picasso", "Claude Monet",
                       "Édouard Manet", "James Cameron", "George Lucas", "Alfred Hitchcock", "John Woo",
                       "Norman Jewison", "Leni Riefenstahl"]  # fmt: skip
    make_references(cfg, refs)
    caption_corpus.build_demo_corpus(cfg)
    counts = scan.count_captions(cfg, log=lambda _m: None).counts
    return cfg, counts, caption_corpus


@pytest.mark.parametrize("matcher", ["ahocorasick_rs", "hyperscan"])
def test_the_demo_corpus_plants_every_mode(tmp_path, matcher):
    cfg, counts, caption_corpus = demo_counts(tmp_path, matcher)
    check = caption_corpus.compare_expected(cfg, counts)
    assert {"expected_title_creator", "expected_title_context", "expected_aliases"} <= set(check.columns)
    assert check["match"].all(), check[~check["match"]]
    c = counts.set_index("slug")
    busy = c[c["caption_count"] >= 8]
    assert busy["caption_ambiguity"].min() <= 0.2 and busy["caption_ambiguity"].max() >= 0.6  # varies
    assert c.loc["mona_lisa", "caption_count_aliases"] > c.loc["mona_lisa", "caption_count"]
    assert c.loc["face_off", "caption_count_aliases"] > c.loc["face_off", "caption_count"]
    assert c.loc["guernica", "caption_count_aliases"] == c.loc["guernica", "caption_count"]  # no aliases
    # the restored decoy: "Face Off" is weak, and a kind word is no evidence for it
    spec = scan.count_spec(cfg)
    face_off = list(c.index).index("face_off")
    assert count_modes(["face off hockey poster"], spec, matcher).modes[face_off, 3] == 0
    assert count_modes(["Face Off (1997) trailer"], spec, matcher).modes[face_off, 3] == 1
    assert all("hockey" not in t for t in c.loc["face_off", "alias_samples"])


def test_the_demo_corpus_counts_punctuation_variants_as_planned(tmp_path):
    import json

    cfg, _counts, caption_corpus = demo_counts(tmp_path, normalise="punctuation", count_modes=["title"])
    counts = scan.count_captions(cfg, log=lambda _m: None).counts.set_index("slug")
    expected = json.loads(caption_corpus.demo_expected_path(cfg).read_text())["expected"]
    for slug, row in counts.iterrows():
        assert row["caption_count"] == expected[slug]["caption_count_punctuation"], slug
    for slug in ("face_off", "impression_sunrise", "and_justice_for_all"):
        assert expected[slug]["caption_count_punctuation"] >= expected[slug]["caption_count"] + 2, slug
    assert expected["guernica"]["caption_count_punctuation"] == expected["guernica"]["caption_count"]
    from iconicity_utils.correlates import normalisation_sensitivity

    table = normalisation_sensitivity(cfg).set_index("slug")
    for slug, row in table.iterrows():
        want = (expected[slug]["caption_count"], expected[slug]["caption_count_punctuation"])
        assert (row["caption_count_exact"], row["caption_count_punctuation"]) == want, slug
    assert table.attrs["captions_read"] == table.attrs["captions_in_corpus"] > 0
