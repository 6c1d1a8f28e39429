"""Stage 01 speed: the demo collection live (local oxigraph) vs rebuilt from saved responses.

Run: ``.venv/bin/python benchmarks/bench_collection.py``.  Prints wall times and ratios against a
baseline measured in the same run, with the machine named.  Outputs go to a temporary folder.

- baseline: ``collect_references(use_saved_responses=True)``: no endpoint at all, so it measures
  the table building, the synthetic images and the pHash dedup;
- live: the same with the local oxigraph server started, queried over HTTP and stopped;
- per query: one candidates query through SPARQLWrapper over HTTP vs in-process pyoxigraph.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import yaml
from machine import describe_machine

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import pyoxigraph as ox

    from iconicity_utils.collect import collection as col
    from iconicity_utils.collect import sparql
    from iconicity_utils.collect.queries import candidates_query
    from iconicity_utils.config import load_config
    from iconicity_utils.demo.oxigraph import LocalOxigraph

    with tempfile.TemporaryDirectory() as tmp:
        data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
        data["paths"].update(
            data=f"{tmp}/data",
            results=f"{tmp}/results",
            figures=f"{tmp}/figures",
            cache=f"{tmp}/cache",
            root=str(REPO),
        )
        data["paths"]["standins"] = str(REPO / ".cache" / "standins")
        data["collection"]["snapshot"] = str(REPO / data["collection"]["snapshot"])
        Path(tmp, "configs").mkdir()
        Path(tmp, "configs", "demo.yaml").write_text(yaml.safe_dump(data))
        cfg = load_config(Path(tmp, "configs", "demo.yaml"))

        def quiet(_msg: str) -> None:
            pass

        live = timed(lambda: col.collect_references(cfg, log=quiet), repeat=3)
        replay = timed(lambda: col.collect_references(cfg, use_saved_responses=True, log=quiet), repeat=3)

        query = candidates_query(["Q3305213"], 30, 100, 0, True)
        store = ox.Store()
        store.load(path=str(cfg.root / cfg.collection.snapshot), format=ox.RdfFormat.TURTLE)
        in_process = timed(lambda: list(store.query(query)), repeat=50)
        with LocalOxigraph(cfg.root / cfg.collection.snapshot) as server:
            client = sparql.SparqlClient(server.endpoint, cfg.collection.http)
            over_http = timed(lambda: client.select("bench", query), repeat=50)
        start_stop = timed(lambda: LocalOxigraph(cfg.root / cfg.collection.snapshot).start().stop(), repeat=5)

    print(f"machine: {describe_machine()}")
    print(f"demo collection, replayed (baseline): {replay:.3f} s")
    print(f"demo collection, live local oxigraph: {live:.3f} s  ratio {live / replay:.2f}x")
    print(f"oxigraph load + start + stop:         {start_stop:.3f} s")
    print(f"one candidates query, in-process pyoxigraph (baseline): {in_process * 1e3:.2f} ms")
    print(
        f"one candidates query, SPARQL client over HTTP:          {over_http * 1e3:.2f} ms  ratio {over_http / in_process:.1f}x"
    )


if __name__ == "__main__":
    main()
