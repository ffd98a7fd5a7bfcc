#!/usr/bin/env bash
# Builds docs/tutorial.md's step 1 and "The whole program" as a crate of
# one's own, the way a new user does: `cargo new my-agent` beside the
# clone, the step-1 TOML pasted into its Cargo.toml unchanged, the program
# into src/main.rs. Fails if either no longer compiles outside this
# workspace. Uses this checkout's Cargo.lock, so no newer dependency
# versions are fetched, and this checkout's target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The clone, beside the new crate, under the name the tutorial uses.
ln -s "$root" "$work/beluga-metrics"
cargo new --quiet --vcs none --name my-agent "$work/my-agent"

python3 - "$root/docs/tutorial.md" "$work/my-agent" <<'PY'
import re, sys
from pathlib import Path

tutorial = Path(sys.argv[1]).read_text()
crate = Path(sys.argv[2])

def first_block(after_heading, lang):
    section = tutorial.split(after_heading, 1)
    if len(section) < 2:
        raise SystemExit(f"docs/tutorial.md has no heading {after_heading!r}")
    match = re.search(r"^```" + lang + r"[^\n]*\n(.*?)^```", section[1], re.S | re.M)
    if not match:
        raise SystemExit(f"no ```{lang} block after {after_heading!r}")
    return match.group(1)

toml = first_block("## Step 1: dependencies", "toml")
program = first_block("## The whole program", "rust")
manifest = crate / "Cargo.toml"
text = manifest.read_text()
if "[dependencies]\n" not in text:
    raise SystemExit("cargo new wrote no [dependencies] table")
manifest.write_text(text.replace("[dependencies]\n", toml, 1))
(crate / "src" / "main.rs").write_text(program)
PY

cp Cargo.lock "$work/my-agent/"
CARGO_TARGET_DIR="$root/target" cargo build --offline --quiet --manifest-path "$work/my-agent/Cargo.toml"
echo "the tutorial's step 1 and whole program build as a crate of their own"
