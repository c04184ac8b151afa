#!/usr/bin/env python3
"""Checks systemd units: `systemd-analyze verify` must print nothing (an
unknown key or a bad value is only a warning there, so any output fails),
and each unit must carry the project's hardening and restart policy.

Usage: check_units.py UNIT...   (exit 0: all good; 1: problems, listed)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

REQUIRED = {  # key: required value (None: any non-empty value)
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "Restart": "on-failure",
    "RestartSec": None,
    "StateDirectory": None,
    "LimitNOFILE": None,
    "TimeoutStopSec": None,
    "ExecStart": None,
}


def parse(text):
    """Returns {section: {key: [values]}}; continuation lines joined."""
    sections, section, pending = {}, None, ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections.setdefault(section, {})
            continue
        if "=" not in line or section is None:
            raise ValueError(f"not key=value: {line!r}")
        key, value = line.split("=", 1)
        sections[section].setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value):
    """systemd time span ("30", "30s", "1min 30s") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)\s*([a-z]*)", value):
        if unit not in units:
            raise ValueError(f"time unit {unit!r} in {value!r}")
        total += float(num) * units[unit]
    return total


def lint(path):
    problems = []
    name = os.path.basename(path)
    try:
        units = parse(open(path).read())
    except ValueError as e:
        return [f"{name}: {e}"]
    service = units.get("Service")
    if service is None:
        return [f"{name}: no [Service] section"]
    for key, want in REQUIRED.items():
        values = service.get(key)
        if not values or not values[-1]:
            problems.append(f"{name}: {key}= missing")
        elif want is not None and values[-1] != want:
            problems.append(f"{name}: {key}={values[-1]}, want {want}")
    if "Install" not in units or "WantedBy" not in units["Install"]:
        problems.append(f"{name}: [Install] WantedBy= missing")
    exec_start = " ".join(service.get("ExecStart", [""]))
    flags = dict(re.findall(r"--([a-z_]+)=(\S+)", exec_start))
    address = flags.get("address", "")
    if not re.fullmatch(r"(127\.0\.0\.1|\[::1\]|localhost):\d+", address):
        problems.append(f"{name}: --address={address!r} is not a loopback host:port")
    if "metrics_port" not in flags:
        problems.append(f"{name}: --metrics_port missing")
    state = " ".join(service.get("StateDirectory", [])).split()
    for flag in ("data_dir", "models_dir"):
        if flag in flags:
            d = flags[flag]
            if not d.startswith("/var/lib/") or d[len("/var/lib/"):] not in state:
                problems.append(f"{name}: --{flag}={d} is not one of its StateDirectory= {state}")
    try:
        stop = seconds(service.get("TimeoutStopSec", ["0"])[-1])
        grace = seconds(flags.get("grace_period", "10s"))  # common/server.h default
        if stop <= grace:
            problems.append(f"{name}: TimeoutStopSec={stop:g}s is not above the grace period {grace:g}s")
    except ValueError as e:
        problems.append(f"{name}: {e}")
    return problems


def verify(paths):
    """systemd-analyze verify on copies whose ExecStart points at stubs (the
    binaries are not installed here)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return ["systemd-analyze not found (package systemd)"]
    tmp = tempfile.mkdtemp()
    try:
        copies = []
        for path in paths:
            text = open(path).read()
            for binary in set(re.findall(r"ExecStart=/usr/local/bin/(\S+)", text)):
                stub = os.path.join(tmp, binary)
                with open(stub, "w") as f:
                    f.write("#!/bin/sh\n")
                os.chmod(stub, 0o755)
            copy = os.path.join(tmp, os.path.basename(path))
            with open(copy, "w") as f:
                f.write(text.replace("/usr/local/bin/", tmp + "/"))
            copies.append(copy)
        run = subprocess.run([tool, "verify", "--man=no", *copies],
                             capture_output=True, text=True)
        out = (run.stdout + run.stderr).replace(tmp + "/", "")
        if run.returncode != 0 or out.strip():
            return [f"systemd-analyze verify (exit {run.returncode}):\n{out.rstrip()}"]
        return []
    finally:
        shutil.rmtree(tmp)


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    problems = [p for path in paths for p in lint(path)] + verify(paths)
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"check_units: {len(paths)} units ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
