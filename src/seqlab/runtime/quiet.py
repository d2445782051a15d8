"""TensorFlow without its C++ start-up lines.

TensorFlow 2.21 prints 3 to 5 lines from C++ before any of ours: absl's
"All log messages before absl::InitializeLog() is called are written to
STDERR", the oneDNN notice, and the CUDA driver probes (`cudart_stub.cc`,
`cuda_platform.cc ... cuInit`). They are written before absl reads its
configuration, so `TF_CPP_MIN_LOG_LEVEL` cannot silence them. The only lever
is the file descriptor itself: `import_tensorflow` points fd 2 at a temporary
file while TensorFlow loads and probes its devices, then restores it and
writes back every captured line that is not one of those known notices (a real
error still shows). After start-up, `TF_CPP_MIN_LOG_LEVEL` works again; its
default here is 3, which also hides the one runtime notice TensorFlow prints on
CPUs without AVX-512 ("oneDNN supports DT_BOOL only on platforms with
AVX-512"). Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything TensorFlow says.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuda_executor|cuda_dnn|cuda_fft|cuda_blas|"
    r"port\.cc:\d+\] oneDNN custom operations|computation_placer|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"TF-TRT Warning|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler flags"
)


@contextlib.contextmanager
def _stderr_to(path: str):
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _without_jax():
    """JAX looks absent inside: TensorFlow's TFLite module imports JAX at import when it is installed, for its
    JAX converter alone (1.3-2 s of an 8-12 s start on the 2-core machine, which seqlab never needs). Keras
    imports JAX only inside the functions that use it, so `import jax` afterwards works as ever."""
    blocked = "jax" not in sys.modules
    if blocked:
        sys.modules["jax"] = None  # makes `import jax` raise ImportError, which TFLite catches
    try:
        yield
    finally:
        if blocked and sys.modules.get("jax", False) is None:
            del sys.modules["jax"]


def import_tensorflow():
    """Import TensorFlow (and probe its devices) with the known start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.NamedTemporaryFile(prefix="seqlab-tf-", suffix=".log", delete=False) as f:
        path = f.name
    try:
        with _stderr_to(path), _without_jax():
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe prints now, not at the first op
    finally:
        with open(path, encoding="utf-8", errors="replace") as f:
            kept = [line for line in f if line.strip() and not NOISE.search(line)]
        os.unlink(path)
        sys.stderr.writelines(kept)
    return tf


def backend_name() -> str:
    """The Keras backend this process will use, read without importing Keras ($KERAS_BACKEND)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def import_backend():
    """Import the Keras backend's library: TensorFlow quietly (above), JAX or PyTorch as they are."""
    backend = backend_name()
    if backend == "tensorflow":
        return import_tensorflow()
    import importlib

    return importlib.import_module(backend)
