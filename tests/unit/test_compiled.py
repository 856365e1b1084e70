"""The check that refuses to run a compiled module edited since its build (`tracehouse.compiled`)."""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from tracehouse.compiled import stale

SUFFIX = EXTENSION_SUFFIXES[0]


def checkout(root: Path) -> tuple[Path, Path]:
    """A checkout with one compiled module: (its source, the shared library built at time 100)."""
    (root / "setup.py").write_text("")
    (root / "ingest").mkdir()
    source = root / "ingest" / "decode.py"
    source.write_text("")
    (root / "ingest" / "plain.py").write_text("")  # never compiled: never stale
    shim = root / "ingest" / f"decode{SUFFIX}"
    library = root / f"abc__mypyc{SUFFIX}"
    for path in (shim, library):
        path.write_bytes(b"")
    for path in (source, root / "ingest" / "plain.py", shim):
        os.utime(path, (50, 50))
    os.utime(library, (100, 100))
    return source, library


def test_a_source_edited_after_the_build_is_stale_until_rebuilt(tmp_path: Path) -> None:
    source, library = checkout(tmp_path)
    assert stale(tmp_path) == []
    os.utime(source, (150, 150))
    assert stale(tmp_path) == ["ingest/decode.py"], "the shim is older than the build: the library's time counts"
    os.utime(library, (200, 200))
    assert stale(tmp_path) == []


def test_only_a_checkout_is_checked(tmp_path: Path) -> None:
    source, _ = checkout(tmp_path)
    os.utime(source, (150, 150))
    (tmp_path / "setup.py").unlink()  # an installed wheel: its files all date from the installation
    assert stale(tmp_path) == []


def test_a_c_extension_is_stale_when_its_source_is_newer_than_it(tmp_path: Path) -> None:
    checkout(tmp_path)
    source, library = tmp_path / "ingest" / "_fast.c", tmp_path / "ingest" / f"_fast{SUFFIX}"
    source.write_text("")
    library.write_bytes(b"")
    os.utime(source, (120, 120))
    os.utime(library, (110, 110))
    assert stale(tmp_path) == ["ingest/_fast.c"], "its own build time counts, not the mypyc library's (100)"
    os.utime(library, (130, 130))
    assert stale(tmp_path) == []
