"""Stage 06 count modes: title with creator, with context, the ambiguity, the caption sample; against regexes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from correlates_fixtures import references_frame, slow_counts, slow_normalise, study_config, write_shards

from iconicity_utils.correlates import scan
from iconicity_utils.correlates.counting import count_modes
from iconicity_utils.correlates.modes import KIND_WORDS, build_spec, surnames

#: title, creator, year
WORKS = [
    ("Her", "Spike Jonze", 2013), ("Up", "Pete Docter", 2009), ("It", "Andy Muschietti", 2017),
    ("M*A*S*H", "Robert Altman", 1970), ("Amélie", "Jean-Pierre Jeunet", 2001), ("Jaws", "Steven Spielberg", 1975),
    ("Psycho", "Alfred Hitchcock", 1960), ("Olympia", "Édouard Manet", 1863), ("Olympia", "Leni Riefenstahl", None),
    ("Casablanca", "Michael Curtiz", 1942), ("The Matrix", "Lana Wachowski; Lilly Wachowski", 1999),
    ("Face/Off", "John Woo", 1997), ("Impression, Sunrise", "Claude Monet", 1872), ("Titanic", None, 1997),
]  # fmt: skip
CAPTIONS = [
    "Her (2013) movie poster, Joaquin Phoenix", "her new dress", "I gave her a ring", "Spike Jonze's Her",
    "pixar up poster", "cheer up!", "Up by Pete Docter", "UP - 2009", "look up at the sky", "up-cycled chair",
    "it is raining", "IT (2017) trailer", "it movie clown", "what is it", "Muschietti's It",
    "M*A*S*H tv still", "m*a*s*h dvd box", "mash potatoes", "M*A*S*H*", "Robert Altman M*A*S*H",
    "Amélie poster", "ame\u0301lie by jeunet", "AMÉLIE", "amelie", "shark jaws close up", "Jaws (1975) Spielberg",
    "jaws of life", "psycho killer", "“Psycho” Hitchcock scene", "psychology", "Olympia typewriter",
    "olympia by manet, museum d'orsay", "Olympia 1936 Riefenstahl film", "olympia 1863", "Casablanca travel ad",
    "casablanca (1942) blu-ray", "Curtiz’s “Casablanca”", "the matrix wachowski", "THE MATRIX DVD", "matrix algebra",
    "Face/Off Woo", "face off hockey", "Impression, Sunrise by Monet", "impression sunrise print", "Titanic 1997",
    "titanic painting", "a titanic effort", None, "", "moviestill of jaws", "print of olympia", "stilled jaws",
]  # fmt: skip


def rx(text: str) -> re.Pattern:
    t = slow_normalise(text)
    left = r"(?<!\w)" if re.match(r"\w", t[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", t[-1]) else ""
    return re.compile(left + re.escape(t) + right)


def slow_modes(captions, works):
    """Per work, one regex per title, surname, kind word and year: (title, creator, context, neither)."""
    texts = [slow_normalise(c) for c in captions]
    kinds = [rx(w) for w in KIND_WORDS]
    out = []
    for title, creator, year in works:
        t, names = rx(title), [rx(s) for s in surnames(creator)]
        y = rx(str(year)) if year else None
        hits = [x for x in texts if t.search(x)]
        has_c = [any(n.search(x) for n in names) for x in hits]
        has_x = [any(k.search(x) for k in kinds) or bool(y and y.search(x)) for x in hits]
        neither = sum(1 for c, x in zip(has_c, has_x, strict=True) if not (c or x))
        out.append((len(hits), sum(has_c), sum(has_x), neither))
    return out


def spec_of(works, k=3):
    return build_spec([w[0] for w in works], [w[1] for w in works], [w[2] for w in works], k)


def random_captions(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    words = ["her", "up", "it", "m*a*s*h", "amélie", "jaws", "psycho", "olympia", "casablanca", "the", "matrix",
             "face/off", "face", "off", "movie", "film", "painting", "still", "museum", "dvd", "blu-ray",
             "1942", "1997", "2009", "manet", "woo", "wachowski", "docter", "hitchcock", "monet", "impression,",
             "sunrise", "titanic", "x", "“", "”", "poster", "trailer"]  # fmt: skip
    return [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(n)]


@pytest.mark.parametrize("matcher", ["ahocorasick_rs", "hyperscan"])
@pytest.mark.parametrize("captions", [CAPTIONS, random_captions()], ids=["hard", "random"])
def test_every_mode_equals_a_regex_per_title(captions, matcher):
    spec = spec_of(WORKS)
    got = count_modes(captions, spec, matcher)
    want = slow_modes(captions, WORKS)
    title = got.counts[spec.title_pid].tolist()
    assert title == [w[0] for w in want]
    assert title == slow_counts(captions, [w[0] for w in WORKS])[0]  # title mode: today's count
    assert got.modes[:, :3].tolist() == [list(w[1:]) for w in want]
    assert got.modes[:, 3].tolist() == title  # no aliases: the aliases mode is the title mode


def test_the_hard_cases_per_mode():
    spec = spec_of(WORKS)
    got = count_modes(CAPTIONS, spec)
    table = {w[0] + ("" if w[2] else " (film)"): (int(got.counts[spec.title_pid[i]]), *map(int, got.modes[i, :3]))
             for i, w in enumerate(WORKS)}  # fmt: skip
    assert table["Her"] == (4, 1, 1, 2)  # "her new dress" and "I gave her a ring" are about something else
    assert table["Up"] == (7, 1, 2, 4)  # "cheer up!", "look up", "up-cycled", "shark jaws close up"
    assert table["Jaws"] == (5, 1, 1, 4)  # "shark jaws", "jaws of life"; "moviestill" is no kind word
    assert table["Olympia"] == (5, 1, 4, 1)  # the painting: Manet; museum, film, 1863, print
    assert table["Olympia (film)"] == (5, 1, 3, 2)  # the film: Riefenstahl; no year
    assert table["Casablanca"] == (3, 1, 1, 1)  # the travel ad has no evidence
    assert table["Impression, Sunrise"] == (
        1,
        1,
        0,
        0,
    )  # strict punctuation: "impression sunrise print" is none


def test_the_sample_is_deterministic_and_the_same_whatever_the_batches():
    spec = spec_of(WORKS, k=3)
    captions = random_captions()
    one = count_modes(captions, spec)
    many = count_modes(captions, spec, batch_rows=97)
    assert one.samples == many.samples and np.array_equal(one.modes, many.modes)
    texts = [slow_normalise(c) for c in captions]
    for i, (title, *_rest) in enumerate(WORKS):
        mine = [t for r, _k, t in one.samples if r == i]
        distinct = {c for c in captions if rx(title).search(slow_normalise(c))}
        assert len(mine) == min(3, len(distinct)) and set(mine) <= distinct
    assert texts  # the sample is of original captions, not normalised ones
    assert all(t in captions for _r, _k, t in one.samples)


def test_the_scan_writes_every_mode_the_ambiguity_and_the_samples(tmp_path):
    cfg = study_config(
        tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False, "sample_k": 2}
    )
    refs = references_frame()
    refs["creator"] = None
    refs.loc[refs.slug == "olympia_q737062", "creator"] = "Édouard Manet"
    refs.loc[refs.slug == "psycho", "creator"] = "Alfred Hitchcock"
    from correlates_fixtures import make_references

    make_references(cfg, refs)
    shards = [CAPTIONS[i : i + 9] for i in range(0, len(CAPTIONS), 9)]
    write_shards(cfg.data_dir / "corpus", shards)
    one = scan.count_captions(cfg, workers=1, log=lambda _m: None).counts.set_index("slug")
    works = [
        (t, c, None if pd.isna(y) else int(y))
        for t, c, y in zip(refs.label_clean, refs.creator, refs.year, strict=True)
    ]
    want = dict(zip(refs.slug, slow_modes(CAPTIONS, works), strict=True))
    for slug, (n, c, x, neither) in want.items():
        row = one.loc[slug]
        assert (row.caption_count, row.caption_count_title_creator, row.caption_count_title_context) == (
            n,
            c,
            x,
        )
        assert row.caption_ambiguity == pytest.approx(neither / n) if n else np.isnan(row.caption_ambiguity)
        assert len(row.caption_samples) == min(2, n)
    assert one.loc["psycho", "caption_count_title_creator"] == 1
    folder = scan.partials_dir(cfg, scan.count_spec(cfg).titles)
    for f in folder.glob("*.json"):
        f.unlink()
    pooled = scan.count_captions(cfg, workers=2, log=lambda _m: None).counts.set_index("slug")
    assert pooled.drop(columns="caption_samples").equals(one.drop(columns="caption_samples"))
    assert list(pooled["caption_samples"].map(list)) == list(one["caption_samples"].map(list))
