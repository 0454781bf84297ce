#!/usr/bin/env python3
"""Render the API section of README.md from proto/openrpc.json, or check that it matches.

  tools/api-doc.py           rewrite the section between <!-- api:begin --> and <!-- api:end -->
  tools/api-doc.py --check   exit 1 (and show the difference) if README.md is out of date
"""
import difflib
import json
import os
import sys

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
doc = json.load(open(os.path.join(top, "proto", "openrpc.json")))
readme_path = os.path.join(top, "README.md")
BEGIN, END = "<!-- api:begin -->", "<!-- api:end -->"


def render():
    out = [BEGIN, "", "| method | access | params | what it does |", "|---|---|---|---|"]
    for m in doc["methods"]:
        params = ", ".join(("**%s**" if p.get("required") else "%s") % p["name"] for p in m["params"]) or "—"
        access = m.get("x-access", "")
        if m.get("x-takes-fds"):
            access += " (takes fds)"
        out.append("| `%s` | %s | %s | %s |" % (m["name"], access, params, m["summary"].replace("|", "\\|")))
    out += ["", "Errors (`error.data.name`, stable; `error.data.errno` where the kernel said so):", "",
            "| name | code |", "|---|---|"]
    for name, e in sorted(doc["components"]["errors"].items(), key=lambda kv: -kv[1]["code"]):
        out.append("| `%s` | %d |" % (name, e["code"]))
    out += ["", END]
    return "\n".join(out)


def main():
    text = open(readme_path).read()
    if BEGIN not in text or END not in text:
        sys.exit("README.md has no %s ... %s section" % (BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    current, tail = rest.split(END, 1)
    current = BEGIN + current + END
    wanted = render()
    if "--check" in sys.argv:
        if current != wanted:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                       "README.md", "from proto/openrpc.json"))
            print("\nREADME.md's API section is out of date: run tools/api-doc.py")
            sys.exit(1)
        print("README.md API section matches proto/openrpc.json (%d methods)" % len(doc["methods"]))
        return
    open(readme_path, "w").write(head + wanted + tail)


main()
