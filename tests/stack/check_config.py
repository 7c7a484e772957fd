#!/usr/bin/env python3
"""Checks of the stack's configuration files that no tool of their own makes.

rules-tested RULES TESTS: every alert of the Prometheus rule file RULES is
    tested in the promtool test file TESTS at least once firing (a non-empty
    exp_alerts) and once quiet (exp_alerts: []); an always-firing alert (the
    dead man's switch, `expr: vector(1)`) has no quiet case.
alert-names RULES: prints the alert names of RULES with their severity, one
    "name severity" a line (run.sh routes each through amtool).
published: reads `docker compose config` output (YAML, Compose v1's short
    port syntax or v2's long one) on stdin and prints "service address port"
    for every published port.
secrets: reads `docker compose config` output on stdin and checks that no
    secret has a value in it (an environment variable named like a token,
    password or secret is empty unless it names a file), that every service
    rotates its log (json-file with max-size and max-file) and that
    Prometheus caps its storage by size.

Needs PyYAML (Debian's python3-yaml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


def alerts(rules_path: Path) -> dict[str, str]:
    data = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    out = {}
    for group in data.get("groups", []):
        for rule in group.get("rules", []):
            if "alert" in rule:
                out[rule["alert"]] = (rule.get("labels") or {}).get("severity", "")
    return out


def always_firing(rules_path: Path) -> set[str]:
    data = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    return {
        rule["alert"]
        for group in data.get("groups", [])
        for rule in group.get("rules", [])
        if "alert" in rule and str(rule.get("expr", "")).strip() == "vector(1)"
    }


def rules_tested(rules_path: Path, tests_path: Path) -> int:
    names = alerts(rules_path)
    constant = always_firing(rules_path)
    tests = yaml.safe_load(tests_path.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    problems = []
    for name in sorted(names):
        if name not in firing:
            problems.append(f"{name}: no case where it fires")
        if name not in quiet and name not in constant:
            problems.append(f"{name}: no case where it stays quiet")
    for name in sorted((firing | quiet) - set(names)):
        problems.append(f"{name}: tested but not in {rules_path.name}")
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{len(names)} alerts, each fires and stays quiet in a test: {not problems}")
    return 1 if problems else 0


def published(text: str) -> list[tuple[str, str, str]]:
    config = yaml.safe_load(text)
    out = []
    for service, spec in sorted((config.get("services") or {}).items()):
        for port in spec.get("ports") or []:
            if isinstance(port, dict):  # Compose v2: long syntax
                address = port.get("host_ip") or "0.0.0.0"  # noqa: S104 (what it means)
                out.append((service, str(address), str(port.get("published", ""))))
                continue
            # Compose v1: [ADDRESS:]PUBLISHED:TARGET[/PROTO]
            parts = str(port).split("/")[0].split(":")
            address = ":".join(parts[:-2]) if len(parts) > 2 else "0.0.0.0"  # noqa: S104
            out.append((service, address, parts[-2] if len(parts) > 1 else ""))
    return out


SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET")


def environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):  # KEY=value strings
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def secrets_problems(text: str) -> list[str]:
    config = yaml.safe_load(text)
    problems = []
    services = config.get("services") or {}
    for service, spec in sorted(services.items()):
        for key, value in environment(spec).items():
            names_file = key.endswith("_FILE")
            if any(word in key for word in SECRET_WORDS) and not names_file and value:
                problems.append(f"{service}: {key} has a value in the compose file")
        logging = spec.get("logging") or {}
        options = logging.get("options") or {}
        if logging.get("driver") != "json-file" or not {"max-size", "max-file"} <= set(options):
            problems.append(f"{service}: no rotated log (logging: json-file, max-size, max-file)")
    command = " ".join(str(c) for c in (services.get("prometheus") or {}).get("command") or [])
    if "--storage.tsdb.retention.size=" not in command:
        problems.append("prometheus: no --storage.tsdb.retention.size")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tested = sub.add_parser("rules-tested")
    tested.add_argument("rules", type=Path)
    tested.add_argument("tests", type=Path)
    names = sub.add_parser("alert-names")
    names.add_argument("rules", type=Path)
    sub.add_parser("published")
    sub.add_parser("secrets")
    args: Any = parser.parse_args()
    if args.command == "rules-tested":
        return rules_tested(args.rules, args.tests)
    if args.command == "alert-names":
        for name, severity in sorted(alerts(args.rules).items()):
            print(f"{name} {severity}")
        return 0
    if args.command == "secrets":
        problems = secrets_problems(sys.stdin.read())
        for problem in problems:
            print(f"FAIL {problem}")
        print(f"no secret in the compose file, every log rotated, TSDB capped: {not problems}")
        return 1 if problems else 0
    for service, address, port in published(sys.stdin.read()):
        print(f"{service} {address} {port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
