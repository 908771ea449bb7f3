"""Small, honest checkers for the deployment files (Python standard library).

hadolint is not in Debian and npm linters cannot be installed in CI, so this
module reads the files itself:

- parse_dockerfile() / lint_dockerfile(): a Dockerfile parser (continuations,
  comments, parser directives, JSON and shell forms) and the project's rules
  for docker/Dockerfile; lint_dockerfile() returns a list of problems, empty
  when the file is acceptable.
- shell_commands(): splits a RUN line into its simple commands.
- dockerignore_excluded(): Docker's .dockerignore matching (filepath.Match
  patterns plus **, `!` exceptions, the last matching line wins).
- parse_yaml(): the subset of YAML that docker-compose.yml uses (block
  mappings and sequences, flow sequences of scalars, quoted and plain
  scalars, comments); anything else raises ValueError instead of guessing.
"""
import json
import re
import shlex

# --------------------------------------------------------------------------
# Dockerfile


class Instruction:
    def __init__(self, lineno, cmd, args):
        self.lineno = lineno      # line of the instruction's first line
        self.cmd = cmd            # upper-cased keyword, e.g. "RUN"
        self.args = args          # the rest, continuations joined with spaces

    def json_args(self):
        """The exec (JSON array) form's list, or None for the shell form."""
        a = self.args.strip()
        if not a.startswith("["):
            return None
        try:
            v = json.loads(a)
        except ValueError:
            return None
        return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None

    def __repr__(self):
        return f"{self.lineno}: {self.cmd} {self.args}"


def parse_dockerfile(text):
    """Instructions of a Dockerfile, in order. Comment lines (also inside a
    continuation, as Docker drops them) and blank lines are skipped; a line
    ending in a backslash continues on the next."""
    out = []
    cur, start = None, 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not line and cur is None):
            continue
        if cur is None:
            cur, start = "", n
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        m = re.match(r"^(\w+)\s*(.*)$", cur.strip(), re.S)
        if not m:
            raise ValueError(f"line {start}: cannot parse {cur!r}")
        out.append(Instruction(start, m.group(1).upper(), m.group(2).strip()))
        cur = None
    if cur is not None:
        raise ValueError(f"line {start}: continuation at end of file")
    return out


def split_stages(instructions):
    """[(from_instruction, [instructions of the stage])...]."""
    stages = []
    for ins in instructions:
        if ins.cmd == "FROM":
            stages.append((ins, []))
        elif not stages:
            if ins.cmd != "ARG":
                raise ValueError(f"line {ins.lineno}: {ins.cmd} before the first FROM")
        else:
            stages[-1][1].append(ins)
    return stages


def from_parts(ins):
    """(image, stage name or None) of a FROM, flags such as --platform dropped."""
    words = [w for w in ins.args.split() if not w.startswith("--")]
    image = words[0] if words else ""
    name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return image, name


def shell_commands(script):
    """The simple commands of a shell line: split on &&, ||, ; and | outside
    quotes, each returned as a list of words."""
    lex = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    cmds, cur = [], []
    for tok in lex:
        if tok in ("&&", "||", ";", "|", "&"):
            if cur:
                cmds.append(cur)
            cur = []
        else:
            cur.append(tok)
    if cur:
        cmds.append(cur)
    return cmds


def apt_installed(cmd):
    """Packages of an `apt-get install` command (words), else None."""
    if len(cmd) < 2 or cmd[0] not in ("apt-get", "apt") or "install" not in cmd:
        return None
    rest = cmd[cmd.index("install") + 1:]
    return [w for w in rest if not w.startswith("-")]


PINNED_TAG = re.compile(r"^debian:bookworm-\d{8}(-slim)?$|^debian:bookworm[\w.-]*@sha256:[0-9a-f]{64}$")
FETCHERS = ("curl", "wget", "nc", "busybox")


def lint_dockerfile(text, runtime_packages=(), exposed=()):
    """Problems (strings) of a Dockerfile under the project's rules; [] = ok.
    runtime_packages: packages the last stage must install; exposed: ports
    (e.g. "3000/udp") it must EXPOSE."""
    problems = []
    try:
        stages = split_stages(parse_dockerfile(text))
    except ValueError as e:
        return [str(e)]
    if len(stages) < 2:
        return ["not multi-stage: a build stage and a runtime stage are needed"]
    names = set()
    for frm, _ in stages:
        image, name = from_parts(frm)
        if image not in names:
            if not image.startswith("debian:bookworm"):
                problems.append(f"line {frm.lineno}: base {image!r} is not Debian bookworm")
            elif not PINNED_TAG.match(image):
                problems.append(f"line {frm.lineno}: base {image!r} is not pinned "
                                "(use a dated tag such as debian:bookworm-YYYYMMDD-slim or a digest)")
        if name:
            names.add(name)

    for _, body in stages:
        for ins in body:
            if ins.cmd == "ADD" and re.search(r"(^|\s)(https?://|git@|ftp://)", ins.args):
                problems.append(f"line {ins.lineno}: ADD of a URL (fetch in a RUN with a checksum, or COPY)")
            if ins.cmd == "COPY":
                m = re.search(r"--from=(\S+)", ins.args)
                if m and m.group(1) not in names and not m.group(1).isdigit():
                    problems.append(f"line {ins.lineno}: COPY --from={m.group(1)}: no such stage")
            if ins.cmd != "RUN":
                continue
            cmds = shell_commands(ins.args)
            words = [w for c in cmds for w in c]
            if "sudo" in words:
                problems.append(f"line {ins.lineno}: sudo in a RUN (the build runs as root)")
            installs = [c for c in cmds if apt_installed(c) is not None]
            if installs:
                if not any(c[:2] == ["apt-get", "update"] for c in cmds):
                    problems.append(f"line {ins.lineno}: apt-get install without apt-get update in the same RUN")
                if not any(c[:2] == ["rm", "-rf"] and any(a.startswith("/var/lib/apt/lists") for a in c[2:])
                           for c in cmds):
                    problems.append(f"line {ins.lineno}: apt lists not removed (rm -rf /var/lib/apt/lists/*) "
                                    "in the RUN that installs")
                for c in installs:
                    if "--no-install-recommends" not in c:
                        problems.append(f"line {ins.lineno}: apt-get install without --no-install-recommends")
                    if "-y" not in c and "--yes" not in c and "-qy" not in c:
                        problems.append(f"line {ins.lineno}: apt-get install without -y")

    # The build stage(s): the project's own recipe, `make deps` then `make`.
    build_cmds = [c for _, body in stages[:-1] for ins in body if ins.cmd == "RUN"
                  for c in shell_commands(ins.args)]
    makes = [c for c in build_cmds if c and c[0] == "make"]
    deps_at = [i for i, c in enumerate(makes) if c == ["make", "deps"]]
    build_at = [i for i, c in enumerate(makes) if c == ["make"] or c == ["make", "all"]]
    if not deps_at:
        problems.append("build stage does not run `make deps`")
    if not build_at:
        problems.append("build stage does not run `make`")
    if deps_at and build_at and min(build_at) < min(deps_at):
        problems.append("build stage runs `make` before `make deps`")
    own = [c for c in build_cmds if c and c[0] in ("gcc", "cc", "clang", "cmake")]
    if own:
        problems.append(f"build stage compiles by itself ({' '.join(own[0])}): use make, one recipe")

    # The runtime stage.
    _, final = stages[-1]
    pkgs = [p for ins in final if ins.cmd == "RUN" for c in shell_commands(ins.args)
            for p in (apt_installed(c) or [])]
    for p in pkgs:
        if p.endswith("-dev") or p in ("gcc", "make", "build-essential", "pkg-config", "curl", "wget"):
            problems.append(f"runtime stage installs {p} (build or fetch tool)")
    for p in runtime_packages:
        if p not in pkgs:
            problems.append(f"runtime stage does not install {p}")
    users = [ins for ins in final if ins.cmd == "USER"]
    if not users:
        problems.append("runtime stage has no USER: it would run as root")
    else:
        who = users[-1].args.split(":")[0].strip()
        if who in ("root", "0", ""):
            problems.append(f"line {users[-1].lineno}: USER {users[-1].args} is root")
    ports = set()
    for ins in final:
        if ins.cmd == "EXPOSE":
            for p in ins.args.split():
                ports.add(p if "/" in p else p + "/tcp")
    for p in exposed:
        if p not in ports:
            problems.append(f"runtime stage does not EXPOSE {p}")
    checks = [ins for ins in final if ins.cmd == "HEALTHCHECK"]
    if not checks:
        problems.append("runtime stage has no HEALTHCHECK")
    else:
        hc = checks[-1].args
        if hc.strip().upper() == "NONE":
            problems.append("HEALTHCHECK NONE")
        m = re.search(r"\bCMD\b\s*(.*)$", hc, re.S)
        if not m:
            problems.append(f"line {checks[-1].lineno}: HEALTHCHECK without CMD")
        else:
            probe = m.group(1).strip()
            try:
                argv = json.loads(probe) if probe.startswith("[") else shlex.split(probe)
            except ValueError:
                argv = probe.split()
            if any(w in FETCHERS or w.split("/")[-1] in FETCHERS for w in argv):
                problems.append(f"line {checks[-1].lineno}: HEALTHCHECK uses a fetch tool ({probe}); "
                                "use punchd --health")
            elif not (argv and argv[0].split("/")[-1] == "punchd" and "--health" in argv):
                problems.append(f"line {checks[-1].lineno}: HEALTHCHECK is not `punchd --health`")
    for kw in ("ENTRYPOINT", "CMD"):
        ins = [i for i in final if i.cmd == kw]
        if ins and ins[-1].json_args() is None:
            problems.append(f"line {ins[-1].lineno}: {kw} in shell form: punchd would not be PID 1 "
                            "and would miss SIGTERM")
    return problems


# --------------------------------------------------------------------------
# .dockerignore


def _glob_regex(pattern):
    """Regex for a .dockerignore pattern: * and ? stop at '/', ** crosses
    directories, [..] classes pass through."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i)
            if j < 0:
                out.append(re.escape(c))
            else:
                cls = pattern[i + 1:j].replace("\\", "\\\\")
                if cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append(f"[{cls}]")
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def parse_dockerignore(text):
    """[(exclude: bool, regex)] in file order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        if keep:
            line = line[1:].strip()
        line = re.sub(r"/+", "/", line).strip("/")
        if line.startswith("./"):
            line = line[2:]
        rules.append((not keep, _glob_regex(line)))
    return rules


def dockerignore_excluded(rules, relpath):
    """True if relpath ('/'-separated, relative to the context) is left out
    of the build context. A path is also left out when one of its parent
    directories matches (Docker does not descend into it)."""
    parts = relpath.strip("/").split("/")
    excluded = False
    for k in range(1, len(parts) + 1):
        prefix = "/".join(parts[:k])
        for exclude, rx in rules:
            if rx.match(prefix):
                excluded = exclude
        if excluded:
            return True
    return excluded


# --------------------------------------------------------------------------
# YAML subset


def _scalar(text, lineno):
    t = text.strip()
    if not t:
        return None
    if t[0] == '"':
        try:
            v, end = json.JSONDecoder().raw_decode(t)
        except ValueError:
            raise ValueError(f"line {lineno}: bad double-quoted scalar {t!r}")
        if t[end:].strip():
            raise ValueError(f"line {lineno}: text after a quoted scalar: {t!r}")
        return v
    if t[0] == "'":
        if not t.endswith("'") or len(t) < 2:
            raise ValueError(f"line {lineno}: bad single-quoted scalar {t!r}")
        return t[1:-1].replace("''", "'")
    if t[0] == "[":
        if not t.endswith("]"):
            raise ValueError(f"line {lineno}: multi-line flow sequences are not supported")
        inner = t[1:-1].strip()
        if not inner:
            return []
        items, cur, q = [], "", None
        for ch in inner:
            if q:
                cur += ch
                if ch == q:
                    q = None
            elif ch in "\"'":
                q = ch
                cur += ch
            elif ch == ",":
                items.append(_scalar(cur, lineno))
                cur = ""
            else:
                cur += ch
        items.append(_scalar(cur, lineno))
        return items
    if t[0] in "{&*!|>%@`":
        raise ValueError(f"line {lineno}: unsupported YAML construct {t!r}")
    return t


def _strip_comment(line):
    """The line without a trailing ' # comment' (outside quotes)."""
    q = None
    for i, ch in enumerate(line):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def parse_yaml(text):
    """Nested dicts/lists/strings for the block-style YAML subset described
    in the module docstring. Plain scalars stay strings ("30s", "3")."""
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {n}: tab in indentation")
        s = _strip_comment(raw)
        if s.strip():
            lines.append((n, len(s) - len(s.lstrip(" ")), s.strip()))

    def block(i, indent):
        if i >= len(lines):
            return None, i
        n, ind, s = lines[i]
        if ind != indent:
            raise ValueError(f"line {n}: unexpected indentation")
        if s.startswith("- ") or s == "-":
            out = []
            while i < len(lines) and lines[i][1] == indent and (lines[i][2].startswith("- ") or lines[i][2] == "-"):
                n, _, s = lines[i]
                item = s[1:].strip()
                if not item:
                    v, i = block(i + 1, lines[i + 1][1]) if i + 1 < len(lines) and lines[i + 1][1] > indent \
                        else (None, i + 1)
                    out.append(v)
                    continue
                if re.match(r"^[\w.-]+:(\s|$)", item):
                    raise ValueError(f"line {n}: mappings inside sequences are not supported")
                out.append(_scalar(item, n))
                i += 1
            return out, i
        out = {}
        while i < len(lines) and lines[i][1] == indent:
            n, _, s = lines[i]
            m = re.match(r'^("[^"]*"|[\w./-]+):(?:\s+(.*))?$', s)
            if not m:
                raise ValueError(f"line {n}: expected 'key: value', got {s!r}")
            key = m.group(1).strip('"')
            if key in out:
                raise ValueError(f"line {n}: duplicate key {key!r}")
            if m.group(2):
                out[key] = _scalar(m.group(2), n)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1][1] > indent:
                out[key], i = block(i + 1, lines[i + 1][1])
            elif i + 1 < len(lines) and lines[i + 1][1] == indent and lines[i + 1][2].startswith("-"):
                out[key], i = block(i + 1, indent)   # a sequence at the key's indentation
            else:
                out[key] = None
                i += 1
        if i < len(lines) and lines[i][1] > indent:
            raise ValueError(f"line {lines[i][0]}: unexpected indentation")
        return out, i

    if not lines:
        return None
    v, i = block(0, lines[0][1])
    if i != len(lines):
        raise ValueError(f"line {lines[i][0]}: unexpected indentation")
    return v
