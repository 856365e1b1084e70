"""Compiles the decode path with mypyc: the modules a decode worker runs for every request (multipart and OTLP
decoding, validation, the rows of posts presumed new). They are plain typed Python, and compiled they take less
CPU per item: 55-60 -> 42-48 µs per SDK run and 111-126 -> 65-82 µs per OTLP span (measured in one thread on
tests/bench/ingest.py's and tests/bench/otlp.py's bodies). Without a C compiler and Python's headers the same
modules run interpreted. Everything else is in pyproject.toml; `tracehouse.compiled` notices a compiled module
edited after its build.
"""

import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

COMPILED = [
    "ingest/body.py",
    "ingest/decode.py",
    "ingest/derive.py",
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
]


def can_compile() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None and Path(sysconfig.get_paths()["include"], "Python.h").exists()


if can_compile():
    from mypyc.build import mypycify

    # Imports of modules not compiled are type-checked only as far as the compiled ones use them.
    setup(ext_modules=mypycify(["--ignore-missing-imports", "--follow-imports=silent", *COMPILED]))
else:
    print("tracehouse: no C compiler or Python headers; the decode path runs interpreted (slower)", file=sys.stderr)
    setup()
