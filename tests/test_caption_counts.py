"""Stage 06 caption counts: normalisation, the hard cases, a slow reference counter, shards and resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from correlates_fixtures import make_references, references_frame, slow_counts, study_config, write_shards

from iconicity_utils.correlates import cli, corpus, scan
from iconicity_utils.correlates.counting import count_table
from iconicity_utils.correlates.matcher import SHORT_TITLE_BYTES, build_patterns, make_matcher
from iconicity_utils.correlates.normalise import normalise_array, normalise_batch, normalise_texts
from iconicity_utils.demo import caption_corpus

MATCHERS = ["ahocorasick_rs", "hyperscan"]


# ---- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The  Starry\tNight\n", "the starry night"),
        ("  MONA LISA  ", "mona lisa"),
        ("“Face/Off” ‘92", '"face/off" \'92'),
        ("Ｔｉｔａｎｉｃ", "titanic"),  # full width (NFKC)
        ("Ame\u0301lie", "amélie"),  # decomposed accent (NFKC composes)
        ("Star\u00a0Wars", "star wars"),  # no-break space
        ("ﬁlm", "film"),  # ligature
        ("ÉCOLE\u2003DES\u3000BEAUX", "école des beaux"),
        ("Impression, Sunrise", "impression, sunrise"),  # punctuation stays
        ("", ""),
    ],
)
def test_normalisation_examples(raw, normalised):
    assert normalise_texts([raw]) == [normalised]


def test_fast_batch_normalisation_equals_the_full_one():
    """ascii_lower on regular captions + the full path on the rest == the full path on everything."""
    rng = np.random.default_rng(1)
    pool = list("abcXYZ019 ,./-'\"") + [
        "  ",
        "\t",
        "\n",
        "é",
        "É",
        "ß",
        "’",
        "“",
        "\u00a0",
        "ﬁ",
        "Ｔ",
        "\u0301",
        "_",
    ]
    captions = ["".join(rng.choice(pool, size=rng.integers(0, 14))) for _ in range(3000)]
    captions += [None, " lead", "trail ", "plain ascii words", ""]
    arr = pa.array(captions, pa.string())
    fast, n_slow = normalise_batch(arr)
    assert fast.to_pylist() == normalise_array(arr).to_pylist()
    assert 0 < n_slow < len(captions)  # some captions took the fast path, some the full one
    sliced = arr.slice(17, 500)  # a slice has non-zero offsets into its buffers
    assert normalise_batch(sliced)[0].to_pylist() == normalise_array(sliced).to_pylist()
    large = arr.cast(pa.large_string())
    assert normalise_batch(large)[0].to_pylist() == fast.to_pylist()


# ---- counting: the hard cases -------------------------------------------------------------------

TITLES = ["Titanic", "Face/Off", "Mona Lisa", "Star Wars", "The Godfather", "The Godfather Part II",
          "...And Justice for All", "Amélie", "Psycho"]  # fmt: skip
HARD = [
    ("titanically large", {}),  # a title inside a longer word
    ("Titanic's iceberg", {"Titanic": 1}),  # an apostrophe is a boundary
    ("psychology and psychotic", {}),
    ("Face/Off poster", {"Face/Off": 1}),  # punctuation inside the title
    ("face off hockey", {}),  # ... dropped: no match
    ("face / off", {}),
    ("MONA LISA print", {"Mona Lisa": 1}),  # different case
    ("mona lisa, Mona Lisa, MONA LISA", {"Mona Lisa": 1}),  # a caption repeating a title counts once
    ("Mona Lisa", {"Mona Lisa": 1}),  # an exact caption
    ("  mona   LISA ", {"Mona Lisa": 1}),  # exact after normalisation
    ("mona lisas smile", {}),
    ("émona lisa", {}),  # a non-ASCII word character is no boundary
    ("mona lisaé", {}),
    ("«Mona Lisa»", {"Mona Lisa": 1}),  # non-ASCII punctuation is one
    ("star warship", {}),
    ("Star Wars: A New Hope", {"Star Wars": 1}),
    ("The Godfather Part II (1974)", {"The Godfather": 1, "The Godfather Part II": 1}),  # overlapping titles
    ("x...And Justice for All", {"...And Justice for All": 1}),  # a punctuation edge has no boundary
    ("and justice for all", {}),
    ("Ame\u0301lie", {"Amélie": 1}),
    ("AMÉLIE!", {"Amélie": 1}),
    ("ＴＩＴＡＮＩＣ", {"Titanic": 1}),
    ("“Psycho” (1960)", {"Psycho": 1}),
    (None, {}),
    ("", {}),
]
EXACT = {
    "Mona Lisa": 2,
    "Amélie": 1,
    "Titanic": 1,
}  # "Mona Lisa", "  mona   LISA ", "Ame\u0301lie", full width


@pytest.mark.parametrize("matcher", MATCHERS)
def test_the_hard_cases(matcher):
    captions = [c for c, _ in HARD]
    counts, exact = count_table(captions, TITLES, matcher=matcher)
    expected = {t: sum(hits.get(t, 0) for _, hits in HARD) for t in TITLES}
    assert dict(zip(TITLES, counts, strict=True)) == expected
    assert dict(zip(TITLES, exact, strict=True)) == {t: EXACT.get(t, 0) for t in TITLES}
    assert (counts, exact) == slow_counts(captions, TITLES)


SHORT = ["It", "Up", "Her", "Jaws", "C++", "Up!"]
SHORT_CAPTIONS = [
    ("it", {"It": 1}), ("It is", {"It": 1}), ("with it", {"It": 1}), ("(it)", {"It": 1}), ("it's", {"It": 1}),
    ("item", {}), ("with", {}), ("«it»", {"It": 1}), ("\x01it", {"It": 1}), ("it\x7f", {"It": 1}), ("cup", {}),
    ("up-to-date", {"Up": 1}), ("UP", {"Up": 1}), ("setup", {}), ("other", {}), ("HER!", {"Her": 1}),
    ("jawsome", {}), ("Jaws 2", {"Jaws": 1}), ("c++ code", {"C++": 1}), ("abc++", {}), ("up! up!", {"Up": 1, "Up!": 1}),
    ("tab\tit", {"It": 1}), ("it\u2003up", {"It": 1, "Up": 1}), ("“it”", {"It": 1}), ("é it", {"It": 1}),
    ("éit", {}), ("_it", {}), ("it_", {}), ("x.it", {"It": 1}),
]  # fmt: skip


@pytest.mark.parametrize("matcher", MATCHERS)
def test_short_titles_at_every_kind_of_boundary(matcher):
    """Short titles take another path (searched with the byte before them); the counts are the same."""
    captions = [c for c, _ in SHORT_CAPTIONS]
    counts, exact = count_table(captions, SHORT, matcher=matcher)
    assert dict(zip(SHORT, counts, strict=True)) == {
        t: sum(h.get(t, 0) for _, h in SHORT_CAPTIONS) for t in SHORT
    }
    assert (counts, exact) == slow_counts(captions, SHORT)
    assert dict(zip(SHORT, exact, strict=True))["It"] == 1  # "it"; "It is" is not the title
    pats = build_patterns(SHORT)
    short = [p for p, n in zip(pats.patterns, pats.byte_lengths, strict=True) if n <= SHORT_TITLE_BYTES]
    assert short == ["c++", "her", "it", "jaws", "up", "up!"]
    # a short title opening one of the last captions of a batch's buffer (read byte by byte)
    assert count_table(["x", "it"], ["It"], matcher=matcher)[0] == [1]
    assert count_table(["abcdef", "up", "her"], ["Up", "Her"], matcher=matcher)[0] == [1, 1]
    # every one of them is searched after each of the 32 non-word bytes a regular caption can hold
    assert int(make_matcher(pats, "ahocorasick_rs")._main_shift.sum()) == 6 * 32


@pytest.mark.parametrize("matcher", MATCHERS)
def test_a_match_across_two_captions_is_no_match(matcher):
    # the batch's buffer holds the captions back to back: "...tita" + "nic..." reads "titanic"
    counts, _ = count_table(["a tita", "nic b", "mona", "lisa"], ["Titanic", "Mona Lisa"], matcher=matcher)
    assert counts == [0, 0]


@pytest.mark.parametrize("matcher", MATCHERS)
def test_against_a_slow_regex_per_title_on_random_captions(matcher):
    rng = np.random.default_rng(7)
    titles = ["Up", "It", "Her", "The Kiss", "Kiss", "Star Wars", "Face/Off", "Amélie", "2001: A Space Odyssey",
              "Impression, Sunrise", "...And Justice for All", "Olympia", "O'Brien", "Übermensch", "C++"]  # fmt: skip
    pieces = [w for t in titles for w in t.split()] + [
        "up", "it", "kiss", "kisses", "star", "wars", "warship", "face", "off", "/", ",", ":", "...", "the",
        "AMÉLIE", "Ame\u0301lie", "\u00a0", "  ", "\t", "’", "'", "“", "x", "é", "_", "cup", "item", "2001",
        "ÜBERMENSCH", "c++", "olympian", "O’Brien", "ＫＩＳＳ",
    ]  # fmt: skip
    captions = []
    for _ in range(3000):
        k = int(rng.integers(0, 9))
        seps = rng.choice([" ", "", " ", ", "], size=k)
        captions.append(
            "".join(str(w) + str(s) for w, s in zip(rng.choice(pieces, size=k), seps, strict=True))
        )
    counts, exact = count_table(captions, titles, matcher=matcher, batch_rows=257)
    expected_counts, expected_exact = slow_counts(captions, titles)
    assert counts == expected_counts
    assert exact == expected_exact
    assert sum(counts) > 300 and sum(exact) > 0  # the random captions do hold titles


def test_the_matcher_reports_every_raw_match_overlapping_ones_too():
    pats = build_patterns(["the kiss", "kiss", "it", "Star Wars"])
    data = np.frombuffer(b"the kiss, kissing it; star wars it", dtype=np.uint8)
    pid, start = make_matcher(pats, "ahocorasick_rs").find(data)
    found = sorted(zip(pid.tolist(), start.tolist(), strict=True))
    # the kiss@0 and kiss@4 overlap; kiss@10 inside "kissing" is a raw match (boundaries come later)
    assert found == [(0, 18), (0, 32), (1, 4), (1, 10), (2, 22), (3, 0)]


def test_a_removed_matcher_is_refused_by_name():
    """pyahocorasick gave the same counts as ahocorasick_rs, slower, and was removed."""
    with pytest.raises(ValueError, match="unknown matcher 'pyahocorasick'.*correlates.frequency.matcher"):
        make_matcher(build_patterns(["Titanic"]), "pyahocorasick")


def test_empty_and_duplicate_titles():
    counts, exact = count_table(["Olympia", "olympia poster"], ["Olympia", "", "OLYMPIA"])
    assert counts == [2, 0, 2] and exact == [1, 0, 1]
    pats = build_patterns(["Olympia", "OLYMPIA", ""])
    assert pats.patterns == ("olympia",) and pats.index == (0, 0, -1)


# ---- shards on disk, resume, --shard i/n ----------------------------------------------------------

SHARDS = [
    ["Mona Lisa", "the MONA LISA print", "titanically"],
    ["Titanic (1997)", "a face off", "Face/Off poster", "Face/Off"],
    ["Star Wars: Star Wars", None, "psycho killer", "psychology"],
    ["...And Justice for All", "Olympia", "olympia and olympia", "the kiss"],
    ["Guernica!", "GUERNICA", "guernicas"],
]


def shard_config(tmp_path, **frequency):
    cfg = study_config(
        tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False, **frequency}
    )
    make_references(cfg)
    write_shards(cfg.data_dir / "corpus", SHARDS)
    return cfg


def expected_shard_counts():
    refs = references_frame()
    captions = [c for shard in SHARDS for c in shard]
    counts, exact = slow_counts(captions, list(refs["label_clean"]))
    return dict(zip(refs["slug"], counts, strict=True)), dict(zip(refs["slug"], exact, strict=True))


def counted(result) -> tuple[dict, dict]:
    t = result.counts.set_index("slug")
    return t["caption_count"].astype(int).to_dict(), t["exact_caption_count"].astype(int).to_dict()


def test_scan_counts_every_shard_and_writes_the_table(tmp_path):
    cfg = shard_config(tmp_path)
    logs = []
    result = scan.count_captions(cfg, log=logs.append)
    assert result.complete and result.shards_scanned == 5 and result.rows_scanned == 18
    assert counted(result) == expected_shard_counts()
    assert counted(result)[0]["olympia_q737062"] == 2 == counted(result)[0]["olympia_q1415219"]
    table = scan.read_counts(cfg)
    prov = table.attrs["provenance"]["caption_counts"]
    assert prov["rows_scanned"] == 18 and prov["captions_nonempty"] == 17 and prov["shards_total"] == 5
    assert (
        prov["corpus"] == "test captions"
        and prov["matcher"] == "ahocorasick_rs"
        and prov["scan_seconds"] >= 0
    )
    partials = sorted(result.partials.iterdir())
    assert len(partials) == 5 and all(p.suffix == ".json" for p in partials)  # no temporary file left
    record = json.loads(partials[0].read_text())
    assert {"shard", "size", "rows", "row_groups", "fingerprint", "counts", "seconds"} <= set(record)


def test_an_interrupted_scan_resumes_without_rereading_finished_shards(tmp_path, monkeypatch):
    cfg = shard_config(tmp_path)
    opened: list[str] = []
    real_open = scan.open_batches

    def flaky(path, *args):
        if path.name not in opened:
            opened.append(path.name)
        if len(opened) == 3:
            raise KeyboardInterrupt("simulated interruption while reading the third shard")
        yield from real_open(path, *args)

    monkeypatch.setattr(scan, "open_batches", flaky)
    with pytest.raises(KeyboardInterrupt):
        scan.count_captions(cfg, log=lambda _m: None)
    assert opened == ["part_00.parquet", "part_01.parquet", "part_02.parquet"]
    folder = scan.partials_dir(cfg, build_patterns(list(references_frame()["label_clean"])))
    assert len(list(folder.glob("*.json"))) == 2  # the two finished shards, nothing half-written
    assert not scan.counts_table_path(cfg).exists()

    def recorded(path, *args):
        opened.append(path.name)
        yield from real_open(path, *args)

    opened.clear()
    monkeypatch.setattr(scan, "open_batches", recorded)
    result = scan.count_captions(cfg, log=lambda _m: None)
    assert sorted(set(opened)) == ["part_02.parquet", "part_03.parquet", "part_04.parquet"]
    assert result.shards_reused == 2 and result.shards_scanned == 3 and result.complete
    assert counted(result) == expected_shard_counts()

    opened.clear()
    again = scan.count_captions(cfg, log=lambda _m: None)
    assert opened == [] and again.shards_scanned == 0 and again.shards_reused == 5
    assert counted(again) == expected_shard_counts()


def test_a_changed_shard_is_scanned_again(tmp_path):
    cfg = shard_config(tmp_path)
    scan.count_captions(cfg, log=lambda _m: None)
    changed = [*SHARDS[:4], ["Guernica!", "GUERNICA", "guernicas", "Guernica", "mona lisa"]]
    write_shards(cfg.data_dir / "corpus", changed)
    result = scan.count_captions(cfg, log=lambda _m: None)
    assert result.shards_scanned == 1 and result.shards_reused == 4
    assert counted(result)[0]["guernica"] == 3 and counted(result)[0]["mona_lisa"] == 3


def test_shard_parts_add_up_to_the_whole(tmp_path):
    cfg = shard_config(tmp_path)
    first = scan.count_captions(cfg, shard="1/2", log=lambda _m: None)
    assert not first.complete and first.counts is None and first.shards_scanned == 3
    assert first.missing == ["corpus/part_01.parquet", "corpus/part_03.parquet"]
    assert not scan.counts_table_path(cfg).exists()
    with pytest.raises(scan.IncompleteScan, match="no caption counts"):
        scan.read_counts(cfg)
    second = scan.count_captions(cfg, shard="2/2", log=lambda _m: None)
    assert second.complete and second.shards_scanned == 2 and second.shards_done == 5
    assert counted(second) == expected_shard_counts()
    assert corpus.select_shards(list("abcde"), "2/2") == ["b", "d"]


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "x", "1-2"])
def test_bad_shard_specs_are_refused(spec):
    with pytest.raises(ValueError, match="--shard"):
        corpus.parse_shard_spec(spec)


@pytest.mark.slow
def test_a_process_pool_gives_the_same_counts(tmp_path):
    cfg = shard_config(tmp_path, workers=2, matcher="ahocorasick_rs")
    result = scan.count_captions(cfg, log=lambda _m: None)
    assert result.complete and counted(result) == expected_shard_counts()


def test_clear_errors_for_a_missing_column_or_no_shards(tmp_path):
    cfg = shard_config(tmp_path, caption_column="caption")
    with pytest.raises(KeyError, match="caption column 'caption' is not in .*part_00.parquet.*TEXT"):
        scan.count_captions(cfg, log=lambda _m: None)
    cfg = shard_config(tmp_path / "other", shards="nowhere/*.parquet")
    with pytest.raises(FileNotFoundError, match="no caption shards match"):
        scan.count_captions(cfg, log=lambda _m: None)


def test_the_command_line_scans_part_of_the_shards(tmp_path, capsys):
    cfg = shard_config(tmp_path)
    assert cli.captions_main(["--config", cfg.source, "--shard", "1/2", "--workers", "1"]) == 0
    assert "3/5 shards done" in capsys.readouterr().out
    assert cli.captions_main(["--config", cfg.source, "--status"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shards_done"] == 3 and report["missing"] == [
        "corpus/part_01.parquet",
        "corpus/part_03.parquet",
    ]
    assert cli.captions_main(["--config", cfg.source, "--shard", "2/2", "--workers", "1"]) == 0
    assert scan.counts_table_path(cfg).is_file()


# ---- the demo corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("matcher", MATCHERS)
def test_the_demo_corpus_is_counted_as_constructed(tmp_path, matcher):
    cfg = study_config(tmp_path, frequency={"matcher": matcher})
    make_references(cfg)
    folder = caption_corpus.build_demo_corpus(cfg)
    shards = sorted(folder.glob("demo_captions_*.parquet"))
    assert len(shards) == 4
    result = scan.count_captions(cfg, log=lambda _m: None)
    check = caption_corpus.compare_expected(cfg, result.counts)
    assert check["match"].all(), check[~check["match"]]
    assert corpus.compare_expected(cfg, result.counts).equals(check)  # the stage's way: the provider by name
    assert (check["expected_count"] > 0).sum() >= 8 and (check["expected_exact"] > 0).sum() >= 5
    captions = pd.concat([pd.read_parquet(s) for s in shards])["TEXT"].tolist()
    assert (
        "psychology textbook cover" in captions and "face off hockey poster" in captions
    )  # decoys are there
    stamp = [s.stat().st_mtime_ns for s in shards]
    caption_corpus.build_demo_corpus(cfg)  # same references: nothing is rebuilt
    corpus.prepare_corpus(cfg)  # nor through the provider
    assert [s.stat().st_mtime_ns for s in shards] == stamp


def test_invalid_utf8_does_not_stop_a_scan():
    """A shard with a caption that is not valid UTF-8: the bad bytes become U+FFFD, the rest counts."""
    data = b"mona lisa\xff poster" + b"the mona lisa"
    offsets = np.array([0, 17, 30], dtype=np.int32)
    arr = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])
    assert count_table(arr, ["Mona Lisa"]) == ([2], [0])
    assert normalise_array(arr).to_pylist() == ["mona lisa\ufffd poster", "the mona lisa"]
