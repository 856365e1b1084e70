"""Composition root: settings, the app factory that mounts ingest and query, and the CLI."""
