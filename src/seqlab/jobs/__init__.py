"""Jobs: what one command runs. pipeline.py (one training run, top to bottom), search.py (a keras-tuner
search, trial by trial), sweep.py (a Hydra multirun as one parent run), entry.py (config and store
checked first, errors in one line, exit statuses)."""
