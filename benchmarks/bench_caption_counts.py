"""Caption-count speed (stage 06): one pass over >= 10 million captions with 767 titles, against a
bare DuckDB read of the caption column, both on every core.

The corpus is synthetic and LAION-like, generated once into ``benchmarks/results/caption_corpus/``
(git-ignored; reused while its manifest matches): captions of 1-40 words drawn by frequency from
wordfreq's English list (mean ~10 words, 56 bytes), some capitalised words, punctuation tokens,
~8 % of captions with a non-ASCII token (accents, curly quotes, dashes, CJK, ligatures), ~3 %
with irregular white space, and ~2 % holding one of the 767 titles.  The titles are the 39
distinct demo titles, 12 short common-word titles ("Up", "It", "Her", ...: they match inside many
words) and 716 generated ones with a Wikidata-like length mix.  Parquet shards of 1 million rows,
row groups of 128 Ki rows, snappy.

Measured, interleaved ``--repeats`` times (best of each kept, so all see the same machine load):

- **bare DuckDB read** of the caption column on every core: ``max(strlen(TEXT))`` over the glob
  (every page read and decoded) and the column fetched as Arrow record batches (strings
  materialised); the faster one is the baseline;
- **the counting scan** (``iconicity_utils.correlates.count_captions``, the real front door: process
  pool on every core, per-shard partials written), from an empty partials folder, one row per
  matcher (``--matchers``: ``ahocorasick_rs`` and ``hyperscan``, whose counts must agree), every
  count mode in the same pass (each title has a creator and a year, so ~1,300 evidence patterns
  join the 767 titles);
- one process on one core (``workers=1``) over two shards, for the per-core rate;
- the per-caption loop with the same semantics (Python normalisation, the same Aho-Corasick
  package per caption, boundary checks), one process, on ``--naive`` captions;
- **where each nanosecond per caption goes** on one core (Arrow one thread; :func:`breakdown`),
  over the first shard, per matcher, each step timed alone (best of ``--repeats``): the read into
  Arrow, the normalisation (``ascii_lower``, the irregular captions in full), the scan (the
  automaton over the normalised buffer), the boundary checks and one hit per (caption, pattern)
  (``count_batch`` without modes, less the two before), the count modes (evidence, aliases, the
  mapping to references, the caption sample: ``count_batch`` with modes, less without); and one
  pass of numpy over the bytes (the memory floor).  The limit on this CPU is read + normalise +
  scan: what no bookkeeping can go below.

Rates are captions per wall second and per CPU second (threads and pool workers included).

It reports captions/s, the ratio scan / bare read (target >= 0.25), and the time projected for
2.3 billion captions on 16 cores (linear in cores: the scan is embarrassingly parallel over
shards).  Results go to ``benchmarks/results/bench_caption_counts.json``.

Usage::

    .venv/bin/python benchmarks/bench_caption_counts.py                    # 10 M captions (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_caption_counts.py --captions 2000000 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CORPUS = RESULTS / "caption_corpus"
ROWS_PER_SHARD = 1_000_000
ROW_GROUP = 131_072
PROJECT_CAPTIONS = 2.3e9
PROJECT_CORES = 16

DEMO_TITLES = [
    "Mona Lisa", "The Starry Night", "The Scream", "The Persistence of Memory", "The Last Supper",
    "Girl with a Pearl Earring", "Guernica", "The Birth of Venus", "The Night Watch", "Las Meninas", "The Kiss",
    "Liberty Leading the People", "The Garden of Earthly Delights", "Olympia", "American Gothic", "Nighthawks",
    "Impression, Sunrise", "The Son of Man", "Wanderer above the Sea of Fog", "The Third of May 1808",
    "The Godfather", "Titanic", "Star Wars", "The Simpsons", "Game of Thrones", "The Matrix", "Breaking Bad",
    "Pulp Fiction", "2001: A Space Odyssey", "Spirited Away", "Casablanca", "The Shawshank Redemption", "Psycho",
    "Metropolis", "Seven Samurai", "The Seventh Seal", "Amélie", "Face/Off", "Olympia", "...And Justice for All",
]  # fmt: skip
SHORT_COMMON = ["Up", "It", "Her", "Us", "Cars", "Home", "Love", "Friends", "Lost", "House", "Heat", "Jaws"]
NON_ASCII = [
    "café",
    "naïve",
    "Ümlaut",
    "—",
    "’s",
    "“quoted”",
    "é",
    "日本",
    "ﬁne",
    "résumé",
    "–",
    "…",
    "Ｂｉｇ",
    "😀",
]
PUNCT = [",", "-", "|", "&", "(", ")", ":", "/", "!", ".", "'s"]


def make_titles(words: list[str], n: int = 767, seed: int = 1) -> list[str]:
    """The 39 distinct demo titles, 12 short common-word titles, and generated ones up to ``n``."""
    rng = np.random.default_rng(seed)
    titles = list(dict.fromkeys(DEMO_TITLES)) + SHORT_COMMON
    pool = words[200:30000]
    while len(titles) < n:
        k = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.15, 0.3, 0.25, 0.15, 0.1, 0.05]))
        w = [str(x).capitalize() for x in rng.choice(pool, size=k)]
        if k > 1 and rng.random() < 0.4:
            w[0] = "The"
        title = " ".join(w)
        r = rng.random()
        if k > 2 and r < 0.08:
            title = title.replace(" ", ": ", 1)
        elif k > 1 and r < 0.14:
            title = title.replace(" ", ", ", 1)
        if title not in titles:
            titles.append(title)
    return titles


def generate_corpus(n_captions: int, titles: list[str], words: list[str], seed: int = 0) -> list[Path]:
    """Write the synthetic shards (Arrow all the way: a ListArray of tokens joined by spaces)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from wordfreq import word_frequency

    manifest = {
        "captions": n_captions,
        "titles": titles,
        "seed": seed,
        "rows_per_shard": ROWS_PER_SHARD,
        "v": 2,
    }
    mpath = CORPUS / "manifest.json"
    if mpath.is_file() and json.loads(mpath.read_text()) == manifest:
        return sorted(CORPUS.glob("part_*.parquet"))
    shutil.rmtree(CORPUS, ignore_errors=True)
    CORPUS.mkdir(parents=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    freq = np.array([word_frequency(w, "en") for w in words])
    vocab = words + [w.capitalize() for w in words]
    p_vocab = np.concatenate([freq * 0.85, freq * 0.15])
    extra = PUNCT + NON_ASCII + titles + [""]  # "" joins into a double space
    p_extra = np.array([0.03 / len(PUNCT)] * len(PUNCT) + [0.008 / len(NON_ASCII)] * len(NON_ASCII)
                       + [0.002 / len(titles)] * len(titles) + [0.003])  # fmt: skip
    p = np.concatenate([p_vocab / p_vocab.sum() * (1 - p_extra.sum()), p_extra])
    tokens = pa.array(vocab + extra, pa.string())
    paths = []
    for s, start in enumerate(range(0, n_captions, ROWS_PER_SHARD)):
        n = min(ROWS_PER_SHARD, n_captions - start)
        lengths = np.clip(rng.poisson(9, n) + 1, 1, 40)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        ids = rng.choice(len(p), size=int(offsets[-1]), p=p)
        lists = pa.ListArray.from_arrays(pa.array(offsets), tokens.take(pa.array(ids)))
        text = pc.binary_join(lists, " ")
        path = CORPUS / f"part_{s:03d}.parquet"
        pq.write_table(pa.table({"TEXT": text}), path, row_group_size=ROW_GROUP, compression="snappy")
        paths.append(path)
    mpath.write_text(json.dumps(manifest))
    print(f"generated {n_captions:,} captions in {len(paths)} shards in {time.perf_counter() - t0:.0f} s")
    return paths


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process, its threads and its finished children)``."""
    w0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    out = fn()
    return out, time.perf_counter() - w0, (time.process_time() - c0) + (_children_cpu() - k0)


def bare_duckdb(glob: str, threads: int) -> dict[str, tuple[float, float]]:
    """Captions per wall second and per CPU second of two bare reads of the column."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    out = {}
    (n, _), wall, cpu = timed(
        lambda: con.sql(f"SELECT count(*), max(strlen(TEXT)) FROM read_parquet('{glob}')").fetchall()[0]
    )
    out["duckdb_strlen"] = (n / wall, n / cpu)

    def fetch() -> int:
        return sum(
            b.num_rows for b in con.sql(f"SELECT TEXT FROM read_parquet('{glob}')").to_arrow_reader(1 << 17)
        )

    rows, wall, cpu = timed(fetch)
    out["duckdb_arrow"] = (rows / wall, rows / cpu)
    con.close()
    return out


def scan(cfg_factory, matcher: str, workers: int, shard: str | None = None):
    """The real front door on an empty partials folder: ``((wall rate, CPU rate), counts)``."""
    from iconicity_utils.correlates import count_captions

    cfg = cfg_factory(matcher)
    shutil.rmtree(cfg.path("cache"), ignore_errors=True)
    result, wall, cpu = timed(lambda: count_captions(cfg, workers=workers, shard=shard, log=lambda m: None))
    if workers > 1:  # pool workers are forked by a server process: their CPU time comes from the scan itself
        cpu += result.cpu_seconds
    rows = result.rows_scanned
    counts = None if result.counts is None else result.counts["caption_count"].astype(int).tolist()
    return (rows / wall, rows / cpu), counts


def naive_loop(path: Path, titles: list[str], limit: int) -> tuple[float, float]:
    """The per-caption loop the issue measured, with our semantics: Python normalisation of each
    caption, the Aho-Corasick automaton over it (ahocorasick_rs on a str: character offsets), the
    boundary checks, a set per caption.  One process."""
    import unicodedata

    import ahocorasick_rs as ar
    import pyarrow.parquet as pq

    from iconicity_utils.correlates.matcher import build_patterns
    from iconicity_utils.correlates.normalise import QUOTES

    pats = build_patterns(titles)
    ac = ar.AhoCorasick(list(pats.patterns), matchkind=ar.MatchKind.Standard)
    quotes = str.maketrans(QUOTES)
    captions = pq.read_table(path, columns=["TEXT"]).column(0).slice(0, limit).to_pylist()

    def word(ch: str) -> bool:
        return ch.isalnum() or ch == "_"

    def run() -> int:
        counts = np.zeros(len(pats), np.int64)
        for c in captions:
            t = " ".join(unicodedata.normalize("NFKC", c).lower().translate(quotes).split())
            seen = set()
            for i, s, end in ac.find_matches_as_indexes(t, overlapping=True):
                if pats.starts_word[i] and s > 0 and word(t[s - 1]):
                    continue
                if pats.ends_word[i] and end < len(t) and word(t[end]):
                    continue
                seen.add(i)
            counts[list(seen)] += 1
        return len(captions)

    n, wall, cpu = timed(run)
    return n / wall, n / cpu


def _best_interleaved(steps: dict, repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` rounds of every step, in seconds; the steps take turns within a
    round, so a busy moment of the shared cores hits them alike (one core: Arrow's threads limited)."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def breakdown(cfg, path: Path, matcher: str, repeats: int, rows: int = 500_000) -> dict[str, float]:
    """Nanoseconds per caption of each step of the count on one core, over one shard (module docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from iconicity_utils.correlates.counting import count_batch
    from iconicity_utils.correlates.matcher import make_matcher
    from iconicity_utils.correlates.normalise import as_text, irregular_rows, normalise_array, text_buffers
    from iconicity_utils.correlates.scan import count_spec

    pa.set_cpu_count(1)
    spec = count_spec(cfg)
    m = make_matcher(spec.patterns, matcher)
    batch_rows = cfg.correlates.frequency.batch_rows

    def read() -> list:
        pf = pq.ParquetFile(path, memory_map=True)
        groups = list(range(min(pf.num_row_groups, -(-rows // pf.metadata.row_group(0).num_rows))))
        batches = pf.iter_batches(
            batch_size=batch_rows, row_groups=groups, columns=["TEXT"], use_threads=False
        )
        return [b.column(0) for b in batches]

    batches = [as_text(b) for b in read()]
    n = sum(len(b) for b in batches)

    def normalise() -> list:
        out = []
        for arr in batches:
            mask = irregular_rows(*text_buffers(arr))
            out.append(
                (text_buffers(pc.ascii_lower(arr)), text_buffers(normalise_array(arr.filter(pa.array(mask)))))
            )
        return out

    normalised = normalise()

    def scan_only() -> None:
        for (lo_off, lo), (ir_off, ir) in normalised:
            m.find_regular(lo_off, lo)
            m.find(ir, ir_off)

    steps = _best_interleaved(
        {
            "read_into_arrow": read,
            "memory_floor_one_numpy_pass": lambda: [int(text_buffers(a)[1].sum()) for a in batches],
            "normalise": normalise,
            "scan_automaton": scan_only,
            "plain": lambda: [count_batch(a, spec.patterns, m) for a in batches],
            "full": lambda: [count_batch(a, spec.patterns, m, spec) for a in batches],
        },
        repeats,
    )
    plain, full = steps.pop("plain"), steps.pop("full")
    steps["boundaries_and_one_hit_per_caption"] = plain - steps["normalise"] - steps["scan_automaton"]
    steps["count_modes_aliases_samples"] = full - plain
    steps["total_read_and_count"] = steps["read_into_arrow"] + full
    steps["limit_read_normalise_scan"] = (
        steps["read_into_arrow"] + steps["normalise"] + steps["scan_automaton"]
    )
    pa.set_cpu_count(os.cpu_count() or 1)
    return {k: round(v / n * 1e9, 1) for k, v in steps.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--matchers", default="ahocorasick_rs,hyperscan", help="matchers to scan with (default: %(default)s)"
    )
    parser.add_argument(
        "--naive", type=int, default=200_000, help="captions for the per-caption loop (0: skip)"
    )
    parser.add_argument(
        "--breakdown-rows", type=int, default=500_000, help="captions of the one-core breakdown"
    )
    parser.add_argument(
        "--breakdown-repeats", type=int, default=5, help="interleaved rounds of the breakdown"
    )
    args = parser.parse_args()

    import pandas as pd
    from study_configs import write_study_config
    from wordfreq import top_n_list

    from iconicity_utils.core.io import write_table

    print("machine:", describe_machine())
    load_before = os.getloadavg()
    words = [w for w in top_n_list("en", 30000) if w.isalpha()]
    titles = make_titles(words)
    shards = generate_corpus(args.captions, titles, words)
    glob = str(CORPUS / "part_*.parquet")
    work = Path(tempfile.mkdtemp(prefix="bench_cc_"))
    rng = np.random.default_rng(
        2
    )  # a creator (a common word as surname) and a year per title: every count mode
    refs = pd.DataFrame(
        {"slug": [f"t{i:03d}" for i in range(len(titles))], "kind": "static", "label_clean": titles,
         "creator": [f"Anna {words[k]}" for k in rng.integers(500, 20000, len(titles))],
         "year": rng.integers(1500, 2021, len(titles))}
    )  # fmt: skip
    # aliases: a third of the titles have one or two (1-3 words; common ones are weak, as in a study)
    refs["aliases"] = [[" ".join(rng.choice(words[100:20000], int(rng.integers(1, 4)))).title()
                        for _ in range(int(rng.integers(1, 3)))] if i % 3 == 0 else [] for i in range(len(titles))]  # fmt: skip

    def cfg_factory(matcher: str):
        cfg = write_study_config(
            work,
            f"bench-{matcher}",
            correlates={
                "frequency": {
                    "corpus": "bench",
                    "shards": glob,
                    "matcher": matcher,
                    "synthetic_corpus": False,
                }
            },
        )
        if not cfg.references_table.is_file():
            write_table(refs, cfg.references_table)
        return cfg

    matchers = args.matchers.split(",")
    best: dict[str, tuple[float, float]] = {}
    runs: dict[str, list] = {}

    def keep(key: str, rates: tuple[float, float]) -> None:
        runs.setdefault(key, []).append(rates)
        old = best.get(key, (0.0, 0.0))
        best[key] = (max(old[0], rates[0]), max(old[1], rates[1]))

    counts_by_matcher = {}
    for rep in range(args.repeats):  # interleaved: every measurement sees the same machine load
        for name, rates in bare_duckdb(glob, args.workers).items():
            keep(name, rates)
        for m in matchers:
            rates, counts = scan(cfg_factory, m, args.workers)
            keep(f"scan_{m}", rates)
            counts_by_matcher[m] = counts
        print(f"repeat {rep + 1}: " + ", ".join(f"{k} {v[0] / 1e6:.2f} M/s" for k, v in best.items()))
    for m in matchers:  # one process, one core, two shards
        rates, _ = scan(cfg_factory, m, 1, shard=f"1/{max(1, len(shards) // 2)}")
        keep(f"one_process_{m}", rates)
    if args.naive:
        keep("per_caption_loop", naive_loop(shards[0], titles, args.naive))
    ns = {
        m: breakdown(cfg_factory(m), shards[0], m, args.breakdown_repeats, args.breakdown_rows)
        for m in matchers
    }
    same = len({tuple(c) for c in counts_by_matcher.values() if c is not None}) == 1
    bare_key = max(("duckdb_strlen", "duckdb_arrow"), key=lambda k: best[k][0])
    bare_wall, bare_cpu = best[bare_key]
    report = {
        "machine": describe_machine(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "captions": args.captions,
        "titles": len(titles),
        "shards": len(shards),
        "workers": args.workers,
        "best_captions_per_s_wall_and_per_cpu_s": best,
        "runs": runs,
        "bare_read_baseline": bare_key,
        "ratio_wall": {m: best[f"scan_{m}"][0] / bare_wall for m in matchers},
        "ratio_cpu": {m: best[f"scan_{m}"][1] / bare_cpu for m in matchers},
        "projected_minutes_2_3e9_16_dedicated_cores": {
            m: PROJECT_CAPTIONS / (best[f"scan_{m}"][1] * PROJECT_CORES) / 60 for m in matchers
        },
        "projected_minutes_2_3e9_16_cores_from_wall": {
            m: PROJECT_CAPTIONS / (best[f"scan_{m}"][0] / args.workers * PROJECT_CORES) / 60 for m in matchers
        },
        "matchers_agree": same,
        "ns_per_caption_one_core": ns,
        "ratio_limit_to_bare_read_one_core": {
            m: best[bare_key][1] ** -1 * 1e9 / ns[m]["limit_read_normalise_scan"] for m in matchers
        },
        "note": "the cores are shared with other agents' jobs: ratios are within one run, interleaved",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_caption_counts.json").write_text(json.dumps(report, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.captions:,} captions, {len(titles)} titles, {len(shards)} shards, {args.workers} cores")
    print(
        f"load average {report['load_average_before_after'][0]} before, {report['load_average_before_after'][1]} after"
    )
    print(f"{'':34s} {'M captions/s (wall)':>20s} {'M captions/CPU-s':>18s}")
    for key, (wall, cpu) in best.items():
        print(f"{key:34s} {wall / 1e6:20.3f} {cpu / 1e6:18.3f}")
    for m in matchers:
        print(
            f"[{m}] scan / bare read ({bare_key}): {report['ratio_wall'][m]:.3f} wall, "
            f"{report['ratio_cpu'][m]:.3f} per CPU-second; 2.3 billion captions on 16 dedicated cores: "
            f"{report['projected_minutes_2_3e9_16_dedicated_cores'][m]:.0f} min "
            f"(from the wall rate: {report['projected_minutes_2_3e9_16_cores_from_wall'][m]:.0f} min)"
        )
    print(f"matchers give identical counts: {same}")
    print(f"\nns per caption on one core (first shard; bare read {1e9 / bare_cpu:.0f} ns per CPU-s caption):")
    for m in matchers:
        print(f"[{m}] " + ", ".join(f"{k} {v:.0f}" for k, v in ns[m].items()))
        print(
            f"[{m}] limit (read + normalise + scan) / bare read: {report['ratio_limit_to_bare_read_one_core'][m]:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
