"""Mark MLflow runs left RUNNING by killed processes as KILLED (see seqlab.tracking.cleanup).

    python -m experiments.cleanup [--dry-run] [--uri URI] [--older-than HOURS] [--run-id ID]
"""

import sys

from seqlab.tracking.cleanup import main

if __name__ == "__main__":
    sys.exit(main())
