"""JSON Schemas of every topic's records, generated from the pydantic models that write and
read them, for services in other languages that produce to or consume from metricloom.

The files live in ``docs/topic-schemas/<topic>.schema.json`` and are checked in;
``metricloom topics schemas`` writes them and ``--check`` (run by a unit test) fails when
a model changed without them. A topic the worker produces to is described as it is written
(serialization: every field it sends); ``commands`` and ``operator-commands``, which other
services produce, as the worker validates them (what a producer may send, defaults
optional). ``chart-configs`` also carries tombstones (a null value) for removed charts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.messages import COMMAND_ADAPTER, OPERATOR_ADAPTER, RECORD_TYPES
from streams.topics import TOPICS

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "docs" / "topic-schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def topic_schemas() -> dict[str, dict[str, Any]]:
    """Each topic's JSON Schema, by topic name (without prefix or organisation suffix)."""
    out: dict[str, dict[str, Any]] = {
        "commands": COMMAND_ADAPTER.json_schema(mode="validation"),
        "operator-commands": OPERATOR_ADAPTER.json_schema(mode="validation"),
    }
    for topic, model in RECORD_TYPES.items():
        out[topic] = model.model_json_schema(mode="serialization")
    missing = sorted(set(TOPICS) - set(out))
    if missing:  # a new topic must say what it carries
        raise ValueError(f"topics without a record schema: {missing}")
    return {
        topic: {"$schema": DIALECT, "$id": f"{topic}.schema.json", **schema}
        for topic, schema in sorted(out.items())
    }


def rendered() -> dict[str, str]:
    """File name → text, as checked in."""
    return {
        f"{topic}.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for topic, schema in topic_schemas().items()
    }


def write(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Write every schema (and remove those of topics that are gone); the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = rendered()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (directory / name).write_text(text)
    return sorted(files)


def stale(directory: Path = SCHEMAS_DIR) -> list[str]:
    """The files that differ from the models (or are missing, or left over)."""
    files = rendered()
    present = {p.name: p.read_text() for p in directory.glob("*.schema.json")}
    return sorted(
        name for name in set(files) | set(present) if files.get(name) != present.get(name)
    )
