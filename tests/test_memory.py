"""seqlab.memory: the entry point's cuts in resident memory, on real mappings of this process."""

import mmap
import os
import sys

import pytest

from seqlab.runtime import memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise(MADV_PAGEOUT), mallopt: Linux")


@linux_only
def test_release_library_pages_gives_back_the_read_only_pages_of_a_mapped_file_and_keeps_its_contents(tmp_path):
    path = tmp_path / "lib" / "libfake.so"
    path.parent.mkdir()
    size = 64 * 2**20
    with open(path, "wb") as f:
        f.write(os.urandom(2**20) * 64)
        f.flush()
        os.fsync(f.fileno())  # clean page-cache pages, as a library's are
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as mapped:
        expected = sum(mapped[i] for i in range(0, size, 4096))  # touches every page: they become resident
        assert memory.read_only_mappings([str(path.parent) + "/"]) != []
        assert memory.release_library_pages([str(tmp_path / "elsewhere")]) == 0.0  # other folders are left alone
        released = memory.release_library_pages([str(path.parent)])
        assert released > 48, f"only {released:.1f} MiB of 64 given back"
        assert sum(mapped[i] for i in range(0, size, 4096)) == expected  # read back intact on the next touch


def test_read_only_mappings_skips_writable_mappings_and_other_paths(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0000100000 r-xp 00000000 08:01 1 /site/tensorflow/libtensorflow_cc.so.2\n"
        "7f0000100000-7f0000200000 r--p 00100000 08:01 1 /site/tensorflow/libtensorflow_cc.so.2\n"
        "7f0000200000-7f0000210000 rw-p 00200000 08:01 1 /site/tensorflow/libtensorflow_cc.so.2\n"
        "7f0000300000-7f0000400000 r-xp 00000000 08:01 2 /site/numpy/core.so\n"
        "7f0000500000-7f0000600000 rw-p 00000000 00:00 0 \n"
        "7f0000600000-7f0000700000 r--p 00000000 08:01 3 /site/tensorflow-plugins/x.so\n")
    assert memory.read_only_mappings(["/site/tensorflow/"], str(maps)) == [
        (0x7F0000000000, 0x7F0000100000), (0x7F0000100000, 0x7F0000200000)]


@linux_only
def test_limit_malloc_arenas_defers_to_the_environment(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_malloc_arenas() is None
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert memory.limit_malloc_arenas() == (os.cpu_count() or 1)


def test_long_lived_frozen_skips_what_was_alive_and_gives_it_back_to_the_collector_on_exit():
    import gc
    import time
    import weakref

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return a

    before = cycle()  # alive on entry: frozen
    gone_before = weakref.ref(before)
    with memory.long_lived_frozen():
        assert gc.get_freeze_count() > 0
        inside = cycle()  # made inside: collected as usual
        gone_inside = weakref.ref(inside)
        del before, inside
        started = time.perf_counter()
        gc.collect()
        collect_seconds = time.perf_counter() - started
        assert gone_inside() is None and gone_before() is not None  # the frozen cycle waits for the exit
        with memory.long_lived_frozen():  # nested: leaves the outer freeze alone
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone_before() is None  # collectable again after the block
    assert collect_seconds < 0.05  # a collection inside walks only what is new (a full one with TensorFlow: ~0.6 s)
