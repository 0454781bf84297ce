#!/usr/bin/env python3
"""Embed a text file as a C string: embed.py SYMBOL INPUT OUTPUT.c"""
import json, sys
sym, src, out = sys.argv[1:4]
text = open(src, encoding="utf-8").read()
json.loads(text)  # refuse to embed a document that does not parse
with open(out, "w", encoding="utf-8") as f:
    f.write("/* generated from %s; do not edit */\n" % src.split("/")[-1])
    f.write("const char %s[] =\n" % sym)
    for line in text.splitlines(True):
        f.write('  "%s"\n' % line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
    f.write(";\n")
