"""Limits for `mlflow models serve`: a request too large is refused before any model work, every error
is one line without a stack trace, and memory goes back after a large request.

The pyfunc model (seqlab.tracking.pyfunc_model) installs `guard_scoring_server` when MLflow's scoring
server loads it. The limits, read from the server's environment:

    SEQLAB_SERVE_MAX_BYTES       10485760   request body, in bytes (checked before it is parsed): 413
    SEQLAB_SERVE_MAX_SENTENCES   1000       sentences in one request: 413
    SEQLAB_SERVE_MAX_TOKENS      1000       tokens in one sentence: 413

MLflow's own server answers a failed prediction with the whole input echoed in the message and a
Python stack trace in the body (`stack_trace`), for any content type it cannot parse (a CSV body, a
payload without `inputs`) too. The guard wraps MLflow's `invocations` function: the answer is then
`{"error_code": ..., "message": "<one line>"}` with MLflow's status code, or 413 for a limit.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger("seqlab")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 2**20
    max_sentences: int = 1000
    max_tokens: int = 1000

    @classmethod
    def from_environment(cls) -> "Limits":
        def read(name: str, default: int) -> int:
            value = os.environ.get(name, "")
            return int(value) if value.strip().isdigit() else default

        d = cls()
        return cls(read("SEQLAB_SERVE_MAX_BYTES", d.max_bytes), read("SEQLAB_SERVE_MAX_SENTENCES", d.max_sentences),
                   read("SEQLAB_SERVE_MAX_TOKENS", d.max_tokens))


class TooLarge(Exception):
    """A request over one of the limits. `line` is the whole answer."""

    status = 413

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def check_request(sentences: list, limits: Limits) -> None:
    """Raise TooLarge when `sentences` (token lists) exceed `limits`."""
    if len(sentences) > limits.max_sentences:
        raise TooLarge(f"{len(sentences)} sentences in one request; the limit is {limits.max_sentences} "
                       "(SEQLAB_SERVE_MAX_SENTENCES): send them in several requests")
    for i, sentence in enumerate(sentences):
        if len(sentence) > limits.max_tokens:
            raise TooLarge(f"sentence {i} has {len(sentence)} tokens; the limit is {limits.max_tokens} "
                           "(SEQLAB_SERVE_MAX_TOKENS)")


def in_scoring_server() -> bool:
    """True inside `mlflow models serve` (its app module loads the model while it is being imported)."""
    return "mlflow.pyfunc.scoring_server.app" in sys.modules


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise): after a large request the
    worker returns to its size before it."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _one_line(text: str, limit: int = 300) -> str:
    first = (str(text).strip().splitlines() or [""])[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def guard_scoring_server(limits: Limits) -> bool:
    """Wrap MLflow's scoring function with the limits and one-line errors (once); False outside a server."""
    if not in_scoring_server():
        return False
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    if getattr(scoring_server.invocations, "seqlab_guard", False):
        return True
    original = scoring_server.invocations

    def answer(status: int, error_code: str, message: str):
        body = json.dumps({"error_code": error_code, "message": _one_line(message)})
        return scoring_server.InvocationsResponse(response=body, status=status, mimetype="application/json")

    def invocations(data, content_type, model, input_schema):
        if len(data) > limits.max_bytes:
            return answer(413, "REQUEST_TOO_LARGE", f"the request body has {len(data)} bytes; the limit is "
                          f"{limits.max_bytes} (SEQLAB_SERVE_MAX_BYTES)")
        try:
            return original(data, content_type, model, input_schema)
        except MlflowException as e:
            cause = e if isinstance(e, TooLarge) else getattr(e, "seqlab_cause", None) or e.__cause__ or e.__context__
            if isinstance(cause, TooLarge):
                return answer(cause.status, "REQUEST_TOO_LARGE", cause.line)
            message = e.message.split("\nError: ", 1)[-1]  # MLflow prefixes the whole input: drop it
            return answer(e.get_http_status_code(), e.error_code, message)
        except TooLarge as e:
            return answer(e.status, "REQUEST_TOO_LARGE", e.line)
        except Exception as e:  # noqa: BLE001 - a bad request must never show a stack trace
            return answer(400, "BAD_REQUEST", f"{type(e).__name__}: {e}")
        finally:
            release_memory()

    invocations.seqlab_guard = True
    scoring_server.invocations = invocations
    log.info("serving limits: %d bytes, %d sentences, %d tokens per sentence", limits.max_bytes,
             limits.max_sentences, limits.max_tokens)
    return True
