#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shape of the code, checked (README "Layout"):

- no #include cycle between the modules of daemon/ (its layer folders and daemon/uapi/ included),
  client/ and proto/ (a module is x.c, x.h and x-private.h);
- no .c file there over 600 lines;
- in daemon/uapi/, every function is declared in the header of the module that defines it, so
  that the include graph there is the call graph (a shared header declaring the functions of
  several files would hide a cycle between them: the emulator and the typed layer once reached
  into each other so);
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


def defined_functions(files):
    """name -> the .c file that defines it (non-static, GNU style: the name starts a line)."""
    defs = {}
    for p in files:
        if p.endswith(".c"):
            text = code_only(open(os.path.join(ROOT, p)).read())
            for m in re.finditer(r"^(?!static)[A-Za-z_][\w \*]*\n(\w+) \([^;{]*\)\s*\{", text, re.M):
                defs.setdefault(m.group(1), p)
    return defs


def declared_elsewhere(files, folder):
    """(header, function, defining file) for each function a header of folder declares but
    another module defines."""
    defs = defined_functions(files)
    for p in sorted(files):
        if p.endswith(".h") and os.path.dirname(p) == folder:
            text = code_only(open(os.path.join(ROOT, p)).read())
            for m in re.finditer(r"^[A-Za-z_][\w \*]*?\b(\w+) \([^;{]*\);", text, re.M):
                name = m.group(1)
                if name in defs and module(defs[name]) != module(p):
                    yield p, name, defs[name]


def main():
    files = list(sources())
    problems = []
    graph = include_graph(set(files))
    for comp in cycles(graph):
        edges = ["%s -> %s" % (a, ", ".join(sorted(b for b in graph[a] if b in comp))) for a in comp]
        problems.append("include cycle among %s:\n    %s" % (", ".join(comp), "\n    ".join(edges)))
    for header, name, definer in declared_elsewhere(set(files), os.path.join("daemon", "uapi")):
        problems.append("%s declares %s(), which %s defines: declare it in that file's header" % (header, name, definer))
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
