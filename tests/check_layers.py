#!/usr/bin/env python3
"""Checks the layering of the code from what the compiler and linker produced, not from what
the files say: every object file's defined and undefined symbols (nm) give the graph of calls
between source files.

  1. no loops between files: no two source files call each other, directly or round a cycle;
  2. calls only look down: a file calls only files of its own layer or of layers below it,
     in the order docs/design.md draws (LAYERS below, lowest first);
  3. one include style: quoted includes name a header by its folder ("core/qs_error.h"),
     never by a relative path ("../core/qs_error.h"); no file outside src/store includes
     sqlite3.h.

Usage: check_layers.py SOURCE_DIR BUILD_DIR. Exits 1 naming each violation."""
import os
import re
import subprocess
import sys
from collections import defaultdict

# lowest first; folders of one layer may call each other's files (not in a loop)
LAYERS = [
    ["src/core"],
    ["src/io", "src/quant"],
    ["src/tok", "src/engine"],
    ["src/store"],
    ["analyzers"],
    ["reports/planner"],
    ["reports/report"],
    ["src/quantize", "src/gate"],
    ["src/cli"],
]
CODE_DIRS = [d for layer in LAYERS for d in layer]


def layer_of(path):
    for i, layer in enumerate(LAYERS):
        for d in layer:
            if path.startswith(d + "/") and "/" not in path[len(d) + 1:]:
                return i
    return None


def object_files(build):
    """(object path, source path relative to the source dir) for every layer library's object"""
    out = []
    for root, _, files in os.walk(build):
        if not re.search(r"/CMakeFiles/(qs_[a-z]+|qsense)\.dir(/|$)", root):
            continue
        for f in files:
            if f.endswith(".c.o"):
                full = os.path.join(root, f)
                rel = full.split(".dir/", 1)[1][:-2]  # CMake mirrors the source tree
                out.append((full, rel))
    return out


def symbols(obj):
    text = subprocess.run(["nm", "--defined-only", "-g", obj], capture_output=True, text=True, check=True).stdout
    defined = {l.split()[-1] for l in text.splitlines() if l.strip()}
    text = subprocess.run(["nm", "--undefined-only", obj], capture_output=True, text=True, check=True).stdout
    undefined = {l.split()[-1] for l in text.splitlines() if l.strip()}
    return defined, undefined


def cycles(graph):
    """strongly connected components with more than one file (Tarjan)"""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    src, build = sys.argv[1], sys.argv[2]
    problems = []
    objs = object_files(build)
    if len(objs) < 40:
        print(f"check_layers: found only {len(objs)} object files of the layer libraries under {build}")
        return 1
    defined_by, needs = {}, {}
    for obj, rel in objs:
        d, u = symbols(obj)
        for s in d:
            defined_by[s] = rel
        needs[rel] = u
    graph = defaultdict(set)
    for f, u in needs.items():
        graph[f]
        for s in u:
            g = defined_by.get(s)
            if g and g != f:
                graph[f].add(g)
    for comp in cycles(graph):
        problems.append("files that call each other (a loop): " + " <-> ".join(comp))
    for f, callees in sorted(graph.items()):
        lf = layer_of(f)
        if lf is None:
            problems.append(f"{f}: not in a folder of a layer (add it to LAYERS and docs/design.md)")
            continue
        for g in sorted(callees):
            lg = layer_of(g)
            if lg is not None and lg > lf:
                problems.append(f"{f} calls {g}, a layer above it")
    include = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
    for d in CODE_DIRS:
        full = os.path.join(src, d)
        if not os.path.isdir(full):
            problems.append(f"{d}: missing folder")
            continue
        for name in sorted(os.listdir(full)):
            if not name.endswith((".c", ".h")):
                continue
            rel = f"{d}/{name}"
            with open(os.path.join(full, name), encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    m = include.match(line)
                    if not m:
                        continue
                    kind, path = m.groups()
                    if kind == '"' and (path.startswith(".") or "/" not in path):
                        problems.append(f"{rel}:{n}: #include \"{path}\": name the header by its folder")
                    if path == "sqlite3.h" and d != "src/store":
                        problems.append(f"{rel}:{n}: SQL outside src/store (include of sqlite3.h)")
    for p in problems:
        print(p)
    print(f"check_layers: {len(objs)} object files, {sum(len(v) for v in graph.values())} calls between files, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
