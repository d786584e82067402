"""Reads the tests ask of a writer process's engine (`WriterClient(queries=WRITER_QUERIES)`):
they reach that process by reference, so they live in a module of their own."""

from collections.abc import Callable
from typing import Any

from tokenmall.core.canonical import StateJson, canonical_state
from tokenmall.core.engine import Engine


def engine_state(engine: Engine, errors: list[dict[str, Any]]) -> StateJson:
    """The canonical state of the writer's engine, in memory (with the journal's `errors`)."""
    return canonical_state(engine, errors)


def big_answer(_engine: Engine, size: int) -> str:
    """An answer of `size` characters: bigger than a pipe's buffer, it arrives in pieces."""
    return "x" * size


WRITER_QUERIES: dict[str, Callable[..., Any]] = {
    "engine_state": engine_state,
    "big_answer": big_answer,
}
