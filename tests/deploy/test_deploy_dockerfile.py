"""docker/Dockerfile, .dockerignore and docker/docker-compose.yml, read statically.

No Docker engine runs here, so the files are checked by deploylint.py: the
Dockerfile against the project's rules (and each rule is shown to fire on a
Dockerfile that breaks it), the runtime package names against what dpkg
knows, the compose file through a strict YAML-subset parser, and the
.dockerignore with Docker's matching rules. That the build stage really
builds is test_deploy_build.py's job.
"""
import os
import re
import shutil
import subprocess
import unittest

import deploylint

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
COMPOSE = os.path.join(ROOT, "docker", "docker-compose.yml")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")

# The runtime library of each -dev package the build links (the -dev names
# are the ones scripts/deps.sh installs).
RUNTIME_OF_DEV = {
    "libev-dev": "libev4",
    "libcjson-dev": "libcjson1",
    "libsodium-dev": "libsodium23",
    "libwslay-dev": "libwslay1",
    "libhttp-parser-dev": "libhttp-parser2.9",
    "nettle-dev": "libnettle8",
}
RUNTIME_PACKAGES = sorted(RUNTIME_OF_DEV.values())
EXPOSED = ("3000/udp", "3000/tcp", "3001/udp")
CONFIG_IN_IMAGE = "/etc/punchd/config.json"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class DockerfileLintTest(unittest.TestCase):
    def setUp(self):
        self.text = read(DOCKERFILE)

    def lint(self, text):
        return deploylint.lint_dockerfile(text, RUNTIME_PACKAGES, EXPOSED)

    def test_dockerfile_is_clean(self):
        self.assertEqual(self.lint(self.text), [])

    def test_config_path_and_entrypoint(self):
        stages = deploylint.split_stages(deploylint.parse_dockerfile(self.text))
        final = stages[-1][1]
        entry = [i for i in final if i.cmd == "ENTRYPOINT"][-1].json_args()
        cmd = [i for i in final if i.cmd == "CMD"][-1].json_args()
        self.assertEqual(entry, ["punchd"])
        self.assertEqual(cmd, ["--config", CONFIG_IN_IMAGE])
        health = [i for i in final if i.cmd == "HEALTHCHECK"][-1].args
        self.assertIn('["punchd", "--health", "--config", "/etc/punchd/config.json"]', health)
        copies = [i.args for i in final if i.cmd == "COPY"]
        self.assertIn(f"dist/config.sample.json {CONFIG_IN_IMAGE}", copies)
        self.assertIn("--from=build /src/build/punchd /usr/local/bin/punchd", copies)
        # Logs: nothing redirects punchd's stderr to a file.
        self.assertNotRegex(self.text, r"2>\s*/|>>?\s*/var/log")

    def test_linter_catches_each_mistake(self):
        """Every rule fires on a Dockerfile that breaks it, so a clean result
        above is evidence, not a linter that accepts anything."""
        t = self.text
        base = re.search(r"^FROM (\S+) AS build$", t, re.M).group(1)
        mutations = [
            ("single stage", re.sub(r"(?s)^.*?(?=^FROM debian\S+\s*$)", "", t, flags=re.M),
             "not multi-stage"),
            ("not bookworm", t.replace(base, "ubuntu:24.04"), "not Debian bookworm"),
            ("unpinned", t.replace(base, "debian:bookworm-slim"), "not pinned"),
            ("no make deps", t.replace(" && make deps \\\n", ""), "does not run `make deps`"),
            ("no make", t.replace(" && make \\\n", ""), "does not run `make`"),
            ("second recipe", t.replace(" && make \\\n", " && make \\\n && gcc -o x src/main.c \\\n"),
             "compiles by itself"),
            ("-dev at runtime", t.replace("libev4 ", "libev-dev "), "installs libev-dev"),
            ("runtime lib missing", t.replace("libwslay1 ", ""), "does not install libwslay1"),
            ("curl at runtime", t.replace("libev4 ", "libev4 curl "), "installs curl"),
            ("root", t.replace("USER 10001:10001", "USER root"), "is root"),
            ("root uid", t.replace("USER 10001:10001", "USER 0:0"), "is root"),
            ("no user", t.replace("USER 10001:10001", ""), "no USER"),
            ("udp not exposed", t.replace("EXPOSE 3000/udp ", "EXPOSE "), "does not EXPOSE 3000/udp"),
            ("tcp not exposed", t.replace("3000/tcp ", ""), "does not EXPOSE 3000/tcp"),
            ("probe not exposed", t.replace(" 3001/udp", ""), "does not EXPOSE 3001/udp"),
            ("curl health", re.sub(r'CMD \["punchd", "--health".*\]',
                                   'CMD curl -f http://localhost:3000/healthz || exit 1', t),
             "fetch tool"),
            ("wget health", re.sub(r'CMD \["punchd", "--health".*\]',
                                   'CMD ["/usr/bin/wget", "-q", "http://127.0.0.1:3000/healthz"]', t),
             "fetch tool"),
            ("no health", re.sub(r"(?m)^HEALTHCHECK.*\\\n.*\n", "", t), "no HEALTHCHECK"),
            ("lists kept", t.replace(" && rm -rf /var/lib/apt/lists/* \\\n && useradd", " && useradd"),
             "apt lists not removed"),
            ("recommends", t.replace("apt-get install -y --no-install-recommends \\",
                                     "apt-get install -y \\"), "--no-install-recommends"),
            ("stale cache", t.replace("RUN apt-get update \\\n && apt-get install -y --no-install-recommends \\",
                                      "RUN apt-get install -y --no-install-recommends \\"),
             "without apt-get update"),
            ("ADD url", t.replace("COPY dist/config.sample.json",
                                  "ADD https://example.com/config.json"), "ADD of a URL"),
            ("shell entrypoint", t.replace('ENTRYPOINT ["punchd"]', "ENTRYPOINT punchd"), "shell form"),
            ("bad stage", t.replace("--from=build", "--from=builder"), "no such stage"),
        ]
        for what, text, expect in mutations:
            self.assertNotEqual(text, t, f"mutation {what!r} changed nothing: update the test")
            problems = self.lint(text)
            self.assertTrue(any(expect in p for p in problems), f"{what}: {expect!r} not in {problems}")

    def test_parser_handles_continuations_and_comments(self):
        ins = deploylint.parse_dockerfile(
            "# syntax=docker/dockerfile:1\nFROM debian:bookworm-20250929-slim AS b\n"
            "RUN a \\\n# dropped\n && b 'x && y' \\\n  && c\nCMD [\"x\"]\n")
        self.assertEqual([i.cmd for i in ins], ["FROM", "RUN", "CMD"])
        self.assertEqual(deploylint.shell_commands(ins[1].args), [["a"], ["b", "x && y"], ["c"]])
        self.assertEqual(ins[2].json_args(), ["x"])
        self.assertEqual(ins[1].lineno, 3)

    def test_runtime_package_names_are_real(self):
        """Each runtime package is the one its -dev package depends on, as
        Debian says (both are installed here by `make deps`)."""
        if not shutil.which("dpkg-query"):
            self.skipTest("dpkg-query not available (not a Debian system)")
        for dev, lib in RUNTIME_OF_DEV.items():
            out = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Depends}", dev],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            self.assertEqual(out.returncode, 0, f"{dev} is not installed: run make deps")
            status, depends = out.stdout.split("\t", 1)
            deps = {d.strip().split()[0] for d in re.split(r"[,|]", depends) if d.strip()}
            self.assertIn(lib, deps, f"{dev} depends on {depends!r}, not on {lib}")


class DockerignoreTest(unittest.TestCase):
    def setUp(self):
        self.rules = deploylint.parse_dockerignore(read(DOCKERIGNORE))

    def excluded(self, path):
        return deploylint.dockerignore_excluded(self.rules, path)

    def test_what_stays_out(self):
        for p in ("build", "build/punchd", "build/san/obj/main.o", "config.json", ".git/HEAD",
                  "tests/integration/__pycache__/harness.cpython-311.pyc", "tests/ws-node/node_modules/ws/index.js"):
            self.assertTrue(self.excluded(p), p)

    def test_what_the_build_needs_stays_in(self):
        for p in ("Makefile", "src/main.c", "include/config.h", "scripts/deps.sh", "mk/install.mk",
                  "dist/config.sample.json", "docker/Dockerfile", "src/build.c", "docs/config.json"):
            self.assertFalse(self.excluded(p), p)

    def test_copy_sources_exist_and_are_in_the_context(self):
        for ins in deploylint.parse_dockerfile(read(DOCKERFILE)):
            if ins.cmd != "COPY" or "--from=" in ins.args:
                continue
            for src in ins.args.split()[:-1]:
                if src == ".":
                    continue
                self.assertTrue(os.path.exists(os.path.join(ROOT, src)), src)
                self.assertFalse(self.excluded(src), f"COPY {src} but .dockerignore leaves it out")

    def test_matcher(self):
        rules = deploylint.parse_dockerignore("*.log\n!keep.log\n**/tmp\ndocs/*.md\n/abs/\n")
        ex = lambda p: deploylint.dockerignore_excluded(rules, p)  # noqa: E731
        self.assertTrue(ex("a.log"))
        self.assertFalse(ex("sub/a.log"))          # * does not cross '/'
        self.assertFalse(ex("keep.log"))           # the later ! wins
        self.assertTrue(ex("tmp/x") and ex("a/b/tmp") and ex("a/tmp/y"))
        self.assertTrue(ex("docs/x.md"))
        self.assertFalse(ex("docs/sub/x.md"))
        self.assertTrue(ex("abs/file"))
        self.assertFalse(ex("src/abs"))


class ComposeTest(unittest.TestCase):
    def setUp(self):
        self.text = read(COMPOSE)
        self.doc = deploylint.parse_yaml(self.text)

    def test_punchd_service(self):
        svc = self.doc["services"]["punchd"]
        self.assertEqual(svc["build"], {"context": "..", "dockerfile": "docker/Dockerfile"})
        # Paths are relative to the compose file's directory.
        compose_dir = os.path.dirname(COMPOSE)
        self.assertTrue(os.path.isfile(os.path.join(compose_dir, svc["build"]["context"],
                                                    svc["build"]["dockerfile"])))
        self.assertIn("3000:3000/udp", svc["ports"])
        self.assertIn("3000:3000/tcp", svc["ports"])
        self.assertIn(f"../config.json:{CONFIG_IN_IMAGE}:ro", svc["volumes"])
        self.assertTrue(os.path.isfile(os.path.join(compose_dir, "../config.json")))
        self.assertIn(svc["restart"], ("always", "unless-stopped"))
        self.assertEqual(svc["healthcheck"]["test"], ["CMD", "punchd", "--health", "--config", CONFIG_IN_IMAGE])
        for k in ("interval", "timeout", "retries"):
            self.assertIn(k, svc["healthcheck"])

    def test_commented_second_node_is_valid_once_uncommented(self):
        lines = self.text.splitlines()
        start = next(i for i, l in enumerate(lines) if re.match(r"^\s*#\s*punchd2:\s*$", l))
        out = lines[:start]
        for l in lines[start:]:
            m = re.match(r"^(\s*)# ?(.*)$", l)
            out.append(m.group(1) + m.group(2) if m else l)
        doc = deploylint.parse_yaml("\n".join(out) + "\n")
        svcs = doc["services"]
        self.assertIn("punchd2", svcs)
        self.assertIn("redis", svcs)
        self.assertEqual(svcs["punchd2"]["image"], "punchd:latest")
        host = lambda p: p.split(":")[0] + "/" + p.split("/")[-1]  # noqa: E731
        a = {host(p) for p in svcs["punchd"]["ports"]}
        b = {host(p) for p in svcs["punchd2"]["ports"]}
        self.assertFalse(a & b, "the two nodes publish the same host port")
        self.assertTrue(any(v.endswith(f":{CONFIG_IN_IMAGE}:ro") for v in svcs["punchd2"]["volumes"]))

    def test_yaml_subset_parser_refuses_what_it_does_not_know(self):
        self.assertEqual(deploylint.parse_yaml("a:\n  b: \"x # y\"  # c\n  l:\n  - 1\n  - 'q'\n"),
                         {"a": {"b": "x # y", "l": ["1", "q"]}})
        for bad in ("a: {b: 1}\n", "a: &x 1\n", "a:\n\tb: 1\n", "a: 1\na: 2\n", "a:\n  - b: 1\n"):
            with self.assertRaises(ValueError, msg=bad):
                deploylint.parse_yaml(bad)


if __name__ == "__main__":
    unittest.main()
