#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shape of the code, checked (README "Layout"):

- no #include cycle between the modules of daemon/, client/ and proto/ (a module is x.c, x.h and
  x-private.h; the emulator's emul*.c files count as one);
- no .c file there over 600 lines;
- the guest core (lifecycle*, worker*, registry*, vm*, rpc-vm*, holders*) names no device kind
  and no backend in its code (comments may give them as examples).

Usage: test-layout.py [SOURCE_ROOT]; exit status 1 with what is wrong."""

import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DIRS = ["daemon", "client", "proto"]
MAX_LINES = 600
CORE = re.compile(r"^(lifecycle|worker|registry|vm|rpc-vm|holders)")
# what naming a kind or a backend looks like in code
KIND_OR_BACKEND = re.compile(r"selftest|emul|pci|kernel_backend|backend_kernel|backend_is_", re.I)


def sources():
    for d in DIRS:
        for dp, _, fs in os.walk(os.path.join(ROOT, d)):
            for f in sorted(fs):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dp, f), ROOT)


def module(path):
    d, f = os.path.split(path)
    if d == os.path.join("daemon", "uapi") and f.startswith("emul"):
        return os.path.join(d, "emul")
    base = re.sub(r"\.(c|h)$", "", f)
    return os.path.join(d, re.sub(r"-private$", "", base))


def code_only(text):
    """The text without comments and string literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.index("*/", i + 2) + 2
            out.append("\n" * text.count("\n", i, j))   # line numbers stay true
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def include_graph(files):
    by_base = {}
    for p in files:
        by_base.setdefault(os.path.basename(p), []).append(p)
    graph = {module(p): set() for p in files}
    for p in files:
        for m in re.finditer(r'^\s*#\s*include\s+"([^"]+)"', open(os.path.join(ROOT, p)).read(), re.M):
            inc = m.group(1)
            local = os.path.normpath(os.path.join(os.path.dirname(p), inc))
            target = local if local in files else (by_base.get(os.path.basename(inc)) or [None])[0]
            if target and module(target) != module(p):
                graph[module(p)].add(module(target))
    return graph


def cycles(graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    files = list(sources())
    problems = []
    graph = include_graph(set(files))
    for comp in cycles(graph):
        edges = ["%s -> %s" % (a, ", ".join(sorted(b for b in graph[a] if b in comp))) for a in comp]
        problems.append("include cycle among %s:\n    %s" % (", ".join(comp), "\n    ".join(edges)))
    for p in files:
        text = open(os.path.join(ROOT, p)).read()
        if p.endswith(".c") and text.count("\n") > MAX_LINES:
            problems.append("%s has %d lines (at most %d)" % (p, text.count("\n"), MAX_LINES))
        if p.startswith("daemon" + os.sep) and os.path.dirname(p).split(os.sep)[:2] != ["daemon", "uapi"] and CORE.match(os.path.basename(p)):
            for lineno, line in enumerate(code_only(text).split("\n"), 1):
                if KIND_OR_BACKEND.search(line):
                    problems.append("%s:%d: the guest core names a device kind or backend: %s" % (p, lineno, line.strip()))
    print("%d files, %d modules, %d include edges" % (len(files), len(graph), sum(len(v) for v in graph.values())))
    for problem in problems:
        print("FAIL: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
