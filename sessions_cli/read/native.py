"""The native readers, when they were built: the span rows and wanted-attribute rows of a
batch, as `otlp.spans_from_rows` takes them, each field's key already chosen.

- OTLP JSON lines (native/otlp_simdjson.cpp, simdjson On-Demand), for a fraction of what
  decoding whole documents with polars costs;
- OTLP protobuf requests (native/otlp_protobuf.cpp, libprotobuf with the classes generated from
  opentelemetry-proto's descriptors), instead of a Python walk over every message.

Each answers only when it is sure to read the batch exactly as the Python path does; otherwise
(None) the batch is read by that path, so results never depend on which one ran.
SESSIONS_NATIVE=0 turns both off.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NamedTuple

import polars as pl

from sessions_cli.read.keys import JSON_OBJECTS, METADATA_PREFIXES, TAGS


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"sessions_cli.read.{name}")
    except ImportError:  # built without a compiler or a library: the Python path runs
        return None


_extension = _load("_otlp_simdjson")
_protobuf = _load("_otlp_protobuf")


def _enabled() -> bool:
    return os.environ.get("SESSIONS_NATIVE", "1") != "0"


def active() -> bool:
    """Whether the native JSON reader runs."""
    return _extension is not None and _enabled()


def protobuf_active() -> bool:
    """Whether the native protobuf reader runs."""
    return _protobuf is not None and _enabled()


def describe() -> str:
    """Which JSON reader runs, for `sessions --version`."""
    if _extension is None:
        return "polars (the native simdjson reader is not built)"
    if not active():
        return "polars (SESSIONS_NATIVE=0)"
    return f"native (simdjson {_extension.simdjson_version()})"


def describe_protobuf() -> str:
    """Which protobuf reader runs, for `sessions --version`."""
    if _protobuf is None:
        return "Python (the native libprotobuf reader is not built)"
    if not protobuf_active():
        return "Python (SESSIONS_NATIVE=0)"
    return f"native (libprotobuf {_protobuf.protobuf_version()})"


class _Exported:
    """A struct array from the extension, offered to polars by the Arrow PyCapsule protocol."""

    def __init__(self, capsules: tuple[object, object]) -> None:
        self._capsules = capsules

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        return self._capsules


class Rows(NamedTuple):
    spans: pl.DataFrame
    attributes: pl.DataFrame
    nested: int | None  # see `rows`
    ids_are_hex: bool  # as otlp.ids_are_hex(spans) would say


def rows(
    blocks: list[bytes | memoryview], keys: list[str], chains: dict[str, tuple[str, ...]]
) -> Rows | None:
    """(spans, attributes, nested, ids_are_hex) of OTLP JSON lines, in blocks of whole lines
    as they were read (bytes or memoryviews: not joined, which would copy them), or None when
    the polars path must read them. The spans come with each field's chosen text (`_<field>`), the
    attributes are only those still read as rows (tags, metadata), and `nested` counts the
    arrays and key-value lists under text keys; unless the batch has a JSON-object attribute
    (`metadata`, Langfuse's details), whose keys take part in the chains: then every wanted
    attribute is a row, for polars to choose from, and `nested` is None."""
    assert _extension is not None
    return _rows(_extension.extract(blocks, keys, METADATA_PREFIXES, *_fields(chains, keys)))


def protobuf_rows(
    bodies: list[bytes], keys: list[str], chains: dict[str, tuple[str, ...]]
) -> Rows | None:
    """`rows` of OTLP protobuf ExportTraceServiceRequests, or None when the Python walk must
    read them (see native/otlp_protobuf.cpp)."""
    assert _protobuf is not None
    return _rows(_protobuf.read(bodies, keys, METADATA_PREFIXES, *_fields(chains, keys)))


def _rows(found: tuple | None) -> Rows | None:
    if found is None:
        return None
    spans = pl.Series(_Exported(found[0])).struct.unnest()
    attrs = pl.Series(_Exported(found[1])).struct.unnest()
    status = pl.struct(code=pl.col("code"), message=pl.col("message")).alias("status")
    spans = spans.with_row_index("row").with_columns(status).drop("code", "message")
    return Rows(spans, attrs, found[2], found[3])


def _fields(chains: dict[str, tuple[str, ...]], keys: list[str]) -> tuple:
    """The chains and key sets `extract` chooses fields with (a field without keys has no
    column, as in `otlp._chosen`)."""
    text_keys = sorted(set(keys) - set(TAGS))
    return tuple((f, chain) for f, chain in chains.items() if chain), TAGS, JSON_OBJECTS, text_keys
