"""The task: everything on the token and label side of a tagger, saved inside its .keras file."""

from seqlab.task.tagging_task import TaggingTask

__all__ = ["TaggingTask"]
