"""return_freed_memory: glibc's mmap threshold is lowered once, and the opt-out is honoured."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import ctypes, resource, sys
from recwise.train.memory import return_freed_memory
ok = return_freed_memory()
def rss_kib():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize() // 1024
blocks = []
for _ in range(1200):  # ~120 MB in 100 kB blocks (under glibc's default 128 kB mmap threshold)
    blocks.append(ctypes.create_string_buffer(100_000))
    blocks.append(bytearray(2000))  # small live objects in between keep the heap from being trimmed
before = rss_kib()
blocks = blocks[1::2]
print(ok, before - rss_kib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
@pytest.mark.parametrize("keep", [False, True])
def test_freed_blocks_go_back_to_the_os_unless_opted_out(keep: bool) -> None:
    env = {"RECWISE_KEEP_MALLOC": "1"} if keep else {}
    import os

    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    applied, released_kib = out[0] == "True", int(out[1])
    if keep:
        assert not applied
        assert released_kib < 50_000  # glibc keeps the freed blocks on its heap
    else:
        assert applied
        assert released_kib > 100_000  # each freed block was its own mapping and left the resident set
