#!/usr/bin/env python3
"""Checks that docs/ and the Rust sources read as a reference, not a log:
no "session", no "on this machine", no commit hashes. A claim about speed
points at the benchmark that measures it (docs/benchmarks.md) instead of
quoting a run.

    scripts/check-docs.py    # exit 1, listing each line that breaks a rule
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES = [
    (re.compile(r"(?<![\w])sessions?(?![\w])", re.I), 'says "session": state the lasting fact instead'),
    (re.compile(r"\bon this machine\b", re.I), 'says "on this machine": name the benchmark or the CPU instead'),
    # A short (7 to 12 digits) or full (40) commit hash: hex with a letter
    # and a digit, standing alone (not a float literal such as 1000f64; a
    # trace id has 32 digits, a span id 16).
    (re.compile(r"(?<![0-9A-Za-z_./#-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])(?![0-9]+f(?:32|64)\b)"
                r"(?:[0-9a-f]{7,12}|[0-9a-f]{40})(?![0-9A-Za-z_])"),
     "quotes what looks like a commit hash: docs describe the code as it is"),
]


def files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if name.startswith("docs/") and name.endswith(".md") or name.endswith(".rs"):
            yield ROOT / name


def main():
    problems = []
    for path in files():
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for pattern, why in RULES:
                if pattern.search(line):
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {why}\n    {line.strip()}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} line(s) read like a log, not a reference", file=sys.stderr)
        sys.exit(1)
    print("docs and sources: no session talk, no machine-local timings, no commit hashes")


main()
