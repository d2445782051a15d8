"""Comparisons: significance tests (stats.py), leaderboards of runs from the store (leaderboard.py), and
`python -m experiments.compare` (cli.py)."""
