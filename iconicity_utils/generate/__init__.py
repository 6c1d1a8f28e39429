"""Stage 02, generation: ``n_images`` PNGs per prompt for every model of a study, resumably,
deterministically, in one process or several (``accelerate launch``).

Modules:

- :mod:`~iconicity_utils.generate.prompts`: the prompt table (the references' titles, or stage 05's
  variants), validated;
- :mod:`~iconicity_utils.generate.units`: work units ``(model, variant, slug, index)`` and their seeds,
  a function of the unit, never of the process rank;
- :mod:`~iconicity_utils.generate.metadata`: each PNG's text chunks, written, read and checked;
- :mod:`~iconicity_utils.generate.manifest`: the manifest, rebuilt from the PNGs on disk;
- :mod:`~iconicity_utils.generate.run`: :func:`generate`, the distributed, resumable loop;
- :mod:`~iconicity_utils.generate.launch`: :func:`run_subprocess`, the command line in a subprocess;
- :mod:`~iconicity_utils.generate.figures`: :func:`gallery_figure`;
- :mod:`~iconicity_utils.generate.cli`: ``iconicity generate``.

Example:
    >>> from iconicity_utils.config import load_config            # doctest: +SKIP
    >>> from iconicity_utils.generate import generate              # doctest: +SKIP
    >>> print(generate(load_config("configs/demo.yaml")))          # doctest: +SKIP
    160 units: 160 generated (0 of them replaced a bad file), 0 skipped, 0 failed; 21.3 s in all,
    9.06 images/s in the generation loop (1 process); manifest: 160 rows in results/demo/generations.parquet
"""

from iconicity_utils.generate.figures import gallery_figure
from iconicity_utils.generate.launch import run_subprocess
from iconicity_utils.generate.manifest import rebuild_manifest
from iconicity_utils.generate.prompts import load_prompts, title_prompts
from iconicity_utils.generate.run import GenerationSummary, generate

__all__ = [
    "GenerationSummary",
    "gallery_figure",
    "generate",
    "load_prompts",
    "rebuild_manifest",
    "run_subprocess",
    "title_prompts",
]
