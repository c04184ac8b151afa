#!/usr/bin/env python3
"""Checks a Grafana dashboard JSON: its structure (unique panel ids, grid
positions inside 24 columns, every graph panel with a Prometheus query), that
the panels cover what an operator needs (request rate, p50 and p99, batch
sizes, live versions, trainer job progress), and that every PromQL
expression parses: each becomes a recording rule in a generated rule file,
with Grafana's variables replaced by values, for `promtool check rules`.

Usage: check_dashboard.py DASHBOARD.json   (exit 0: good; 1: problems)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

# Grafana's variables as a query would see them.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
             "${datasource}": "", "$job": "recsys-.*"}

# What the dashboard must show: a pattern that some panel's expr matches.
COVERAGE = {
    "request rate": r"rate\(\{__name__=~\"recsys_.*_requests_total",
    "p50 latency": r"histogram_quantile\(0\.5, .*_request_seconds_bucket",
    "p99 latency": r"histogram_quantile\(0\.99, .*_request_seconds_bucket",
    "batch sizes": r"recsys_retrieval_search_batch_size",
    "live versions": r"recsys_recommender_live_model_version",
    "sidecar versions": r"recsys_retrieval_(live_entries|version_entries|loaded_versions)",
    "trainer jobs": r"recsys_trainer_jobs_finished_total",
    "job progress": r"recsys_trainer_job_progress",
}


def substitute(expr):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    left = re.findall(r"\$\{?\w+\}?", expr)
    if left:
        raise ValueError(f"unknown variables {left}")
    return expr


def check(dash):
    problems, exprs = [], []
    for key in ("title", "uid", "schemaVersion", "panels"):
        if key not in dash:
            problems.append(f"dashboard: {key} missing")
    ids = set()
    for p in dash.get("panels", []):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            problems.append(f"{where}: id missing or not unique")
        ids.add(p.get("id"))
        if not p.get("title") or not p.get("type"):
            problems.append(f"{where}: title or type missing")
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24 or g["w"] < 1:
            problems.append(f"{where}: gridPos {g} outside the 24-column grid")
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problems.append(f"{where}: refIds {refs} missing or repeated")
        for t in targets:
            if not t.get("expr", "").strip():
                problems.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            try:
                exprs.append((where, substitute(t["expr"])))
            except ValueError as e:
                problems.append(f"{where}: {e}")
        ds = p.get("datasource", {})
        if ds.get("type") != "prometheus":
            problems.append(f"{where}: datasource is not prometheus")
    for topic, pattern in COVERAGE.items():
        if not any(re.search(pattern, e) for _, e in exprs):
            problems.append(f"no panel shows {topic} (/{pattern}/)")
    return problems, exprs


def promtool_parse(exprs):
    """All exprs as recording rules; promtool names the rule that fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (_, e) in enumerate(exprs):
            f.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(e)}\n")
        path = f.name
    try:
        run = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
        if run.returncode != 0:
            out = run.stdout + run.stderr
            named = [f"{where}: {e}" for i, (where, e) in enumerate(exprs)
                     if f"expr_{i}\"" in out or f"expr_{i}:" in out or f"expr_{i} " in out]
            return [f"promtool check rules: {out.strip()}"] + named
        return []
    finally:
        os.unlink(path)


def main():
    try:
        dash = json.load(open(sys.argv[1]))
    except (OSError, ValueError) as e:
        print(f"FAIL: {sys.argv[1]}: {e}")
        return 1
    problems, exprs = check(dash)
    if exprs:
        problems += promtool_parse(exprs)
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"dashboard ok: {len(dash['panels'])} panels, {len(exprs)} expressions parse")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
