"""The floor every stage stands on; it imports nothing else of the package.

- :mod:`~iconicity_utils.core.constants`: the paper's constants (τ, the grid, k_gen, pHash) and mode names;
- :mod:`~iconicity_utils.core.schema`: the validated-section base and ``ConfigError``;
- :mod:`~iconicity_utils.core.io`: atomic writes, and parquet tables with provenance;
- :mod:`~iconicity_utils.core.images`: image files, the grid, pHash and SSIM thumbnails;
- :mod:`~iconicity_utils.core.plotting`: the figure style and ``save_figure`` (stand-in label included);
- :mod:`~iconicity_utils.core.launch`: one process or several under ``accelerate launch``;
- :mod:`~iconicity_utils.core.plugins`: providers found by name (how the demo's pieces are reached).
"""

__all__: list[str] = []
