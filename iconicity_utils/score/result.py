"""What a scoring run returns: its tables and a record of what ran (:class:`ScoreResult`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iconicity_utils.core.io import read_table
from iconicity_utils.score.inputs import LISTED, SKIPPED, problem_lines

__all__ = ["ScoreResult"]


class ScoreResult:
    """Tables and a record of what ran.

    ``per_image`` is read back from ``scores_per_image.parquet`` on first access when the tables
    were written (the engine streams it to disk rather than holding the study's rows in memory).
    On the non-main processes of a distributed run the tables are ``None`` (``is_main`` is False).
    """

    def __init__(
        self,
        per_image,
        per_reference,
        per_model,
        config,
        encoders: dict[str, dict[str, Any]] | None = None,
        skipped: list[str] | None = None,
        counts: dict[str, int] | None = None,
        forward_calls: int = 0,
        seconds: float = 0.0,
        paths: dict[str, Path] | None = None,
        skipped_inputs=None,
        input_notes: dict[str, int] | None = None,
        num_processes: int = 1,
        is_main: bool = True,
        per_process: list[dict[str, int]] | None = None,
        timings: dict[str, float] | None = None,
    ):
        self._per_image = per_image
        #: the written per-image table, read back on first access of :attr:`per_image`
        self.per_image_file: Path | None = None
        self.per_reference = per_reference
        self.per_model = per_model
        self.config = config
        self.encoders = encoders or {}
        #: notes on metrics that were not computed (e.g. "sscd_cos: no copy_detection encoder")
        self.skipped = skipped or []
        self.counts = counts or {}
        self.forward_calls = forward_calls
        self.seconds = seconds
        self.paths = paths or {}
        #: the skipped table (:data:`SKIPPED_COLUMNS`): every input image or reference not scored
        self.skipped_inputs = skipped_inputs
        #: how many usable images were read in a non-trivial way (``"alpha dropped"``: 3, ...)
        self.input_notes = input_notes or {}
        self.num_processes = num_processes
        self.is_main = is_main
        #: what each process computed: ``{"images": decoded, "forward_calls": n}``
        self.per_process = per_process or []
        #: seconds spent checking inputs, embedding (encoder loading included) and writing tables
        self.timings = timings or {}
        #: scored generated images (rows of the per-image table), known without reading it back
        self.n_scored = len(per_image) if per_image is not None else 0

    @property
    def per_image(self):
        if self._per_image is None and self.per_image_file is not None:
            self._per_image = read_table(self.per_image_file)
        return self._per_image

    @per_image.setter
    def per_image(self, value) -> None:
        self._per_image = value

    def skipped_summary(self) -> str:
        """The skipped inputs in words, each with its path and reason (the first :data:`LISTED`)."""
        return problem_lines(self.skipped_inputs)

    def summary(self) -> str:
        if not self.is_main:
            return f"worker process: decoded {self.counts.get('images', 0)} new images"
        text = (
            f"scored {self.n_scored} generated images of {len(self.per_reference)} "
            f"(model, variant, reference) groups in {self.seconds:.1f} s; decoded {self.counts.get('images', 0)} "
            f"new images, {self.forward_calls} encoder forward passes"
        )
        if self.num_processes > 1:
            shares = " + ".join(str(p["images"]) for p in self.per_process)
            text += f" ({self.num_processes} processes: {shares} images decoded)"
        sk = self.skipped_inputs
        if sk is not None and len(sk):
            n_gen = int((sk["role"] == "generated").sum())
            dropped = sorted(set(sk.loc[sk["action"] == "reference dropped", "slug"]))
            text += f"; not scored: {n_gen} generated images"
            if dropped:
                text += f", {len(dropped)} references dropped ({', '.join(map(str, dropped[:LISTED]))})"
            text += f" (table {SKIPPED}):\n{self.skipped_summary()}"
        return text
