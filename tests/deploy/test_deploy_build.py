"""The Dockerfile's build stage really builds, and its runtime stage has the libraries.

Without a Docker engine, the build stage is reproduced as closely as this
machine allows: a temporary `git clone` of the repository, cut down to what
.dockerignore lets into the build context, in which the build stage's `make`
commands (exactly `make deps` and `make`, read from docker/Dockerfile) run
with a clean environment. The apt-get lines before them only install make
itself, which is present here. Then every shared library the resulting
binary needs must come from a package the runtime stage installs (or from
libc6, which the base image has).
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import deploylint

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")
BUILD_TIMEOUT = 900
# In every Debian base image already (Essential / required).
BASE_PACKAGES = {"libc6", "libgcc-s1"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def clean_env():
    """The environment without what an enclosing `make test` passes down, as
    a fresh container would have it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "BUILD", "SAN",
                        "CFLAGS", "LDFLAGS", "EXTRA_CFLAGS", "EXTRA_LDFLAGS", "CC")
           and not k.startswith("PUNCHD_")}
    env["LC_ALL"] = "C"
    return env


def stages():
    return deploylint.split_stages(deploylint.parse_dockerfile(read(DOCKERFILE)))


def build_stage_make_commands():
    """The `make ...` commands of the build stage(s), in order, as strings."""
    out = []
    for _, body in stages()[:-1]:
        for ins in body:
            if ins.cmd == "RUN":
                out += [" ".join(c) for c in deploylint.shell_commands(ins.args) if c[0] == "make"]
    return out


def runtime_packages():
    _, final = stages()[-1]
    return {p for ins in final if ins.cmd == "RUN" for c in deploylint.shell_commands(ins.args)
            for p in (deploylint.apt_installed(c) or [])}


class BuildStageTest(unittest.TestCase):
    """One clone and one build shared by the tests below (setUpClass)."""

    @classmethod
    def setUpClass(cls):
        cls.error = None
        if not os.path.isdir(os.path.join(ROOT, ".git")) or not shutil.which("git"):
            raise unittest.SkipTest("not a git checkout (or no git): nothing to clone")
        cls.tmp = tempfile.mkdtemp(prefix="punchd-docker-build-")
        cls.src = os.path.join(cls.tmp, "src")
        subprocess.run(["git", "clone", "--quiet", "--no-local", ROOT, cls.src], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        rules = deploylint.parse_dockerignore(read(DOCKERIGNORE))
        cls.removed = []
        for dirpath, dirnames, filenames in os.walk(cls.src, topdown=True):
            rel = os.path.relpath(dirpath, cls.src)
            for name in list(dirnames) + filenames:
                p = name if rel == "." else f"{rel}/{name}"
                if deploylint.dockerignore_excluded(rules, p):
                    full = os.path.join(cls.src, p)
                    if os.path.isdir(full) and not os.path.islink(full):
                        shutil.rmtree(full)
                        dirnames.remove(name)
                    else:
                        os.unlink(full)
                    cls.removed.append(p)
        cls.commands = build_stage_make_commands()
        proc = subprocess.run(["sh", "-c", " && ".join(cls.commands)], cwd=cls.src, env=clean_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=BUILD_TIMEOUT)
        cls.build_rc, cls.build_out = proc.returncode, proc.stdout
        cls.binary = os.path.join(cls.src, "build", "punchd")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_recipe_is_make_deps_then_make(self):
        self.assertEqual(self.commands, ["make deps", "make"])

    def test_context_is_what_dockerignore_leaves(self):
        self.assertIn(".git", self.removed)
        self.assertFalse(os.path.exists(os.path.join(self.src, ".git")))
        self.assertFalse(os.path.exists(os.path.join(self.src, "config.json")))

    def test_build_stage_builds_punchd(self):
        self.assertEqual(self.build_rc, 0, self.build_out[-5000:])
        self.assertTrue(os.access(self.binary, os.X_OK), self.build_out[-5000:])
        out = subprocess.run([self.binary, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertRegex(out.stdout, r"^punchd \d+\.\d+")

    def test_runtime_stage_has_every_needed_library(self):
        self.assertEqual(self.build_rc, 0, "the build failed (see test_build_stage_builds_punchd)")
        for tool in ("readelf", "dpkg"):
            if not shutil.which(tool):
                self.skipTest(f"{tool} not available")
        dyn = subprocess.run(["readelf", "-d", self.binary], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
        self.assertTrue(needed, dyn)
        wanted = runtime_packages()
        owners = set()
        for soname in needed:
            q = subprocess.run(["dpkg", "-S", f"*/{soname}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            self.assertEqual(q.returncode, 0, f"no package owns {soname}: {q.stderr}")
            pkgs = {line.split(":")[0].strip() for line in q.stdout.splitlines()}
            # A soname can also appear in -dev packages' file lists; the runtime
            # package is the one that is not -dev.
            pkgs = {p for p in pkgs if not p.endswith("-dev")}
            self.assertTrue(pkgs & (wanted | BASE_PACKAGES),
                            f"{soname} comes from {sorted(pkgs)}: add it to the runtime stage's apt-get install")
            owners |= pkgs
        unused = wanted - owners
        self.assertFalse(unused, f"the runtime stage installs {sorted(unused)}, which punchd does not link")


if __name__ == "__main__":
    unittest.main()
