"""The study config: one YAML file names the models, encoders, thresholds and paths of a study.

``load_config("configs/demo.yaml")`` reads and validates it (:mod:`~iconicity_utils.config.study`);
``notebook.setup(config)`` does the same for a numbered notebook and shows the stand-in banner.
"""

from iconicity_utils.config.study import ConfigError, StudyConfig, load_config

__all__ = ["ConfigError", "StudyConfig", "load_config"]
