#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle (docs/architecture.md).

Each .rs file under the given src/ directories is a module; an edge is a `crate::…` or
`super::…` path outside comments and the trailing `#[cfg(test)] mod`, resolved to the longest
module it names. A parent re-exporting its children (mod.rs) is not an edge.
Usage: import-cycles.py src server/src
"""
import os
import re
import sys


def modules(root):
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs") or "/bin" in dirpath[len(root):]:
                continue
            path = os.path.join(dirpath, f)
            name = path[len(root) + 1:-3].replace("/mod", "").replace("/", "::")
            if name == "lib":
                name = "crate"
            text = re.sub(r"//[^\n]*", "", open(path).read())
            text = re.split(r"#\[cfg\((?:all\()?test[^\]]*\]\s*mod \w+", text)[0]
            mods[name] = text
    return mods


def resolve(mods, module, path):
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    else:
        base = module.split("::")[:-1] if module != "crate" else []
        parts = parts[1:]
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
    names = base + parts
    for i in range(len(names), 0, -1):
        if "::".join(names[:i]) in mods:
            return "::".join(names[:i])
    return None


def edges(mods):
    out = {m: set() for m in mods}
    for m, text in mods.items():
        paths = re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
        for root, group in re.findall(r"\buse\s+(crate|super)::\{([^}]*)\}", text):
            paths += [f"{root}::{name}" for name in re.findall(r"\b(\w+)", group)]
        for p in paths:
            t = resolve(mods, m, p)
            if t and t != m and not m.startswith(t + "::") and not t.startswith(m + "::"):
                out[m].add(t)
    return out


def circles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


failed = False
for root in sys.argv[1:]:
    graph = edges(modules(root))
    for comp in circles(graph):
        failed = True
        print(f"import circle in {root}:", file=sys.stderr)
        for m in comp:
            print(f"  {m} -> {', '.join(sorted(graph[m] & set(comp)))}", file=sys.stderr)
sys.exit(1 if failed else 0)
