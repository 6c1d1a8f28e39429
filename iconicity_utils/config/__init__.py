"""The study config: one YAML file names the models, encoders, thresholds and paths of a study.

``load_config("configs/demo.yaml")`` reads and validates it (:mod:`~iconicity_utils.config.study`;
one class per section: stages 01-04 in :mod:`~iconicity_utils.config.sections`, the analysis stages
05, 06 and 08 in :mod:`~iconicity_utils.config.analysis`);
``notebook.setup(config)`` does the same for a numbered notebook and shows the stand-in banner.
"""

from iconicity_utils.config.study import ConfigError, StudyConfig, load_config

__all__ = ["ConfigError", "StudyConfig", "load_config"]
