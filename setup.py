"""Compiles with mypyc the modules every run passes through: those a decode worker runs for every request (multipart and
OTLP decoding, validation, the rows of posts presumed new), and the batcher's (`storage.batcher`, `ingest.flush`).
They are plain typed Python, and compiled they take less CPU per item: 55-60 -> 42-48 µs per SDK run and 111-126 ->
65-82 µs per OTLP span (measured in one thread on tests/bench/ingest.py's and tests/bench/otlp.py's bodies); the
batcher's thread, which holds the GIL for every run, 12.3-12.5 -> 11.6 µs per SDK run (its CPU under
tests/bench/ingest.py's load). Four modules are written in C: `ingest/_multipart.c` (splitting SDK bodies took 6.4 µs
per run compiled, 1.6 in C), `storage/_rowbinary.c` (the rows inserted into `runs`, which `storage/rowbinary.py` packs
~7x slower compiled), `ingest/_fresh.c` (bodies of SDK posts parsed and their rows built: a decode worker's
instructions per SDK run 278,000 -> 128,000, `python -m tests.bench.instructions`) and `ingest/_otlp.c` (OTLP protobuf
read from the wire into plain values: per OTLP span 501,000 -> 399,000). Without a C compiler and Python's headers
the same modules run interpreted, and the Python versions of the C ones run (`ingest/_fresh.c` has none: the posts
then take the path every other op takes; OTLP bodies are parsed by protobuf and converted in Python). Everything
else is in pyproject.toml; `tracehouse.compiled` notices a compiled module edited after its build. A compiled
class's methods cannot be replaced at run time, so tests cannot monkeypatch them. A dataclass's generated
`__init__` runs interpreted even here: the classes made once per run or span write theirs (`RunOp`, `FreshRun`,
OTLP's `Node`), and one that crosses processes pickles through it.
"""

import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup

COMPILED = [
    "ingest/body.py",
    "ingest/decode.py",
    "ingest/derive.py",
    "ingest/flush.py",
    "ingest/fresh.py",
    "ingest/merge.py",
    "ingest/multipart.py",
    "ingest/records.py",
    "ingest/rows.py",
    "ingest/validate.py",
    "ingest/otlp/conventions.py",
    "ingest/otlp/decode.py",
    "ingest/otlp/ids.py",
    "ingest/otlp/links.py",
    "ingest/otlp/mapping.py",
    "ingest/otlp/values.py",
    "schemas/jsonutil.py",
    "schemas/runs.py",
    "storage/batcher.py",
    "storage/rowbinary.py",
]


def can_compile() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None and Path(sysconfig.get_paths()["include"], "Python.h").exists()


if can_compile():
    from mypyc.build import mypycify

    # Imports of modules not compiled are type-checked only as far as the compiled ones use them.
    setup(
        ext_modules=[
            *mypycify(["--ignore-missing-imports", "--follow-imports=silent", *COMPILED]),
            Extension("ingest._fresh", ["ingest/_fresh.c"], depends=["storage/_rowbinary_put.h"]),
            Extension("ingest._multipart", ["ingest/_multipart.c"]),
            Extension("ingest._otlp", ["ingest/_otlp.c"]),
            Extension("storage._rowbinary", ["storage/_rowbinary.c"], depends=["storage/_rowbinary_put.h"]),
        ]
    )
else:
    print(
        "tracehouse: no C compiler or Python headers; the decode path and the batcher run interpreted, and rows are "
        "packed for ClickHouse in Python (~50 µs per run against ~3): ingest takes about twice the CPU",
        file=sys.stderr,
    )
    setup()
