"""Read service: filter language -> SQL, runs query, run trees, threads, projects, feedback, stats."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from storage import Storage


@dataclass(frozen=True, slots=True)
class QueryOptions:
    secret_key: bytes = b""  # signs attachment and share URLs


class QueryService:
    def __init__(self, storage: Storage, options: QueryOptions) -> None:
        self.storage = storage
        self.options = options
        self.router = APIRouter()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def build(storage: Storage, options: QueryOptions) -> QueryService:
    return QueryService(storage, options)
