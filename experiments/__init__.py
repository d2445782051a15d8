"""Entry points, run as `python -m experiments.<name>` from the repository root."""
