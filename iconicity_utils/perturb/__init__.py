"""Stage 05, prompt perturbation: does a model still produce the iconic image when the title's words
change, or when the title is replaced by a plain description of the picture?  (docs/method.md §5)

- :mod:`~iconicity_utils.perturb.prompts`: the prompts table (:func:`build_prompts`), from
  :mod:`~iconicity_utils.perturb.synonyms` (WordNet synonyms), :mod:`~iconicity_utils.perturb.literal`
  (Wikidata template, captioner or CSV; captions by :mod:`~iconicity_utils.perturb.captions`),
  :mod:`~iconicity_utils.perturb.names` (the named-someone flag), :mod:`~iconicity_utils.perturb.leaks`
  (the leak check, on word forms and :mod:`~iconicity_utils.perturb.clip_bpe` tokens) and :mod:`~iconicity_utils.perturb.distance`
  (the CLIP text distance); :mod:`~iconicity_utils.perturb.grammar` (a title word's part of speech)
  and :mod:`~iconicity_utils.perturb.meaning` (the named sentence encoder that ranks synonyms) serve
  the synonyms; :mod:`~iconicity_utils.perturb.words` holds the word helpers they share;
- :mod:`~iconicity_utils.perturb.wordnet`: Princeton WordNet 3.0, found or installed offline;
- :mod:`~iconicity_utils.perturb.perturbation`: the stage's front door: generation and scoring of
  the variants, and the comparison with the title (:func:`compare`), which calls
  :mod:`~iconicity_utils.perturb.inference` (the mean change, the sign-flip test, BH),
  :mod:`~iconicity_utils.perturb.noise_floor` (every change against the re-seeded title),
  :mod:`~iconicity_utils.perturb.coverage` (which references each comparison includes) and
  :mod:`~iconicity_utils.perturb.controls` (the literal arm against matched non-iconic works);
- :mod:`~iconicity_utils.perturb.figures`: the figures of notebook 05;
- :mod:`~iconicity_utils.perturb.cli`: ``python -m iconicity_utils perturb``.
"""

from iconicity_utils.perturb.figures import (
    plot_changes_vs_floor,
    plot_paired_dots,
    plot_persistence,
    plot_selection,
    plot_triptychs,
    plot_vr_change_vs_text_distance,
    save_figure,
)
from iconicity_utils.perturb.perturbation import (
    compare,
    generate_variants,
    images_per_variant,
    leak_sensitivity,
    run,
    setup,
    title_metrics,
)
from iconicity_utils.perturb.prompts import build_prompts, prompts_path, variant_names
from iconicity_utils.perturb.wordnet import load_wordnet

__all__ = [
    "build_prompts",
    "prompts_path",
    "variant_names",
    "load_wordnet",
    "images_per_variant",
    "generate_variants",
    "compare",
    "leak_sensitivity",
    "setup",
    "run",
    "title_metrics",
    "save_figure",
    "plot_paired_dots",
    "plot_persistence",
    "plot_vr_change_vs_text_distance",
    "plot_triptychs",
    "plot_changes_vs_floor",
    "plot_selection",
]
