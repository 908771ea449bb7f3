"""`make install`, the systemd unit, the man page and the sample config.

- `make install DESTDIR=...` (and PREFIX, SYSCONFDIR) lays out exactly the
  expected tree; `make uninstall` takes it away again.
- The installed unit passes `systemd-analyze verify` with no complaint (where
  systemd-analyze exists), has the hardening the issue asks for, and its
  LimitNOFILE really fits max_connections: the real punchd, started under that
  limit with the sample config, does not warn about its open-file limit.
- The man page renders under groff with all warnings enabled and documents
  every key of the sample config.
"""
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

DIST = os.path.join(ROOT, "dist")
UNIT = os.path.join(DIST, "punchd.service")
MAN = os.path.join(DIST, "punchd.1")
SAMPLE = os.path.join(DIST, "config.sample.json")
BUILD = os.path.relpath(os.environ.get("TEST_PUNCHD_BUILD") or os.path.join(ROOT, "build"), ROOT)
CLIENT = os.path.exists(os.path.join(ROOT, "mk", "client.mk"))
TIMEOUT = 600


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def make(*args):
    """Runs make in the repository on the test run's build tree; returns the
    CompletedProcess (output in .stdout)."""
    env = dict(os.environ)
    for k in ("DESTDIR", "PREFIX", "BINDIR", "LIBDIR", "INCLUDEDIR", "MANDIR", "DOCDIR", "UNITDIR",
              "SYSCONFDIR"):
        env.pop(k, None)
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, f"BUILD={BUILD}", *args], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=TIMEOUT)


def tree(root):
    """{relative path: mode} of the regular files under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = os.stat(p).st_mode & 0o7777
    return out


def unit_directives(text):
    """{(section, key): [values]} of a systemd unit file."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault((section, k.strip()), []).append(v.strip())
    return out


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="punchd-install-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def install(self, *args):
        p = make("install", *args)
        self.assertEqual(p.returncode, 0, p.stdout)
        return p

    def test_destdir_tree(self):
        stage = os.path.join(self.tmp, "stage")
        self.install(f"DESTDIR={stage}")
        want = {
            "usr/local/bin/punchd": 0o755,
            "usr/local/share/man/man1/punchd.1": 0o644,
            "usr/local/share/doc/punchd/config.sample.json": 0o644,
            "usr/local/lib/systemd/system/punchd.service": 0o644,
        }
        if CLIENT:
            want.update({"usr/local/bin/punch": 0o755, "usr/local/lib/libpunch.a": 0o644,
                         "usr/local/include/punch.h": 0o644})
        self.assertEqual(tree(stage), want)
        for path in want:
            self.assertTrue(os.path.isfile(os.path.join(stage, path)), path)
        p = os.path.join(stage, "usr/local")
        with open(os.path.join(p, "bin/punchd"), "rb") as a, open(os.path.join(ROOT, BUILD, "punchd"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(read(os.path.join(p, "share/man/man1/punchd.1")), read(MAN))
        self.assertEqual(read(os.path.join(p, "share/doc/punchd/config.sample.json")), read(SAMPLE))
        # The default PREFIX is the unit's own: installed unchanged.
        self.assertEqual(read(os.path.join(p, "lib/systemd/system/punchd.service")), read(UNIT))
        out = subprocess.run([os.path.join(p, "bin/punchd"), "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout)

    def test_prefix_and_sysconfdir_reach_the_unit(self):
        stage = os.path.join(self.tmp, "stage")
        self.install(f"DESTDIR={stage}", "PREFIX=/usr", "SYSCONFDIR=/srv/etc")
        files = tree(stage)
        self.assertIn("usr/bin/punchd", files)
        self.assertIn("usr/share/man/man1/punchd.1", files)
        self.assertIn("usr/share/doc/punchd/config.sample.json", files)
        self.assertIn("usr/lib/systemd/system/punchd.service", files)
        self.assertFalse([f for f in files if f.startswith("usr/local/")], files)
        d = unit_directives(read(os.path.join(stage, "usr/lib/systemd/system/punchd.service")))
        self.assertEqual(d[("Service", "ExecStart")], ["/usr/bin/punchd --config %d/config.json"])
        self.assertEqual(d[("Service", "LoadCredential")], ["config.json:/srv/etc/punchd/config.json"])

    def test_uninstall(self):
        stage = os.path.join(self.tmp, "stage")
        self.install(f"DESTDIR={stage}")
        self.assertTrue(tree(stage))
        p = make("uninstall", f"DESTDIR={stage}")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(tree(stage), {})


class UnitTest(unittest.TestCase):
    def setUp(self):
        self.d = unit_directives(read(UNIT))

    def one(self, key, section="Service"):
        v = self.d.get((section, key))
        self.assertIsNotNone(v, f"{key}= missing")
        return v[-1]

    def test_hardening(self):
        for key, want in (("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
                          ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
                          ("CapabilityBoundingSet", ""), ("AmbientCapabilities", ""),
                          ("Restart", "on-failure")):
            self.assertEqual(self.one(key), want, key)
        self.assertIn("@system-service", self.d[("Service", "SystemCallFilter")])
        self.assertRegex(self.one("ExecStart"), r"^/usr/local/bin/punchd --config \S+$")
        self.assertEqual(self.one("WantedBy", "Install"), "multi-user.target")

    def test_limit_nofile_fits_max_connections(self):
        limit = int(self.one("LimitNOFILE"))
        max_conn = json.loads(read(SAMPLE)).get("max_connections", 10000)
        # punchd's own rule (it warns below this): one descriptor per
        # connection plus 64 for its sockets and the rest.
        self.assertGreaterEqual(limit, max_conn + 64)


class PunchdUnderLimit(harness.Punchd):
    """punchd started through prlimit with a fixed open-file limit, as
    LimitNOFILE= sets it."""

    def __init__(self, nofile, *flags, **kw):
        super().__init__(*flags, **kw)
        self.nofile = nofile

    def argv(self):
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--"] + super().argv()


class SampleConfigTest(unittest.TestCase):
    def start(self, nofile=None):
        if nofile is None:
            s = harness.Punchd("--config", SAMPLE)
        else:
            s = PunchdUnderLimit(nofile, "--config", SAMPLE)
        s.start()
        self.addCleanup(s.stop)
        return s

    def test_sample_config_is_accepted(self):
        s = self.start()
        self.assertIsNotNone(s.tcp_port, s.stderr_text())
        s.stop()

    def test_unit_limit_leaves_no_open_file_warning(self):
        limit = int(unit_directives(read(UNIT))[("Service", "LimitNOFILE")][-1])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if os.geteuid() != 0 and hard != resource.RLIM_INFINITY and hard < limit:
            self.skipTest(f"hard open-file limit {hard} < LimitNOFILE {limit} and not root")
        if not shutil.which("prlimit"):
            self.skipTest("prlimit (util-linux) not available")
        s = self.start(limit)
        s.stop()
        self.assertNotIn("open-file limit", s.stderr_text())
        # The same check fails when the limit is only max_connections.
        max_conn = json.loads(read(SAMPLE)).get("max_connections", 10000)
        s = self.start(max_conn)
        s.stop()
        self.assertIn("open-file limit", s.stderr_text())


class SystemdAnalyzeTest(unittest.TestCase):
    """systemd-analyze verify checks the unit as systemd would load it,
    including that ExecStart's binary exists and Documentation= resolves, so
    it runs on a real install: PREFIX=<temp dir>, no DESTDIR."""

    @classmethod
    def setUpClass(cls):
        cls.sa = shutil.which("systemd-analyze")
        if not cls.sa:
            raise unittest.SkipTest("systemd-analyze not available (systemd is not installed)")
        cls.tmp = tempfile.mkdtemp(prefix="punchd-unit-")
        p = make("install", f"PREFIX={cls.tmp}")
        if p.returncode != 0:
            raise AssertionError(p.stdout)
        cls.unit = os.path.join(cls.tmp, "lib/systemd/system/punchd.service")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def verify(self, path):
        env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
        args = [self.sa, "verify"]
        if shutil.which("man"):
            # Documentation=man:punchd(1) must resolve to the installed page.
            env["MANPATH"] = os.path.join(self.tmp, "share", "man") + ":"
        else:
            args.append("--man=no")
        return subprocess.run(args + [path], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=120)

    def test_verify_clean(self):
        p = self.verify(self.unit)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, ""))

    def test_verify_can_fail(self):
        """A typo'd directive and a bad value are reported, so silence above is evidence."""
        bad = os.path.join(self.tmp, "lib/systemd/system/punchd-bad.service")
        text = read(self.unit).replace("PrivateTmp=yes", "PrivateTmpp=yes").replace(
            "LimitNOFILE=20000", "LimitNOFILE=lots")
        with open(bad, "w", encoding="utf-8") as f:
            f.write(text)
        out = self.verify(bad).stdout
        os.unlink(bad)
        self.assertIn("PrivateTmpp", out)
        self.assertIn("lots", out)

    def test_security_exposure(self):
        p = subprocess.run([self.sa, "security", "--offline=yes", "--no-pager", self.unit],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=120, env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        if p.returncode != 0 and not m and "offline" in p.stdout:
            self.skipTest("systemd-analyze security --offline not supported here")
        self.assertIsNotNone(m, p.stdout[-2000:])
        # 10 is an unhardened service; below 2 systemd calls it "OK".
        self.assertLess(float(m.group(1)), 2.0, p.stdout[-4000:])


class ManPageTest(unittest.TestCase):
    def groff(self, path):
        g = shutil.which("groff")
        self.assertIsNotNone(g, "groff is missing: `make deps` installs groff-base (scripts/deps.d/deploy.txt)")
        return subprocess.run([g, "-man", "-Tutf8", "-ww", "-z", path], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)

    def test_renders_without_warnings(self):
        p = self.groff(MAN)
        self.assertEqual((p.returncode, p.stdout), (0, ""))

    def test_groff_check_can_fail(self):
        with tempfile.NamedTemporaryFile("w", suffix=".1") as f:
            f.write(read(MAN).replace(".SH OPTIONS", ".SH OPTIONS\n.BOGUS x\n.IP \\fBunclosed"))
            f.flush()
            self.assertNotEqual(self.groff(f.name).stdout, "")

    def test_documents_the_config(self):
        text = read(MAN)
        plain = re.sub(r"\\-", "-", text)
        for key in json.loads(read(SAMPLE)):
            self.assertIn(key, text, f"man page does not document {key}")
        for word in ("--config", "--health", "PUNCHD_", "/etc/punchd/config.json", "SIGTERM", "1001",
                     "trusted_proxies", "probe_port"):
            self.assertIn(word, plain)
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "EXIT STATUS", "FILES",
                        "SEE ALSO"):
            self.assertRegex(text, rf"(?m)^\.SH \"?{section}\"?$")


if __name__ == "__main__":
    unittest.main()
