"""Export a tagger for deployment: a SavedModel or an ONNX model that tags raw tokens without the .keras file.

    python -m experiments.export runs:/<run id>/cnn-crf-wnut16 --format onnx --out exported/
    python -m experiments.export tagger.keras --format savedmodel --out exported/ --check test.txt

Then `seqlab.export.load("exported/").tag([["EU", "rejects"]])`. See seqlab.export.
"""

import sys

from seqlab.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
