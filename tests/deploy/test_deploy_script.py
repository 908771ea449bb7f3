"""deploy-docker.sh against a stub `docker` that records its arguments.

No Docker engine runs on test machines, so tests/deploy/docker stands in for
the CLI: each call is logged, and the environment decides whether a container
"exists" or a subcommand fails. The script's real work is in which docker
commands it runs, in which order, with which arguments; that is what is checked
here, plus its refusals (no docker, bad ports, missing config) and shellcheck.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "deploy-docker.sh")
STUB = os.path.join(HERE, "docker")
TIMEOUT = 60


def sandbox_path(dest, without):
    """A PATH directory holding links to every command on the current PATH
    except those named in `without` (to test a host lacking docker or
    python3). Returns dest."""
    os.makedirs(dest, exist_ok=True)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            src = os.path.join(d, name)
            link = os.path.join(dest, name)
            if name in without or os.path.lexists(link):
                continue
            if os.path.isfile(src) and os.access(src, os.X_OK):
                os.symlink(src, link)
    return dest


class DeployScriptTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="punchd-deploy-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.bin = os.path.join(self.tmp, "stubbin")
        os.mkdir(self.bin)
        shutil.copy(STUB, os.path.join(self.bin, "docker"))
        self.log = os.path.join(self.tmp, "docker.log")
        self.config = os.path.join(self.tmp, "config.json")

    def write_config(self, obj_or_text, path=None):
        path = path or self.config
        with open(path, "w", encoding="utf-8") as f:
            f.write(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, indent=2))
        return path

    def run_script(self, *args, existing=False, fail=None, path=None):
        """Runs deploy-docker.sh from a scratch directory; returns the
        CompletedProcess with .calls = the docker invocations (lists)."""
        env = dict(os.environ, DOCKER_STUB_LOG=self.log)
        env["PATH"] = path if path is not None else self.bin + os.pathsep + env.get("PATH", "")
        env["DOCKER_STUB_EXISTING"] = "1" if existing else "0"
        env.pop("DOCKER_STUB_FAIL", None)
        if fail:
            env["DOCKER_STUB_FAIL"] = fail
        # Environment overrides the script must not depend on.
        for k in [k for k in env if k.startswith("PUNCHD_")]:
            del env[k]
        proc = subprocess.run([SCRIPT, *args], cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT,
                              universal_newlines=True)
        proc.calls = self.calls()
        return proc

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log, encoding="utf-8") as f:
            return [line.rstrip("\n").split("\x1f")[:-1] for line in f if line.strip("\n")]

    def call(self, proc, first):
        """The one docker call whose first argument is `first`."""
        found = [c for c in proc.calls if c and c[0] == first]
        self.assertEqual(len(found), 1, f"expected one 'docker {first}' in {proc.calls}")
        return found[0]

    @staticmethod
    def publishes(run_call):
        """The -p values of a docker run call, as a set."""
        return {run_call[i + 1] for i, a in enumerate(run_call) if a == "-p"}

    def assert_ok(self, proc):
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")

    # -- the normal deployment -------------------------------------------

    def test_run_publishes_udp_and_tcp_ports_from_config(self):
        self.write_config({"bind": "0.0.0.0", "port": 4567, "peer_ttl": 60})
        p = self.run_script("--config", self.config, "--detach")
        self.assert_ok(p)
        self.assertEqual([c[0] for c in p.calls], ["build", "container", "run"])
        build = self.call(p, "build")
        self.assertEqual(build, ["build", "-f", os.path.join(ROOT, "docker", "Dockerfile"),
                                 "-t", "punchd:latest", ROOT])
        run = self.call(p, "run")
        self.assertEqual(self.publishes(run), {"4567:4567/udp", "4567:4567/tcp"})
        self.assertIn("-d", run)
        self.assertIn("--restart=always", run)
        self.assertEqual(run[run.index("--name") + 1], "punchd")
        self.assertEqual(run[run.index("-v") + 1], f"{self.config}:/etc/punchd/config.json:ro")
        self.assertEqual(run[-1], "punchd:latest")
        self.assertFalse([a for a in run if a.startswith("PUNCHD_")], "no override without --port")

    def test_port_flag_overrides_config_and_reaches_punchd(self):
        self.write_config({"port": 4567})
        for args in (["--port", "5000"], ["--port=5000"]):
            if os.path.exists(self.log):
                os.unlink(self.log)
            p = self.run_script("--config", self.config, "--detach", *args)
            self.assert_ok(p)
            run = self.call(p, "run")
            self.assertEqual(self.publishes(run), {"5000:5000/udp", "5000:5000/tcp"})
            # The container must listen where it is published: punchd's
            # environment override, which its --health sees as well.
            self.assertEqual(run[run.index("-e") + 1], "PUNCHD_PORT=5000")

    def test_default_port_when_config_has_none(self):
        self.write_config({"log_level": "debug"})
        p = self.run_script("--config", self.config, "--detach")
        self.assert_ok(p)
        self.assertEqual(self.publishes(self.call(p, "run")), {"3000:3000/udp", "3000:3000/tcp"})

    def test_ws_port_and_probe_port_are_published(self):
        self.write_config({"port": 3000, "ws_port": 8080, "probe_port": 3001})
        p = self.run_script("--config", self.config, "--detach")
        self.assert_ok(p)
        self.assertEqual(self.publishes(self.call(p, "run")),
                         {"3000:3000/udp", "8080:8080/tcp", "3001:3001/udp"})

    def test_default_config_is_the_one_beside_the_script(self):
        with open(os.path.join(ROOT, "config.json"), encoding="utf-8") as f:
            port = json.load(f).get("port", 3000)
        p = self.run_script("--detach")
        self.assert_ok(p)
        run = self.call(p, "run")
        self.assertEqual(run[run.index("-v") + 1], os.path.join(ROOT, "config.json") + ":/etc/punchd/config.json:ro")
        self.assertIn(f"{port}:{port}/udp", self.publishes(run))

    def test_config_path_with_spaces_and_relative(self):
        d = os.path.join(self.tmp, "my configs")
        os.mkdir(d)
        self.write_config({"port": 4000}, os.path.join(d, "node a.json"))
        p = self.run_script("--config", "my configs/node a.json", "--detach", "--name", "node-a",
                            "--image", "punchd:test")
        self.assert_ok(p)
        run = self.call(p, "run")
        self.assertEqual(run[run.index("-v") + 1], os.path.join(d, "node a.json") + ":/etc/punchd/config.json:ro")
        self.assertEqual(run[run.index("--name") + 1], "node-a")
        self.assertEqual(run[-1], "punchd:test")
        self.assertEqual(self.call(p, "build")[4], "punchd:test")

    def test_follows_logs_unless_detached(self):
        self.write_config({"port": 4567})
        p = self.run_script("--config", self.config)
        self.assert_ok(p)
        self.assertEqual(p.calls[-1], ["logs", "-f", "punchd"])
        self.assertIn("docker stub: logs of punchd", p.stdout)

    # -- replacing, stopping, logs -------------------------------------

    def test_replaces_previous_container_after_building(self):
        self.write_config({"port": 4567})
        p = self.run_script("--config", self.config, "--detach", existing=True)
        self.assert_ok(p)
        self.assertEqual([c[0] for c in p.calls], ["build", "container", "stop", "rm", "run"])
        self.assertEqual(p.calls[1], ["container", "inspect", "punchd"])
        self.assertEqual(p.calls[2], ["stop", "punchd"])
        self.assertEqual(p.calls[3], ["rm", "punchd"])

    def test_no_stop_when_nothing_to_replace(self):
        self.write_config({"port": 4567})
        p = self.run_script("--config", self.config, "--detach", existing=False)
        self.assert_ok(p)
        self.assertNotIn("stop", [c[0] for c in p.calls])
        self.assertNotIn("rm", [c[0] for c in p.calls])

    def test_failed_build_leaves_the_old_container_running(self):
        self.write_config({"port": 4567})
        p = self.run_script("--config", self.config, "--detach", existing=True, fail="build")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual([c[0] for c in p.calls], ["build"])

    def test_stop(self):
        p = self.run_script("--stop", existing=True)
        self.assert_ok(p)
        self.assertEqual(p.calls, [["container", "inspect", "punchd"], ["stop", "punchd"], ["rm", "punchd"]])
        os.unlink(self.log)
        p = self.run_script("--stop", "--name", "other", existing=False)
        self.assert_ok(p)
        self.assertEqual(p.calls, [["container", "inspect", "other"]])
        self.assertIn("no container named other", p.stdout)

    def test_logs(self):
        p = self.run_script("--logs", existing=True)
        self.assert_ok(p)
        self.assertEqual(p.calls[-1], ["logs", "-f", "punchd"])
        self.assertIn("docker stub: logs of punchd", p.stdout)
        os.unlink(self.log)
        p = self.run_script("--logs", existing=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no container named punchd", p.stderr)
        self.assertNotIn("logs", [c[0] for c in p.calls])

    # -- refusals ------------------------------------------------------

    def test_missing_docker(self):
        path = sandbox_path(os.path.join(self.tmp, "nodocker"), without={"docker"})
        self.write_config({"port": 4567})
        for args in (["--config", self.config], ["--stop"], ["--logs"]):
            p = self.run_script(*args, path=path)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("docker not found", p.stderr)
            self.assertIn("install Docker", p.stderr)
        self.assertEqual(p.calls, [])
        # --help needs no docker.
        p = self.run_script("--help", path=path)
        self.assert_ok(p)

    def test_ports_read_without_python3(self):
        """Hosts without python3 (or jq): the sed reading, on both layouts."""
        path = sandbox_path(os.path.join(self.tmp, "nopython"), without={"python3", "docker"})
        os.symlink(os.path.join(self.bin, "docker"), os.path.join(path, "docker"))
        cases = [
            ('{\n  "ws_port": 0,\n  "port": 4711,\n  "probe_port": 3002\n}\n',
             {"4711:4711/udp", "4711:4711/tcp", "3002:3002/udp"}),
            ('{"bind":"0.0.0.0","port":4712,"ws_port":9000}',
             {"4712:4712/udp", "9000:9000/tcp"}),
            ('{"log_level": "info"}', {"3000:3000/udp", "3000:3000/tcp"}),
        ]
        for text, want in cases:
            if os.path.exists(self.log):
                os.unlink(self.log)
            self.write_config(text)
            p = self.run_script("--config", self.config, "--detach", path=path)
            self.assert_ok(p)
            self.assertEqual(self.publishes(self.call(p, "run")), want, text)
        self.write_config('{"port": "3000"}')
        p = self.run_script("--config", self.config, "--detach", path=path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("port must be an integer", p.stderr)

    def test_bad_ports_are_refused(self):
        self.write_config({"port": 4567})
        for bad in ("0", "65536", "70000", "abc", "12x", ""):
            p = self.run_script("--config", self.config, "--port", bad)
            self.assertEqual(p.returncode, 1, bad)
            self.assertIn("--port must be an integer from 1 to 65535", p.stderr)
            self.assertNotIn("run", [c[0] for c in p.calls])
        for cfg, msg in (({"port": 0}, "port 0"), ({"port": "3000"}, "port must be an integer"),
                         ({"port": True}, "port must be an integer"), ({"port": 99999}, "port must be an integer"),
                         ("{not json", "cannot read")):
            self.write_config(cfg)
            p = self.run_script("--config", self.config)
            self.assertEqual(p.returncode, 1, cfg)
            self.assertIn(msg, p.stderr)
            self.assertEqual(p.calls, [], "nothing is built or run for a bad config")

    def test_missing_config(self):
        p = self.run_script("--config", os.path.join(self.tmp, "absent.json"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("absent.json not found", p.stderr)
        self.assertIn("dist/config.sample.json", p.stderr)
        self.assertEqual(p.calls, [])

    def test_usage(self):
        p = self.run_script("--help")
        self.assert_ok(p)
        for word in ("--port", "--detach", "--stop", "--logs", "--help", "--restart=always",
                     "/etc/punchd/config.json:ro"):
            self.assertIn(word, p.stdout)
        p = self.run_script("--bogus")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown argument: --bogus", p.stderr)
        p = self.run_script("--port")
        self.assertEqual(p.returncode, 1)
        self.assertIn("--port needs a value", p.stderr)
        self.assertEqual(p.calls, [])


class ShellcheckTest(unittest.TestCase):
    def test_shellcheck_clean(self):
        sc = shutil.which("shellcheck")
        self.assertIsNotNone(sc, "shellcheck is missing: `make deps` installs it (scripts/deps.d/deploy.txt)")
        proc = subprocess.run([sc, "--external-sources", SCRIPT, STUB], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stdout)

    def test_shellcheck_can_fail(self):
        """The same invocation flags a known mistake, so a clean result means something."""
        sc = shutil.which("shellcheck")
        self.assertIsNotNone(sc)
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
            f.write("#!/usr/bin/env bash\nrm -rf $1/*\n")
            f.flush()
            proc = subprocess.run([sc, "--external-sources", f.name], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, universal_newlines=True, timeout=TIMEOUT)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("SC2086", proc.stdout)


if __name__ == "__main__":
    unittest.main()
