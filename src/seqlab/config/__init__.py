"""The config layer: typed schemas (schema.py), one registry per config group (choices.py), the checks
(checks.py), Hydra's override grammar (overrides.py), search spaces (search_space.py), class weights
(class_weights.py), and Hydra's compose API for scripts, tests and search trials (compose.py). Nothing here imports TensorFlow.

    from seqlab.config import compose, check_config
    cfg = compose(["+encoder=bilstm", "trainer.epochs=1"])
    check_config(cfg)
"""

from seqlab.config.checks import COMPARE_TAGS, check_config, flatten, jit_setting
from seqlab.config.compose import compose
from seqlab.config.schema import DEFAULT_TRACKING_URI, Config, default_tracking_uri, register_configs

__all__ = ["COMPARE_TAGS", "Config", "DEFAULT_TRACKING_URI", "check_config", "compose", "default_tracking_uri", "flatten",
           "jit_setting", "register_configs"]
