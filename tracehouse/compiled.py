"""Modules edited since they were compiled. setup.py builds the decode path with mypyc next to its sources, and
Python loads an extension module before a source of the same name: an edit would not run until the next build
(`make` rebuilds). Only a checkout is checked: an installed wheel's files all date from its installation."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "storage", "ingest", "query", "tracehouse")


def stale(root: Path = ROOT) -> list[str]:
    """Compiled modules whose source is newer than the build, relative to the checkout. The code of all of them
    is in one shared library (`<hash>__mypyc`), which `make` links again at every build (`--force`); the library
    each module has beside its source only loads it, and keeps its time when the code changes."""
    suffix = EXTENSION_SUFFIXES[0]
    libraries = list(root.glob(f"*__mypyc{suffix}"))
    if not libraries or not (root / "setup.py").exists():
        return []
    built = max(library.stat().st_mtime for library in libraries)
    sources = (
        shim.with_name(shim.name.removesuffix(suffix) + ".py")
        for package in PACKAGES
        for shim in (root / package).rglob(f"*{suffix}")
    )
    return sorted(str(s.relative_to(root)) for s in sources if s.exists() and s.stat().st_mtime > built)


def refusal() -> str | None:
    """Why not to run this checkout, if it would run old code."""
    edited = stale()
    if not edited:
        return None
    return f"edited since they were compiled: {', '.join(edited)}; run `make` again (it rebuilds them)"
