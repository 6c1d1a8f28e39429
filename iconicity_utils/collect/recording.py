"""Raw responses of stage 01: every SPARQL answer saved with its query, and replayed from disk.

:class:`RawRecorder` saves each response under ``<data>/raw/<run>/sparql/`` (query name and text,
endpoint, UTC time, SPARQL-JSON) and marks the run complete with a ``manifest.json``;
:class:`RecordingClient` is a client that saves what it returns; :class:`ReplayClient` answers
the same queries from the latest complete run (``--use-saved-responses``) without any network,
and refuses a saved response whose query text differs from the one asked now.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from iconicity_utils.collect import sparql
from iconicity_utils.core.io import atomic_write_json, utc_now

__all__ = ["RawRecorder", "RecordingClient", "ReplayClient", "SavedResponseError"]


class SavedResponseError(RuntimeError):
    """Saved raw responses are missing, incomplete, or do not match the queries asked now."""


def _safe_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"query names are lower-case identifiers, got {name!r}")
    return name


class RawRecorder:
    """Saves every raw response of one run under ``<raw>/<run id>/sparql/`` (never overwriting).

    A run is complete when :meth:`finish` has written its ``manifest.json``; only complete runs
    are replayed.  A run id is the UTC start time, ``20261128T031500Z`` (``-1``, ``-2``, ... on a
    clash), so runs sort by time.
    """

    def __init__(self, raw_root: Path, endpoint: str, endpoint_info: dict[str, Any]):
        stamp = utc_now().replace("-", "").replace(":", "")
        run_dir = Path(raw_root) / stamp
        n = 0
        while run_dir.exists():
            n += 1
            run_dir = Path(raw_root) / f"{stamp}-{n}"
        (run_dir / "sparql").mkdir(parents=True)
        self.run_dir = run_dir
        self.endpoint = endpoint
        self.endpoint_info = endpoint_info
        self.files: list[str] = []

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def save(self, name: str, query: str, data: dict[str, Any]) -> Path:
        """Write one response with its query text, endpoint and UTC time."""
        path = self.run_dir / "sparql" / f"{len(self.files):03d}_{_safe_name(name)}.json"
        if path.exists():  # pragma: no cover - run dirs are fresh
            raise SavedResponseError(f"refusing to overwrite a saved response: {path}")
        record = {
            "query_name": name,
            "endpoint": self.endpoint,
            "endpoint_info": self.endpoint_info,
            "retrieved_utc": utc_now(),
            "query": query,
            "response": data,
        }
        atomic_write_json(path, record)
        self.files.append(path.name)
        return path

    def finish(self, **summary: Any) -> Path:
        """Mark the run complete (``manifest.json``)."""
        manifest = {
            "run_id": self.run_id,
            "endpoint": self.endpoint,
            "endpoint_info": self.endpoint_info,
            "finished_utc": utc_now(),
            "files": self.files,
            **summary,
        }
        return atomic_write_json(self.run_dir / "manifest.json", manifest)


class RecordingClient:
    """A SPARQL client that saves every response it returns."""

    def __init__(self, client: sparql.SparqlClient, recorder: RawRecorder):
        self.client = client
        self.recorder = recorder

    def select(self, name: str, query: str) -> dict[str, Any]:
        data = self.client.select(name, query)
        self.recorder.save(name, query, data)
        return data


class ReplayClient:
    """Answers queries from a saved, complete run, by query name; the query text must match."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        manifest_path = self.run_dir / "manifest.json"
        if not manifest_path.is_file():
            raise SavedResponseError(f"{self.run_dir} is not a complete run (no manifest.json)")
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.records: dict[str, dict[str, Any]] = {}
        for file in self.manifest.get("files", []):
            path = self.run_dir / "sparql" / file
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SavedResponseError(f"saved response {path} cannot be read: {exc}") from exc
            self.records[record["query_name"]] = record
        self.endpoint = self.manifest.get("endpoint")
        self.endpoint_info = {**self.manifest.get("endpoint_info", {}), "replayed_from": self.run_dir.name}

    @classmethod
    def latest(cls, raw_root: Path, run: str | None = None) -> ReplayClient:
        """The named run, or the latest complete run under ``raw_root``."""
        raw_root = Path(raw_root)
        if run is not None:
            if not re.fullmatch(r"[0-9TZ-]+", run):
                raise SavedResponseError(f"not a run id: {run!r}")
            return cls(raw_root / run)
        runs = (
            sorted(p for p in raw_root.glob("*") if (p / "manifest.json").is_file())
            if raw_root.is_dir()
            else []
        )
        if not runs:
            raise SavedResponseError(
                f"no complete run of saved responses under {raw_root}; run stage 01 once without "
                "--use-saved-responses (it needs the endpoint)"
            )
        return cls(runs[-1])

    def select(self, name: str, query: str) -> dict[str, Any]:
        record = self.records.get(name)
        if record is None:
            raise SavedResponseError(
                f"no saved response for query {name!r} in {self.run_dir} (the config asks for more than "
                "that run fetched); run without --use-saved-responses"
            )
        if record["query"] != query:
            raise SavedResponseError(
                f"the saved response for query {name!r} in {self.run_dir} was made with a different query "
                "text (the config changed since); run without --use-saved-responses"
            )
        return sparql.parse_sparql_json(json.dumps(record["response"]))
