#!/usr/bin/env python3
"""valgrind-check.py LOGDIR MAINPID: judge the memcheck logs (--log-file=LOGDIR/valgrind.%p) of one
run. The main process must report no error at all (leaks of kind 'definite' count). Its forked
children (the daemon's workers, tests' helpers) leave through _exit() with the parent's heap, so
their leak reports are noise; any other error of theirs (invalid access, uninitialised value,
bad free, syscall parameter) counts. Prints the offending logs; exit status 1 when there are any."""
import glob
import os
import re
import sys

ERROR_KINDS = re.compile(r"^==\d+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|"
                         r"Syscall param|Source and destination overlap|Argument .* of function)", re.M)


def check(logdir, mainpid):
    bad = []
    for path in sorted(glob.glob(os.path.join(logdir, "valgrind.*"))):
        with open(path, errors="replace") as f:
            text = f.read()
        pid = path.rsplit(".", 1)[1]
        if pid == str(mainpid):
            m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            if not m or m.group(1) != "0":
                bad.append((path, text))
        elif ERROR_KINDS.search(text):
            bad.append((path, text))
    return bad


if __name__ == "__main__":
    problems = check(sys.argv[1], sys.argv[2])
    for path, text in problems:
        sys.stderr.write("---- %s ----\n%s\n" % (path, text[-8000:]))
    sys.exit(1 if problems else 0)
