"""Configuration: OmegaConf/Hydra YAML composition validated into typed dataclasses."""

from medssr_nemo.config.loader import ConfigError, compose, conf_dir, load_config, to_yaml, validate
from medssr_nemo.config.schema import MedSSRConfig

__all__ = ["ConfigError", "MedSSRConfig", "compose", "conf_dir", "load_config", "to_yaml", "validate"]
