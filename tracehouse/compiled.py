"""Modules edited since they were compiled. setup.py builds the decode path with mypyc next to its sources, and
Python loads an extension module before a source of the same name: an edit would not run until the next build
(`make` rebuilds). Only a checkout is checked: an installed wheel's files all date from its installation."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "storage", "ingest", "query", "tracehouse")


def stale(root: Path = ROOT) -> list[str]:
    """Compiled modules whose source is newer than the build, relative to the checkout. The code of the modules
    mypyc compiles is in one shared library (`<hash>__mypyc`), which `make` links again at every build
    (`--force`); the library each module has beside its source only loads it, and keeps its time when the code
    changes. A C extension (`ingest/_multipart.c`, `ingest/_fresh.c`, `ingest/_otlp.c`, `storage/_rowbinary.c`) is
    its own library."""
    if not (root / "setup.py").exists():
        return []
    suffix = EXTENSION_SUFFIXES[0]
    libraries = list(root.glob(f"*__mypyc{suffix}"))
    built = max((library.stat().st_mtime for library in libraries), default=None)
    edited = []
    for package in PACKAGES:
        for library in (root / package).rglob(f"*{suffix}"):
            stem = library.name.removesuffix(suffix)
            c_source, source = library.with_name(f"{stem}.c"), library.with_name(f"{stem}.py")
            if c_source.exists():
                if c_source.stat().st_mtime > library.stat().st_mtime:
                    edited.append(c_source)
            elif built is not None and source.exists() and source.stat().st_mtime > built:
                edited.append(source)
    return sorted(str(s.relative_to(root)) for s in edited)


def refusal() -> str | None:
    """Why not to run this checkout, if it would run old code."""
    edited = stale()
    if not edited:
        return None
    return f"edited since they were compiled: {', '.join(edited)}; run `make` again (it rebuilds them)"
