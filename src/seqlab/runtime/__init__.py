"""Process-level tools every layer may use: TensorFlow's quiet import (quiet.py), resident memory
(memory.py), CPU threads per job (threads.py), Ctrl-C and SIGTERM (interrupts.py). They import nothing
else of seqlab."""
