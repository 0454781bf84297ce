"""The man pages against the programs and the configuration parser they document:
- every option iommufdctl's help texts name (the top-level --help and `help CMD` for every command
  it lists) is in iommufdctl(1), and every command;
- every option `iommufd-brokerd --help` lists is in iommufd-brokerd(8);
- every key of daemon/base/config.c's table is in iommufd-broker.conf(5) under its [group], and the
  table's keys are exactly units/broker.conf.example's;
- the built pages render with `man -l` (when man-db is installed: else that part says it skipped).
Exit 0 ok, 1 failure, 77 nothing could be checked."""
import os
import re
import shutil
import subprocess
import sys

SOURCE = os.environ.get("IFB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("IFB_BUILD_DIR", os.path.join(SOURCE, "build"))
CTL = os.path.join(BUILD, "client", "iommufdctl")
DAEMON = os.path.join(BUILD, "daemon", "iommufd-brokerd")
PAGES = {"iommufdctl.1": "man/iommufdctl.1.scd", "iommufd-brokerd.8": "man/iommufd-brokerd.8.scd",
         "iommufd-broker.conf.5": "man/iommufd-broker.conf.5.scd"}
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def source(page):
    with open(os.path.join(SOURCE, PAGES[page])) as f:
        return f.read()


def options_in(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-h)\b", text))


def run(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (cmd, r.stderr)
    return r.stdout


def check_ctl():
    page = source("iommufdctl.1")
    top = run(CTL, "--help")
    commands = re.findall(r"^  ([a-z]+) ", top.split("Commands:")[1], re.M)
    check(len(commands) >= 7, "iommufdctl --help lists only %r" % commands)
    opts = options_in(top)
    for c in commands:
        check(re.search(r"^\*%s[* ]" % c, page, re.M), "iommufdctl(1) has no entry for the command '%s'" % c)
        opts |= options_in(run(CTL, "help", c))
    check(len(opts) >= 12, "too few options found in iommufdctl's help: %r" % sorted(opts))
    for o in sorted(opts):
        check(("*%s" % o) in page, "iommufdctl(1) does not document %s" % o)
    return len(opts)


def check_daemon():
    page = source("iommufd-brokerd.8")
    opts = options_in(run(DAEMON, "--help")) - {"--help-all"}
    check({"--socket", "--backend", "--runtime-dir", "--config", "--emulated-template"} <= opts, sorted(opts))
    for o in sorted(opts):
        check(("*%s" % o) in page, "iommufd-brokerd(8) does not document %s" % o)
    return len(opts)


def config_table():
    """(group, key) of every entry of daemon/base/config.c's keys[] table."""
    with open(os.path.join(SOURCE, "daemon", "base", "config.c")) as f:
        text = f.read()
    table = text.split("static const KeySpec keys[] = {")[1].split("{ NULL }")[0]
    return set(re.findall(r'"([a-z]+)",\s*"([a-z0-9-]+)"', table))


def example_keys():
    keys, group = set(), None
    with open(os.path.join(SOURCE, "units", "broker.conf.example")) as f:
        for line in f:
            m = re.match(r"^\[([a-z]+)\]", line)
            if m:
                group = m.group(1)
            m = re.match(r"^#([a-z][a-z0-9-]*)=", line)
            if m:
                keys.add((group, m.group(1)))
    return keys


def check_config():
    page = source("iommufd-broker.conf.5")
    table = config_table()
    check(len(table) >= 20, "config.c's table parsed to only %r" % sorted(table))
    check(table == example_keys(), "config.c's keys vs broker.conf.example: only in the table %r, only in the example %r"
          % (sorted(table - example_keys()), sorted(example_keys() - table)))
    sections = dict(re.findall(r"^# \[([a-z]+)\]\n(.*?)(?=^# |\Z)", page, re.M | re.S))
    for group, key in sorted(table):
        check(group in sections, "iommufd-broker.conf(5) has no section [%s]" % group)
        check(re.search(r"\*%s=" % re.escape(key), sections.get(group, "")),
              "iommufd-broker.conf(5) does not document [%s] %s" % (group, key))
    return len(table)


def check_render():
    if not shutil.which("man"):
        print("skipped: rendering with man -l (man-db is not installed)")
        return 0
    n = 0
    for page in PAGES:
        path = os.path.join(BUILD, "man", page)
        if not os.path.exists(path):
            print("skipped: rendering %s (not built: scdoc missing, -Dman=disabled?)" % page)
            continue
        r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        check(r.returncode == 0 and "NAME" in r.stdout and "SEE ALSO" in r.stdout,
              "man -l %s: exit %d, %s" % (page, r.returncode, r.stderr))
        check(r.stderr.strip() == "", "man -l %s warns: %s" % (page, r.stderr))
        n += 1
    return n


def main():
    counts = (check_ctl(), check_daemon(), check_config(), check_render())
    for f in failures:
        print("FAIL: " + f)
    print("%d iommufdctl options, %d daemon options, %d config keys, %d pages rendered; %d failures"
          % (counts + (len(failures),)))
    sys.exit(1 if failures else 0)


main()
