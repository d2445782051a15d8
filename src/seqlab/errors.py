"""User-facing errors.

A `SeqlabError` carries one line that says what is wrong, where (file:line or
config key), and what to do instead. Entry points print it without a traceback.
"""


class SeqlabError(Exception):
    """An error caused by the user's input, reported as one line."""


class ConfigError(SeqlabError):
    """A config value is missing, of the wrong type, or out of range."""


class DataError(SeqlabError):
    """A data file or data source cannot be read as a tagged corpus."""


class TrainingError(SeqlabError):
    """Training cannot go on (e.g. the loss became NaN before any usable epoch)."""
