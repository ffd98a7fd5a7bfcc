#!/usr/bin/env python3
"""Checks that core's modules import only downwards.

The layers are declared in core/src/lib.rs: a comment line `// N. what` opens
layer N, and every `mod name;` after it belongs to that layer. A module may
refer (`crate::other::...`, or `use crate::{other, ...}`) to modules of its
own layer or of a lower one;
within one layer the references must not form a cycle. Test code (from the
first `#[cfg(test)]`/`#[cfg(all(test...` module on) is not checked.

    scripts/check-layers.py           # check; exit 1 and say why on a back-edge
    scripts/check-layers.py --graph   # print the module graph, layer by layer
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "core" / "src"


def layers():
    layer, found = None, {}
    for line in (ROOT / "lib.rs").read_text().splitlines():
        m = re.match(r"//\s*(\d+)\.\s", line)
        if m:
            layer = int(m.group(1))
            continue
        m = re.match(r"(?:pub(?:\(crate\))?\s+)?mod\s+(\w+);", line)
        if m:
            if layer is None:
                sys.exit(f"core/src/lib.rs: `mod {m.group(1)};` comes before any `// N.` layer comment")
            found[m.group(1)] = layer
    return found


def sources(module):
    single = ROOT / f"{module}.rs"
    if single.exists():
        return [single]
    return sorted((ROOT / module).rglob("*.rs"))


def code_lines(path):
    """The file's non-test lines, without line comments."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"#\[cfg\((all\()?test", line):
            return
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        yield number, line.split("//")[0]


def main():
    layer_of = layers()
    edges, errors = {}, []
    for module in layer_of:
        for path in sources(module):
            rel = path.relative_to(ROOT.parent.parent)
            lines = list(code_lines(path))
            references = [(number, target) for number, line in lines
                          for target in re.findall(r"\bcrate::(\w+)", line)]
            # `use crate::{a, b::c}`, on one line or several, names a and b.
            text = "\n".join(line for _, line in lines)
            for group in re.finditer(r"\bcrate::\{([^}]*)\}", text, re.S):
                number = lines[text.count("\n", 0, group.start())][0]
                references += [(number, t) for t in re.findall(r"(?:^|,)\s*(\w+)", group.group(1))]
            for number, target in references:
                if target not in layer_of:
                    errors.append(
                        f"{rel}:{number}: `crate::{target}`: inside core, name items by their "
                        "module path (crate::module::Item), not through the root re-exports"
                    )
                    continue
                if target == module:
                    continue
                edges.setdefault(module, set()).add(target)
                if layer_of[target] > layer_of[module]:
                    errors.append(
                        f"{rel}:{number}: `{module}` (layer {layer_of[module]}) imports "
                        f"`{target}` (layer {layer_of[target]}): imports must point down"
                    )
    # Cycles within a layer.
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if layer_of[nxt] != layer_of[node]:
                continue
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                errors.append("cycle within layer %d: %s" % (layer_of[node], " -> ".join(cycle)))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in layer_of:
        if module not in state:
            visit(module, [module])

    if "--graph" in sys.argv:
        for level in sorted(set(layer_of.values())):
            print(f"layer {level}")
            for module in sorted(m for m, l in layer_of.items() if l == level):
                targets = ", ".join(sorted(edges.get(module, ()))) or "-"
                print(f"  {module:<15} -> {targets}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    if "--graph" not in sys.argv:
        print(f"core layers: {len(layer_of)} modules, {sum(map(len, edges.values()))} imports, all pointing down")


main()
