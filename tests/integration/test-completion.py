"""Bash completion for iommufdctl (completion/iommufdctl.bash), driven the way bash drives it:
a bash that sources bash-completion's library (when installed) and the script, sets COMP_WORDS
and COMP_CWORD for a command line and calls the function `complete -p iommufdctl` names.
Static words must match what `iommufdctl help` says; live values come from the real daemon."""
import os
import re
import shlex
import subprocess

from ifbtest import CTL, NEST_VTD, SMMU, SOURCE, Broker, Cgroup, run

SCRIPT = os.path.join(SOURCE, "completion", "iommufdctl.bash")
LIBRARY = "/usr/share/bash-completion/bash_completion"


def complete_line(line, library=True):
    """The completions bash offers for line (completing its last word; a trailing space starts a
    new one), as a sorted list."""
    words = shlex.split(line)
    if line.endswith(" "):
        words.append("")
    words[0] = CTL
    line = " ".join(words)
    # COMP_WORDS as bash splits them: ':' and '=' are word breaks of their own
    comp_words = [p for w in words for p in re.split(r"([:=])", w) if p != ""]
    if words[-1] == "":
        comp_words.append("")
    prog = []
    if library and os.path.exists(LIBRARY):
        prog.append(". %s" % shlex.quote(LIBRARY))
    prog += [". %s" % shlex.quote(SCRIPT),
             "func=$(complete -p iommufdctl | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')",
             "COMP_WORDS=(%s)" % " ".join(shlex.quote(w) for w in comp_words),
             "COMP_CWORD=%d" % (len(comp_words) - 1),
             "COMP_LINE=%s" % shlex.quote(line),
             "COMP_POINT=${#COMP_LINE}",
             "$func iommufdctl %s %s" % (shlex.quote(comp_words[-1]), shlex.quote(comp_words[-2])),
             "printf '%s\\n' \"${COMPREPLY[@]}\""]
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(prog)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, (line, r.stderr)
    assert r.stderr == "", (line, r.stderr)
    return sorted(w for w in r.stdout.split("\n") if w)


def help_words():
    top = subprocess.run([CTL, "--help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z-]+) ", top.split("Commands:")[1], re.M)
    vm = subprocess.run([CTL, "help", "vm"], capture_output=True, text=True).stdout
    subs = sorted(set(re.findall(r"iommufdctl vm ([a-z]+)", vm)))
    create = sorted(set(re.findall(r"(--[a-z-]+=?)", vm.split("vm create")[1].split("vm attach")[0])))
    return sorted(commands), subs, create


def test_static_words():
    for library in (True, False):   # with bash-completion's _init_completion, and without it
        assert complete("iommufdctl vm a", library) == ["attach"], complete("iommufdctl vm a", library)
        commands, subs, create = help_words()
        assert complete("iommufdctl ", library) == commands
        assert complete("iommufdctl vm ", library) == subs
        assert complete("iommufdctl --json vm ", library) == subs
        assert complete("iommufdctl vm create g1 --", library) == sorted(create + ["--help", "--json", "--socket", "--version"]), \
            complete("iommufdctl vm create g1 --", library)
        assert complete("iommufdctl help ", library) == commands
        assert complete("iommufdctl st", library) == ["status"]
        assert complete("iommufdctl exec --vm-f", library) == ["--vm-from-argv"]
        assert complete("iommufdctl vm create g1 --handoff ", library) == ["bound", "unbound"]
        assert complete("iommufdctl vm create g1 --handoff bound --c", library) == ["--cgroup"]


def test_live_values():
    for library in (True, False):
        live_values(library)


def live_values(library):
    def complete(line):
        return complete_line(line, library)

    with Cgroup("completion") as cg, Broker() as b:
        sock = "--socket " + b.socket
        b.ctl("vm", "create", "alpha", "--cgroup", cg.child("alpha").path, check=0)
        b.ctl("vm", "create", "beta", "--cgroup", cg.child("beta").path, check=0)
        b.ctl("vm", "attach", "alpha", NEST_VTD[0], check=0)
        assert complete("iommufdctl %s vm show " % sock) == ["alpha", "beta"]
        assert complete("iommufdctl vm destroy b --socket=%s" % b.socket) == [], "completing the socket's value"
        assert complete("iommufdctl --socket=%s vm destroy b" % b.socket) == ["beta"]
        assert complete("iommufdctl %s exec --vm a" % sock) == ["alpha"]
        # attach offers the free vfio-pci devices only; detach the guest's own
        free = complete("iommufdctl %s vm attach beta " % sock)
        assert NEST_VTD[1] in free and SMMU in free and NEST_VTD[0] not in free, free
        # bash replaces only what follows the last ':' of a BDF
        assert complete("iommufdctl %s vm attach beta 0000:0" % sock) == [SMMU[5:]]
        assert complete("iommufdctl %s vm attach beta 0000:65:" % sock) == []
        assert complete("iommufdctl %s vm attach beta 0000:66:" % sock) == [NEST_VTD[1][8:]]
        assert complete("iommufdctl %s vm detach alpha " % sock) == [NEST_VTD[0]]
        assert complete("iommufdctl %s vm detach beta " % sock) == []
        b.ctl("vm", "destroy", "alpha", check=0)
        b.ctl("vm", "destroy", "beta", check=0)
    # no broker on that socket: no live values, and no error on the terminal
    assert complete("iommufdctl --socket /nonexistent/x.sock vm show ") == []


complete = complete_line


if __name__ == "__main__":
    run([test_static_words, test_live_values])
