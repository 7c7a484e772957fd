#!/usr/bin/env python3
"""Checks gestor's Grafana dashboards, statically and against a real Prometheus.

static: every dashboard file is valid JSON with a unique uid, panel ids are
    unique, every datasource reference (panels, targets, variables) is the uid
    of the provisioned datasource, every panel but rows has PromQL targets with
    unique refIds, the expressions use only the dashboard's variables and
    Grafana's built-in ones, and every one of them follows the `host`
    variable (a fleet's Prometheus holds many hosts). And what reads wrong at
    a glance: a `min` that clips series drawn below zero, a `max` that clips
    the series of another axis, a whole-range figure ($__range) queried as a
    range (once per step), bars that are not counts per their own interval
    (increase over $__interval, with a minimum interval), and time series of
    per-container metrics without topk() (hundreds of series).
live: resolves each template variable with its own label_values() query on
    the Prometheus given (picking values that exist at the end of the window;
    a custom variable takes its current value), substitutes the variables and
    Grafana's built-ins into every target of every panel, and runs it as
    Grafana would: a range query whose step is the panel's interval
    ($__interval: the step asked, or the panel's minimum interval when
    larger), with start and end aligned down to a multiple of the step, or an
    instant query for instant targets. A target that returns no finite sample
    fails, named by its panel's title. It then runs everything again with
    every query variable set to "All", and once more for each other option of
    each custom variable.
query: prints the samples of one instant query as "labels value" lines (used
    by run.sh to compare what the dashboards show with what Docker says).
rules: checks that Prometheus loaded at least N rules and that every one of
    them evaluates without error.

Standard library only: it runs on a bare Debian host.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILTINS = (
    "__rate_interval",
    "__interval_ms",
    "__interval",
    "__range_ms",
    "__range_s",
    "__range",
)
VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(.*)\s*,\s*)?(\w+)\s*\)\s*$", re.DOTALL)
DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d)$")
DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Every target filters on this variable (the Docker host).
HOST_VARIABLE = "host"
REGEX_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


class CheckError(Exception):
    """A problem found in a dashboard, worded for the person who fixes it."""


def load_dashboards(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise CheckError(f"no dashboard JSON under {directory}")
    out = []
    for path in files:
        try:
            out.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as exc:
            raise CheckError(f"{path}: invalid JSON: {exc}") from exc
    return out


def provisioned_uids(directory: Path) -> set[str]:
    """The `uid:` values of the provisioned datasources (simple YAML, no parser needed)."""
    uids = set()
    for path in sorted(directory.glob("*.y*ml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*(?:-\s+)?uid:\s*['\"]?([\w.-]+)['\"]?\s*$", line)
            if match:
                uids.add(match.group(1))
    if not uids:
        raise CheckError(f"no datasource uid provisioned under {directory}")
    return uids


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels and the panels nested in collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def datasource_refs(node: Any, where: str) -> list[tuple[str, Any]]:
    """Every value of a `datasource` key anywhere under node, with its location."""
    refs = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                refs.append((where, value))
            refs.extend(datasource_refs(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            refs.extend(datasource_refs(value, f"{where}[{i}]"))
    return refs


def variable_query(var: dict[str, Any]) -> str:
    query = var.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    return query or ""


def panel_targets(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in panel.get("targets", []) if not t.get("hide")]


def check_datasources(name: str, dash: dict[str, Any], uids: set[str]) -> list[str]:
    problems = []
    for where, ref in datasource_refs(dash, name):
        if not (
            isinstance(ref, dict) and ref.get("uid") in uids and ref.get("type") == "prometheus"
        ):
            problems.append(
                f"{where}: datasource {ref!r} is not the provisioned uid {sorted(uids)}"
            )
    return problems


def duration(text: str) -> float:
    """Grafana's interval text (``30s``, ``1m``) in seconds."""
    match = DURATION_RE.match(text.strip())
    if not match:
        raise CheckError(f"{text!r} is not an interval such as 30s or 1m")
    return int(match.group(1)) * DURATION_SECONDS[match.group(2)]


def custom_options(var: dict[str, Any]) -> list[str]:
    """The values of a custom variable (``text : value`` pairs or plain values)."""
    values = []
    for item in str(var.get("query", "")).split(","):
        text, sep, value = item.partition(" : ")
        values.append((value if sep else text).strip())
    return [v for v in values if v]


def custom_current(var: dict[str, Any]) -> str:
    current = (var.get("current") or {}).get("value")
    if isinstance(current, list):
        current = current[0] if current else None
    return str(current) if current is not None else ""


def check_variables(name: str, variables: list[dict[str, Any]]) -> list[str]:
    problems = []
    names = [var.get("name") for var in variables]
    if HOST_VARIABLE not in names:
        problems.append(f"{name}: no `{HOST_VARIABLE}` variable")
    for var in variables:
        if var.get("type") == "custom":
            options = custom_options(var)
            if not options:
                problems.append(f"{name}: custom variable {var.get('name')!r} has no options")
            elif custom_current(var) not in options:
                problems.append(
                    f"{name}: custom variable {var.get('name')!r}: current value"
                    f" {custom_current(var)!r} is not one of {options}"
                )
            continue
        if var.get("type") != "query":
            continue
        if not LABEL_VALUES_RE.match(variable_query(var)):
            problems.append(f"{name}: variable {var.get('name')!r}: only label_values() is checked")
        if "datasource" not in var:
            problems.append(f"{name}: variable {var.get('name')!r} has no datasource")
    return problems


def check_targets(name: str, panel: dict[str, Any], names: set[str]) -> list[str]:
    title = panel.get("title", "?")
    problems = []
    if "datasource" not in panel:
        problems.append(f"{name}: panel {title!r} has no datasource")
    targets = panel_targets(panel)
    if not targets:
        problems.append(f"{name}: panel {title!r} has no query")
    refids = [t.get("refId") for t in targets]
    if len(set(refids)) != len(refids):
        problems.append(f"{name}: panel {title!r} repeats a refId: {refids}")
    for target in targets:
        where = f"{name}: panel {title!r} target {target.get('refId')}"
        expr = target.get("expr", "")
        if not expr.strip():
            problems.append(f"{where} has no expr")
        if "datasource" not in target:
            problems.append(f"{where} has no datasource")
        used = set()
        for match in VAR_RE.finditer(expr):
            var = next(g for g in match.groups() if g)
            used.add(var)
            if var not in names and var not in BUILTINS:
                problems.append(f"{where}: unknown variable ${var} in {expr}")
        if HOST_VARIABLE not in used:
            problems.append(f"{where} does not follow the ${HOST_VARIABLE} variable: {expr}")
    interval = panel.get("interval")
    if interval:
        try:
            duration(interval)
        except CheckError as exc:
            problems.append(f"{name}: panel {title!r}: interval: {exc}")
    return problems


def overrides_with(panel: dict[str, Any], prop: str) -> list[dict[str, Any]]:
    """The overrides of a panel that set the field-config property ``prop``."""
    return [
        o
        for o in panel.get("fieldConfig", {}).get("overrides", [])
        if any(p.get("id") == prop for p in o.get("properties", []))
    ]


def override_value(override: dict[str, Any], prop: str) -> Any:
    return next(p.get("value") for p in override["properties"] if p.get("id") == prop)


def check_readability(name: str, panel: dict[str, Any]) -> list[str]:
    """What makes a panel read wrong at a glance (see the module's docstring)."""
    title = panel.get("title", "?")
    where = f"{name}: panel {title!r}"
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    custom = defaults.get("custom", {})
    problems = []
    below_zero = [
        o
        for o in overrides_with(panel, "custom.transform")
        if override_value(o, "custom.transform") == "negative-Y"
    ]
    if below_zero and isinstance(defaults.get("min"), int | float) and defaults["min"] >= 0:
        problems.append(f"{where}: min {defaults['min']} clips the series drawn below zero")
    other_axis = [
        o
        for o in overrides_with(panel, "custom.axisPlacement")
        if override_value(o, "custom.axisPlacement") not in ("auto", "left")
    ]
    for o in other_axis:
        if o not in overrides_with(panel, "max") and "max" in defaults:
            problems.append(
                f"{where}: max {defaults['max']} clips {o['matcher'].get('options')!r},"
                " drawn on another axis"
            )
    for target in panel_targets(panel):
        expr = target.get("expr", "")
        ref = f"{where} target {target.get('refId')}"
        if "$__range" in expr and not (target.get("instant") and not target.get("range")):
            problems.append(f"{ref}: a whole-range figure ($__range) must be an instant query")
        if custom.get("drawStyle") == "bars" and "[$__interval]" not in expr:
            problems.append(f"{ref}: bars must be counts per bar: increase(...[$__interval])")
        if (
            panel.get("type") == "timeseries"
            and "gestor_container_" in expr
            and not re.search(r"\btopk\s*\(", expr)
        ):
            problems.append(f"{ref}: per-container series without topk(): {expr}")
    if custom.get("drawStyle") == "bars" and not panel.get("interval"):
        problems.append(f"{where}: bars need a minimum interval (each bar a whole interval)")
    return problems


def check_panels(name: str, dash: dict[str, Any], names: set[str]) -> tuple[int, list[str]]:
    problems = []
    ids: dict[int, str] = {}
    n_panels = 0
    for panel in all_panels(dash):
        title = panel.get("title", "?")
        pid = panel.get("id")
        if not isinstance(pid, int):
            problems.append(f"{name}: panel {title!r} has no integer id")
        elif pid in ids:
            problems.append(f"{name}: panel id {pid} used by {ids[pid]!r} and {title!r}")
        else:
            ids[pid] = title
        if "gridPos" not in panel:
            problems.append(f"{name}: panel {title!r} has no gridPos")
        if panel.get("type") != "row":
            n_panels += 1
            problems.extend(check_targets(name, panel, names))
            problems.extend(check_readability(name, panel))
    return n_panels, problems


def check_static(dash_dir: Path, ds_dir: Path) -> int:
    uids = provisioned_uids(ds_dir)
    problems: list[str] = []
    seen_uids: dict[str, Path] = {}
    n_panels = 0
    for path, dash in load_dashboards(dash_dir):
        name = path.name
        uid = dash.get("uid")
        if not uid:
            problems.append(f"{name}: no dashboard uid")
        elif uid in seen_uids:
            problems.append(f"{name}: uid {uid!r} also used by {seen_uids[uid].name}")
        else:
            seen_uids[uid] = path
        problems.extend(check_datasources(name, dash, uids))
        variables = list(dash.get("templating", {}).get("list", []))
        problems.extend(check_variables(name, variables))
        n, panel_problems = check_panels(name, dash, {v.get("name") for v in variables})
        n_panels += n
        problems.extend(panel_problems)
    for problem in problems:
        print(f"FAIL {problem}")
    print(
        f"dashboards static: {len(seen_uids)} dashboards, {n_panels} panels, "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


class Prometheus:
    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise CheckError(f"{url!r} is not an http:// URL")
        self.url = url.rstrip("/")

    def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        """GET path?params (Prometheus 2.42 takes label values by GET only)."""
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{self.url}{path}?{query}")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise CheckError(
                f"{path} {dict(params).get('query', '')}: HTTP {exc.code}: {detail}"
            ) from exc
        if body.get("status") != "success":
            raise CheckError(f"{path}: {body}")
        return body["data"]

    def label_values(self, label: str, selector: str | None, start: float, end: float) -> list[str]:
        params = [("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        if selector:
            params.append(("match[]", selector))
        return sorted(self.get(f"/api/v1/label/{label}/values", params))

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", [("query", expr), ("time", f"{at:.3f}")])["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = [
            ("query", expr),
            ("start", f"{start:.3f}"),
            ("end", f"{end:.3f}"),
            ("step", f"{step:g}"),
        ]
        return self.get("/api/v1/query_range", params)["result"]


def finite_series(result: list[dict[str, Any]]) -> int:
    """Series holding at least one finite sample (NaN alone is no data in Grafana)."""
    count = 0
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        if any(math.isfinite(float(v)) for _, v in samples):
            count += 1
    return count


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        var = next(g for g in match.groups() if g)
        if var not in values:
            raise CheckError(f"no value for ${var} in {expr}")
        return values[var]

    return VAR_RE.sub(repl, expr)


def regex_value(value: str) -> str:
    """A variable value as Grafana puts it into a Prometheus regex matcher."""
    return REGEX_META.sub(r"\\\\\1", value)


def resolve_variables(
    prom: Prometheus,
    variables: list[dict[str, Any]],
    start: float,
    end: float,
    builtins: dict[str, str],
) -> dict[str, str]:
    """Picks, in order, one value per variable such that every later variable
    has values (a custom variable keeps its current value)."""

    def solve(i: int, chosen: dict[str, str]) -> dict[str, str] | None:
        if i == len(variables):
            return chosen
        var = variables[i]
        if var.get("type") == "custom":
            return solve(i + 1, {**chosen, var["name"]: custom_current(var)})
        match = LABEL_VALUES_RE.match(variable_query(var))
        if not match:
            raise CheckError(f"variable {var.get('name')!r}: unsupported query")
        selector = match.group(1)
        if selector:
            selector = substitute(selector, {**builtins, **chosen})
        options = prom.label_values(match.group(2), selector, start, end)
        for value in options:
            found = solve(i + 1, {**chosen, var["name"]: regex_value(value)})
            if found is not None:
                return found
        return None

    solution = solve(0, {})
    if solution is None:
        names = [v.get("name") for v in variables]
        raise CheckError(f"variables {names}: their label_values() queries found no values")
    return solution


@dataclass(frozen=True)
class Window:
    """The time range the dashboards are looked at, as Grafana would query it."""

    start: float
    end: float
    step: float
    scrape: float

    def interval(self, panel: dict[str, Any]) -> float:
        """The panel's $__interval: the step, or its minimum interval if larger."""
        minimum = panel.get("interval")
        return max(self.step, duration(minimum)) if minimum else self.step

    def aligned(self, step: float) -> tuple[float, float]:
        """Grafana aligns a range query's start and end down to its step."""
        return math.floor(self.start / step) * step, math.floor(self.end / step) * step


def interval_builtins(interval: float, scrape: float) -> dict[str, str]:
    return {
        "__interval": f"{interval:g}s",
        "__interval_ms": f"{int(interval * 1000)}",
        "__rate_interval": f"{max(interval + scrape, 4 * scrape):g}s",
    }


def run_targets(
    prom: Prometheus, dash: dict[str, Any], values: dict[str, str], window: Window
) -> tuple[int, list[str]]:
    ok = 0
    failures = []
    for panel in all_panels(dash):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        counts = []
        empty = []
        step = window.interval(panel)
        local = {**values, **interval_builtins(step, window.scrape)}
        for target in panel_targets(panel):
            expr = substitute(target["expr"], local)
            if target.get("instant") and not target.get("range"):
                result = prom.query(expr, window.end)
            else:
                start, end = window.aligned(step)
                result = prom.query_range(expr, start, end, step)
            n = finite_series(result)
            counts.append(f"{target['refId']}={n}")
            if n == 0:
                empty.append(f"{target['refId']}: {expr}")
        if empty:
            failures.append(
                f"panel {title!r} ({dash.get('title')}): no data from " + "; ".join(empty)
            )
        else:
            ok += 1
            print(f"  ok   {title}: {' '.join(counts)} series")
    return ok, failures


def check_live(args: argparse.Namespace) -> int:
    prom = Prometheus(args.prometheus)
    end = time.time()
    start = end - args.window
    step = args.step
    scrape = args.scrape_interval
    builtins = {
        **interval_builtins(step, scrape),
        "__range": f"{int(args.window)}s",
        "__range_s": f"{int(args.window)}",
        "__range_ms": f"{int(args.window * 1000)}",
    }
    failures: list[str] = []
    ok = 0
    for path, dash in load_dashboards(Path(args.dashboards)):
        variables = [
            v
            for v in dash.get("templating", {}).get("list", [])
            if v.get("type") in ("query", "custom")
        ]
        # Values present at the end of the window, so instant targets find them too.
        chosen = resolve_variables(prom, variables, end - 3 * scrape, end, builtins)
        print(f"{path.name}: variables {chosen}")
        passes = [("chosen values", chosen)]
        every = {
            v["name"]: v.get("allValue") or ".*" if v.get("type") == "query" else custom_current(v)
            for v in variables
        }
        if any(v.get("type") == "query" for v in variables):
            passes.append(("All", every))
        for var in variables:
            if var.get("type") != "custom":
                continue
            for option in custom_options(var):
                if option != custom_current(var):
                    passes.append((f"All, {var['name']}={option}", {**every, var["name"]: option}))
        for label, values in passes:
            print(f" with {label}:")
            n_ok, n_failures = run_targets(
                prom, dash, {**builtins, **values}, Window(start, end, step, scrape)
            )
            ok += n_ok
            failures.extend(f"{f} [variables: {label}]" for f in n_failures)
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"dashboards live: {ok} panel checks passed, {len(failures)} failed")
    return 1 if failures else 0


def query_cmd(args: argparse.Namespace) -> int:
    prom = Prometheus(args.prometheus)
    for series in prom.query(args.expr, time.time()):
        labels = ",".join(f"{k}={v}" for k, v in sorted(series["metric"].items()))
        print(f"{labels} {series['value'][1]}")
    return 0


def rules_cmd(args: argparse.Namespace) -> int:
    prom = Prometheus(args.prometheus)
    groups = prom.get("/api/v1/rules", [])["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    bad = [rule for rule in rules if rule.get("health") != "ok"]
    for rule in bad:
        print(f"FAIL rule {rule['name']}: health {rule.get('health')}: {rule.get('lastError')}")
    print(f"rules: {len(rules)} loaded (at least {args.min} expected), {len(bad)} unhealthy")
    return 1 if bad or len(rules) < args.min else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    static = sub.add_parser("static", help="validate the dashboard files")
    static.add_argument("--dashboards", required=True)
    static.add_argument("--datasources", required=True)
    live = sub.add_parser("live", help="run every panel's PromQL against Prometheus")
    live.add_argument("--dashboards", required=True)
    live.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    live.add_argument("--window", type=float, default=120, help="seconds of history to query")
    live.add_argument("--step", type=float, default=2, help="range query step, seconds")
    live.add_argument("--scrape-interval", type=float, default=2, help="seconds")
    query = sub.add_parser("query", help="print one instant query's samples")
    query.add_argument("--prometheus", required=True)
    query.add_argument("expr")
    rules = sub.add_parser("rules", help="check that the rules loaded and evaluate cleanly")
    rules.add_argument("--prometheus", required=True)
    rules.add_argument("--min", type=int, default=1, help="rules expected at least")
    args = parser.parse_args()
    try:
        if args.command == "static":
            return check_static(Path(args.dashboards), Path(args.datasources))
        if args.command == "live":
            return check_live(args)
        if args.command == "rules":
            return rules_cmd(args)
        return query_cmd(args)
    except (CheckError, urllib.error.URLError, OSError) as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
