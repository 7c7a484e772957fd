#!/usr/bin/env python3
"""Validates Grafana dashboards against Grafana's own published schema.

The schema is the one Grafana generates from its CUE kinds and publishes as
the Foundation SDK (package `grafana-foundation-sdk` on PyPI, pinned in
tests/stack/requirements.txt to the build for the Grafana the stack runs,
11.2). The SDK decodes a dashboard into typed classes: the dashboard, its
panels, each panel plugin's options and custom field config (timeseries,
stat, table, state-timeline, ...), the Prometheus queries, the variables.
Two checks use them:

- every value has the type the schema gives its field (integers where
  integers go, one of an enum's values, a list of the right things, a
  decoded object where an object goes, ...);
- every key survives decoding and encoding again: a key the schema does not
  know (a misspelt `fieldConfg`, `drawstyle`, an option of another panel
  type) is dropped by the SDK, so it is reported with its path.

  check_schema.py DASHBOARD.json...          exit 1 on any problem
  check_schema.py --self-test DASHBOARD.json checks that known-bad mutations
                                             of the dashboard are each caught
"""

from __future__ import annotations

import argparse
import copy
import enum
import json
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog import plugins, runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_model

plugins.register_default_plugins()

SCALARS = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def is_model(value: Any) -> bool:
    """An instance of one of the SDK's generated classes."""
    return type(value).__module__.startswith("grafana_foundation_sdk.") and hasattr(
        value, "to_json"
    )


def hints_of(cls: type) -> dict[str, Any]:
    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, globalns=vars(module))


def union_problems(value: Any, args: tuple[Any, ...], path: str) -> list[str]:
    if value is None and type(None) in args:
        return []
    # A decoded object is checked as the class it was decoded into.
    for arg in args:
        if isinstance(arg, type) and is_model(value) and isinstance(value, arg):
            return type_problems(value, arg, path)
    tried = [type_problems(value, arg, path) for arg in args if arg is not type(None)]
    if any(not problems for problems in tried):
        return []
    return min(tried, key=len)


def collection_problems(value: Any, origin: Any, args: tuple[Any, ...], path: str) -> list[str]:
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} where the schema wants a list"]
        return [
            p for i, item in enumerate(value) for p in type_problems(item, args[0], f"{path}[{i}]")
        ]
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__} where the schema wants an object"]
    item_hint = args[1] if len(args) > 1 else Any
    return [p for k, item in value.items() for p in type_problems(item, item_hint, f"{path}.{k}")]


def class_problems(value: Any, hint: type, path: str) -> list[str]:
    if issubclass(hint, enum.Enum):
        allowed = [m.value for m in hint]
        got = value.value if isinstance(value, enum.Enum) else value
        return [] if got in allowed else [f"{path}: {got!r} is not one of {allowed}"]
    if hint in SCALARS:
        ok = isinstance(value, SCALARS[hint]) and not (hint is not bool and isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not a {hint.__name__}"]
    if isinstance(value, runtime.UnknownDataquery):
        return [f"{path}: a query of no known datasource type: {value.data!r}"]
    if isinstance(value, hint):
        return walk(value, path)
    if isinstance(value, dict) and hasattr(hint, "from_json"):
        return plain_json_problems(value, hint, path)
    return [f"{path}: {type(value).__name__} {value!r} where the schema wants {hint.__name__}"]


def plain_json_problems(value: dict[str, Any], hint: type, path: str) -> list[str]:
    """Some fields are kept as plain JSON by the SDK's decoder (a panel's
    transformations): decoded here, and checked alike."""
    try:
        decoded = hint.from_json(copy.deepcopy(value))  # type: ignore[attr-defined]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"{path}: not a {hint.__name__}: {exc!r}"]
    encoded = json.loads(json.dumps(decoded, cls=JSONEncoder))
    return walk(decoded, path) + dropped_keys(value, encoded, path)


def type_problems(value: Any, hint: Any, path: str) -> list[str]:
    """How ``value`` differs from the schema's type ``hint`` (none: [])."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    problems: list[str] = []
    if hint is Any or hint is object:
        problems = walk(value, path) if is_model(value) else []
    elif origin in (typing.Union, types.UnionType):
        problems = union_problems(value, args, path)
    elif value is None:
        problems = [f"{path}: null where the schema wants {hint}"]
    elif origin is typing.Literal:
        problems = [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    elif origin in (list, dict):
        problems = collection_problems(value, origin, args, path)
    elif isinstance(hint, type):
        problems = class_problems(value, hint, path)
    return problems


def walk(obj: Any, path: str) -> list[str]:
    """Type problems of every field of a decoded SDK object."""
    problems = []
    for name, hint in hints_of(type(obj)).items():
        if hasattr(obj, name):
            problems.extend(type_problems(getattr(obj, name), hint, f"{path}.{name}"))
    return problems


def dropped_keys(original: Any, encoded: Any, path: str) -> list[str]:
    """Keys of the original that the SDK's round trip lost: not in the schema."""
    if isinstance(original, dict) and isinstance(encoded, dict):
        problems = []
        for key, value in original.items():
            where = f"{path}.{key}"
            if key not in encoded:
                problems.append(f"{where}: not a field of Grafana's schema here")
            else:
                problems.extend(dropped_keys(value, encoded[key], where))
        return problems
    if isinstance(original, list) and isinstance(encoded, list):
        return [
            p
            for i, (a, b) in enumerate(zip(original, encoded, strict=False))
            for p in dropped_keys(a, b, f"{path}[{i}]")
        ]
    return []


def problems_of(data: dict[str, Any]) -> list[str]:
    try:
        decoded = dashboard_model.Dashboard.from_json(copy.deepcopy(data))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"dashboard: cannot be decoded with Grafana's schema: {exc!r}"]
    problems = walk(decoded, "dashboard")
    encoded = json.loads(json.dumps(decoded, cls=JSONEncoder))
    problems.extend(dropped_keys(data, encoded, "dashboard"))
    return problems


def first_of(data: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(p for p in data["panels"] if p.get("type") == kind)


# Mutations the validator must catch, each the kind of slip a hand-edited
# dashboard gets (jq and json.load accept every one of them).
MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "misspelt fieldConfig": lambda d: first_of(d, "timeseries").update(
        fieldConfg=first_of(d, "timeseries")["fieldConfig"]
    ),
    "unknown drawStyle": lambda d: first_of(d, "timeseries")["fieldConfig"]["defaults"][
        "custom"
    ].update(drawStyle="bar"),
    "gridPos height as text": lambda d: first_of(d, "stat")["gridPos"].update(h="4"),
    "a stat option on a time series": lambda d: first_of(d, "timeseries")["options"].update(
        colorMode="value"
    ),
    "graphTooltip out of range": lambda d: d.update(graphTooltip="shared"),
    "target format misspelt": lambda d: first_of(d, "table")["targets"][0].update(format="tabel"),
    "transformation id as a number": lambda d: first_of(d, "table")["transformations"][0].update(
        id=7
    ),
}


def self_test(data: dict[str, Any]) -> int:
    failed = 0
    for name, mutate in MUTATIONS.items():
        bad = copy.deepcopy(data)
        mutate(bad)
        found = problems_of(bad)
        if found:
            print(f"  caught {name}: {found[0]}")
        else:
            print(f"FAIL not caught: {name}")
            failed += 1
    print(f"schema self-test: {len(MUTATIONS) - failed} of {len(MUTATIONS)} bad dashboards caught")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboards", nargs="+", type=Path)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    status = 0
    for path in args.dashboards:
        data = json.loads(path.read_text(encoding="utf-8"))
        if args.self_test:
            status |= self_test(data)
            continue
        found = problems_of(data)
        for problem in found:
            print(f"FAIL {path.name}: {problem}")
        print(f"{path.name}: {len(found)} problems against Grafana's schema (foundation SDK)")
        status |= 1 if found else 0
    return status


if __name__ == "__main__":
    sys.exit(main())
