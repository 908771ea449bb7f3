/* test_config: defaults, the JSON config file, --key value flags and their shared validation. */
#include "unit.h"

#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define ERRCAP 256

/* ---- a temporary directory, removed at the end ---- */

static char tmpdir[PATH_MAX];
static char oldcwd[PATH_MAX];  /* the directory the tests started in */
/* Writes content to tmpdir/name and returns the full path (one of 8 rotating buffers). */
static const char *write_file(const char *name, const char *content)
{
    static char paths[8][PATH_MAX + 64];
    static int slot;
    char *path = paths[slot++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s", path);
    fputs(content, f);
    fclose(f);
    return path;
}

static const char *make_dir(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (mkdir(path, 0700) != 0)
        fail_msg("cannot mkdir %s", path);
    return path;
}

static int group_setup(void **state)
{
    (void)state;
    if (!getcwd(oldcwd, sizeof oldcwd))
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/punchd-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int group_teardown(void **state)
{
    (void)state;
    if (chdir(oldcwd) != 0)
        return -1;
    /* Everything the tests made lives under tmpdir: remove it, depth first. */
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Every test that changes directory goes back afterwards. */
static int back_to_cwd(void **state)
{
    (void)state;
    return chdir(oldcwd);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not mention \"%s\"", hay, needle);
}

static const char key64[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/* ---- defaults and the file ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct config c;
    memset(&c, 0x5a, sizeof c);
    config_defaults(&c);
    assert_string_equal(c.bind, "0.0.0.0");
    assert_int_equal(c.port, 3000);
    assert_int_equal(c.peer_ttl, 300);
    assert_int_equal(c.compat, CONFIG_COMPAT_README);
    assert_int_equal(c.max_peers, 1000000);
    assert_int_equal(c.max_datagram, 1472);
    assert_string_equal(c.token_key_hex, "");
    assert_int_equal(c.log_level, LOG_INFO);
}

static void test_load_all_keys(void **state)
{
    (void)state;
    char json[512];
    snprintf(json, sizeof json,
             "{\n  \"bind\": \"::\",\n  \"port\": 4000,\n  \"peer_ttl\": 60,\n"
             "  \"compat\": \"sobani-app\",\n  \"max_peers\": 500,\n  \"max_datagram\": 1200,\n"
             "  \"token_key\": \"%s\",\n  \"log_level\": \"debug\"\n}\n",
             key64);
    const char *path = write_file("all.json", json);
    struct config c;
    char err[ERRCAP] = "";
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_string_equal(c.bind, "::");
    assert_int_equal(c.port, 4000);
    assert_int_equal(c.peer_ttl, 60);
    assert_int_equal(c.compat, CONFIG_COMPAT_SOBANI_APP);
    assert_int_equal(c.max_peers, 500);
    assert_int_equal(c.max_datagram, 1200);
    assert_string_equal(c.token_key_hex, key64);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(config_finish(&c, err, sizeof err), 0);
    assert_int_equal(c.token_key_set, 1);
    for (int i = 0; i < 32; i++)
        assert_int_equal(c.token_key.k[i], i);

    /* A partial file leaves the other keys at their defaults; {} changes nothing. */
    path = write_file("partial.json", "{\"peer_ttl\": 5}");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.peer_ttl, 5);
    assert_int_equal(c.port, 3000);
    assert_string_equal(c.bind, "0.0.0.0");
    path = write_file("empty-object.json", " {} ");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.port, 3000);

    /* The repository's own config.json is a valid config file. */
    char repo_cfg[PATH_MAX + 16];
    snprintf(repo_cfg, sizeof repo_cfg, "%s/config.json", oldcwd);
    if (access(repo_cfg, R_OK) == 0) {
        config_defaults(&c);
        if (config_load_file(&c, repo_cfg, err, sizeof err) != 0)
            fail_msg("config.json: %s", err);
    }
}

static void test_load_unknown_key(void **state)
{
    (void)state;
    struct config c;
    char err[ERRCAP] = "";
    const char *path = write_file("unknown.json", "{\"port\": 1, \"listen_port\": 2}");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    assert_contains(err, "listen_port");
    assert_true(strchr(err, '\n') == NULL); /* one line */

    path = write_file("case.json", "{\"Port\": 1}");
    err[0] = '\0';
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    assert_contains(err, "Port");
    /* The flag spelling is not a file key. */
    path = write_file("dash.json", "{\"peer-ttl\": 10}");
    err[0] = '\0';
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    assert_contains(err, "peer-ttl");
}

static void expect_file_error(const char *json, const char *mention)
{
    static int n;
    char name[32];
    snprintf(name, sizeof name, "bad%d.json", n++);
    const char *path = write_file(name, json);
    struct config c;
    char err[ERRCAP] = "";
    config_defaults(&c);
    if (config_load_file(&c, path, err, sizeof err) != -1)
        fail_msg("%s was accepted", json);
    if (!strstr(err, mention))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", json, err, mention);
    assert_true(strchr(err, '\n') == NULL);
}

static void test_load_wrong_types(void **state)
{
    (void)state;
    expect_file_error("{\"bind\": 0}", "bind");
    expect_file_error("{\"bind\": null}", "bind");
    expect_file_error("{\"bind\": [\"::\"]}", "bind");
    expect_file_error("{\"port\": \"3000\"}", "port");
    expect_file_error("{\"port\": true}", "port");
    expect_file_error("{\"port\": null}", "port");
    expect_file_error("{\"peer_ttl\": \"300\"}", "peer_ttl");
    expect_file_error("{\"peer_ttl\": {}}", "peer_ttl");
    expect_file_error("{\"compat\": 1}", "compat");
    expect_file_error("{\"compat\": false}", "compat");
    expect_file_error("{\"max_peers\": [1000]}", "max_peers");
    expect_file_error("{\"max_peers\": \"1000\"}", "max_peers");
    expect_file_error("{\"max_datagram\": false}", "max_datagram");
    expect_file_error("{\"token_key\": 0}", "token_key");
    expect_file_error("{\"token_key\": null}", "token_key");
    expect_file_error("{\"log_level\": 3}", "log_level");
    expect_file_error("{\"log_level\": [\"debug\"]}", "log_level");
}

static void test_load_out_of_range(void **state)
{
    (void)state;
    expect_file_error("{\"port\": -1}", "port");
    expect_file_error("{\"port\": 65536}", "port");
    expect_file_error("{\"port\": 3000.5}", "port");
    expect_file_error("{\"port\": 1e300}", "port");
    expect_file_error("{\"port\": -1e300}", "port");
    expect_file_error("{\"peer_ttl\": 0}", "peer_ttl");
    expect_file_error("{\"peer_ttl\": -5}", "peer_ttl");
    expect_file_error("{\"peer_ttl\": 0.5}", "peer_ttl");
    expect_file_error("{\"max_peers\": 0}", "max_peers");
    expect_file_error("{\"max_peers\": -1}", "max_peers");
    expect_file_error("{\"max_peers\": 1e12}", "max_peers");
    expect_file_error("{\"max_datagram\": 0}", "max_datagram");
    expect_file_error("{\"max_datagram\": 65508}", "max_datagram"); /* > the largest UDP payload */
    expect_file_error("{\"max_datagram\": 100000}", "max_datagram");

    /* The edges of the port range are fine. */
    struct config c;
    char err[ERRCAP];
    config_defaults(&c);
    const char *path = write_file("port0.json", "{\"port\": 0, \"max_datagram\": 65507}");
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.port, 0);
    assert_int_equal(c.max_datagram, 65507);
    path = write_file("port65535.json", "{\"port\": 65535, \"peer_ttl\": 1, \"max_peers\": 1}");
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.port, 65535);
    assert_int_equal(c.peer_ttl, 1);
    assert_int_equal(c.max_peers, 1);
    /* 3000.0 is an integer. */
    path = write_file("float-int.json", "{\"port\": 3001.0}");
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.port, 3001);
}

static void test_load_bind(void **state)
{
    (void)state;
    expect_file_error("{\"bind\": \"localhost\"}", "bind");
    expect_file_error("{\"bind\": \"example.com\"}", "bind");
    expect_file_error("{\"bind\": \"\"}", "bind");
    expect_file_error("{\"bind\": \"127.0.0.1:3000\"}", "bind");
    expect_file_error("{\"bind\": \"[::1]\"}", "bind");
    expect_file_error("{\"bind\": \"300.1.1.1\"}", "bind");
    expect_file_error("{\"bind\": \" 0.0.0.0\"}", "bind");
    static const char *const ok[] = { "::", "::1", "127.0.0.1", "0.0.0.0", "2001:db8::1",
                                      "::ffff:127.0.0.2" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"bind\": \"%s\"}", ok[i]);
        const char *path = write_file("bind-ok.json", json);
        struct config c;
        char err[ERRCAP] = "";
        config_defaults(&c);
        if (config_load_file(&c, path, err, sizeof err) != 0)
            fail_msg("bind %s refused: %s", ok[i], err);
        assert_string_equal(c.bind, ok[i]);
    }
}

static void test_load_token_key(void **state)
{
    (void)state;
    char json[256];
    snprintf(json, sizeof json, "{\"token_key\": \"%.63s\"}", key64);
    expect_file_error(json, "token_key");
    snprintf(json, sizeof json, "{\"token_key\": \"%sa\"}", key64);
    expect_file_error(json, "token_key");
    snprintf(json, sizeof json, "{\"token_key\": \"%.63sg\"}", key64);
    expect_file_error(json, "token_key");
    snprintf(json, sizeof json, "{\"token_key\": \"%.32s\"}", key64);
    expect_file_error(json, "token_key");
    expect_file_error("{\"token_key\": \"secret\"}", "token_key");

    /* Upper-case hex and "" are fine. */
    char upper[65];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(key64[i] >= 'a' ? key64[i] - 32 : key64[i]);
    upper[64] = '\0';
    snprintf(json, sizeof json, "{\"token_key\": \"%s\"}", upper);
    const char *path = write_file("key-upper.json", json);
    struct config c;
    char err[ERRCAP];
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(config_finish(&c, err, sizeof err), 0);
    assert_int_equal(c.token_key_set, 1);
    assert_int_equal(c.token_key.k[31], 31);
    path = write_file("key-empty.json", "{\"token_key\": \"\"}");
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_string_equal(c.token_key_hex, "");
}

static void test_load_enums(void **state)
{
    (void)state;
    struct config c;
    char err[ERRCAP] = "";
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    static const long level_vals[] = { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
    for (int i = 0; i < 4; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"log_level\": \"%s\"}", levels[i]);
        const char *path = write_file("level.json", json);
        config_defaults(&c);
        assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
        assert_int_equal(c.log_level, level_vals[i]);
    }
    const char *path = write_file("compat-readme.json", "{\"compat\": \"readme\", \"log_level\": \"error\"}");
    config_defaults(&c);
    c.compat = CONFIG_COMPAT_SOBANI_APP;
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.compat, CONFIG_COMPAT_README);
    path = write_file("compat-app.json", "{\"compat\": \"sobani-app\"}");
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.compat, CONFIG_COMPAT_SOBANI_APP);

    expect_file_error("{\"compat\": \"Readme\"}", "compat");
    expect_file_error("{\"compat\": \"sobani\"}", "compat");
    expect_file_error("{\"compat\": \"\"}", "compat");
    expect_file_error("{\"log_level\": \"verbose\"}", "log_level");
    expect_file_error("{\"log_level\": \"DEBUG\"}", "log_level");
    expect_file_error("{\"log_level\": \"warning\"}", "log_level");
}

static void test_load_bad_files(void **state)
{
    (void)state;
    struct config c;
    char err[ERRCAP] = "";
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof missing, "%s/does-not-exist.json", tmpdir);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, missing, err, sizeof err), -1);
    assert_contains(err, "does-not-exist.json");

    static const char *const bad[] = {
        "", "   ", "[1, 2]", "\"port\"", "3000", "null", "{\"port\": 3000", "{\"port\": 3000}}",
        "{\"port\": 3000} {\"port\": 1}", "{port: 3000}", "{\"port\": 3000,}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = write_file("bad-file.json", bad[i]);
        err[0] = '\0';
        config_defaults(&c);
        if (config_load_file(&c, path, err, sizeof err) != -1)
            fail_msg("file \"%s\" was accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* A directory is not a config file. */
    const char *dir = make_dir("a-directory");
    assert_int_equal(config_load_file(&c, dir, err, sizeof err), -1);

    /* The error of a later key leaves earlier good keys irrelevant: still -1. */
    const char *path = write_file("late-error.json", "{\"port\": 10, \"peer_ttl\": 0}");
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    assert_contains(err, "peer_ttl");
}

/* ---- config_set_text ---- */

static void test_set_text(void **state)
{
    (void)state;
    struct config c;
    char err[ERRCAP] = "";
    config_defaults(&c);
    assert_int_equal(config_set_text(&c, "port", "8080", err, sizeof err), 0);
    assert_int_equal(c.port, 8080);
    assert_int_equal(config_set_text(&c, "peer_ttl", "45", err, sizeof err), 0);
    assert_int_equal(c.peer_ttl, 45);
    assert_int_equal(config_set_text(&c, "compat", "sobani-app", err, sizeof err), 0);
    assert_int_equal(c.compat, CONFIG_COMPAT_SOBANI_APP);
    assert_int_equal(config_set_text(&c, "log_level", "warn", err, sizeof err), 0);
    assert_int_equal(c.log_level, LOG_WARN);
    assert_int_equal(config_set_text(&c, "bind", "::1", err, sizeof err), 0);
    assert_string_equal(c.bind, "::1");
    assert_int_equal(config_set_text(&c, "token_key", key64, err, sizeof err), 0);
    assert_string_equal(c.token_key_hex, key64);
    assert_int_equal(config_set_text(&c, "token_key", "", err, sizeof err), 0);
    assert_string_equal(c.token_key_hex, "");
    assert_int_equal(config_set_text(&c, "max_peers", "100000000", err, sizeof err), 0);
    assert_int_equal(c.max_peers, 100000000);

    static const struct {
        const char *key, *value;
    } bad[] = {
        { "port", "abc" },
        { "port", "" },
        { "port", "12abc" },
        { "port", "80 " },
        { "port", "0x50" },
        { "port", "1e3" },
        { "port", "3000.0" },
        { "port", "-1" },
        { "port", "65536" },
        { "port", "99999999999999999999999" },
        { "port", "-99999999999999999999999" },
        { "peer_ttl", "0" },
        { "peer_ttl", "ten" },
        { "max_peers", "0" },
        { "max_peers", "184467440737095516160" },
        { "max_datagram", "100" },
        { "compat", "app" },
        { "log_level", "trace" },
        { "bind", "localhost" },
        { "bind", "1.2.3.4:5" },
        { "token_key", "abc" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config before;
        err[0] = '\0';
        memcpy(&before, &c, sizeof c);
        if (config_set_text(&c, bad[i].key, bad[i].value, err, sizeof err) != -1)
            fail_msg("%s=\"%s\" was accepted", bad[i].key, bad[i].value);
        if (!strstr(err, bad[i].key))
            fail_msg("%s=\"%s\": error \"%s\" does not name the key", bad[i].key, bad[i].value, err);
        assert_memory_equal(&c, &before, sizeof c); /* nothing changed */
    }
    err[0] = '\0';
    assert_int_equal(config_set_text(&c, "nope", "1", err, sizeof err), -1);
    assert_contains(err, "nope");
}

/* ---- the command line ---- */

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_args_flags(void **state)
{
    (void)state;
    make_dir("empty-cwd");
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/empty-cwd", tmpdir);
    assert_int_equal(chdir(dir), 0); /* no ./config.json here */

    struct config c;
    char err[ERRCAP] = "";
    char *argv0[] = { "punchd" };
    assert_int_equal(config_from_args(&c, ARGC(argv0), argv0, err, sizeof err), CONFIG_CLI_RUN);
    struct config d;
    config_defaults(&d);
    assert_string_equal(c.bind, d.bind);
    assert_int_equal(c.port, d.port);
    assert_int_equal(c.peer_ttl, d.peer_ttl);
    assert_int_equal(c.token_key_set, 0);

    char *argv1[] = { "punchd", "--peer-ttl", "10", "--port=4001", "--compat", "sobani-app",
                      "--max-datagram=512", "--bind", "::", "--log-level=debug",
                      "--max-peers", "77", "--token-key", (char *)key64 };
    assert_int_equal(config_from_args(&c, ARGC(argv1), argv1, err, sizeof err), CONFIG_CLI_RUN);
    assert_int_equal(c.peer_ttl, 10);
    assert_int_equal(c.port, 4001);
    assert_int_equal(c.compat, CONFIG_COMPAT_SOBANI_APP);
    assert_int_equal(c.max_datagram, 512);
    assert_string_equal(c.bind, "::");
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.max_peers, 77);
    /* config_finish ran: the key is derived. */
    assert_int_equal(c.token_key_set, 1);
    assert_int_equal(c.token_key.k[0], 0);
    assert_int_equal(c.token_key.k[31], 31);

    /* The last occurrence of a flag wins; "--x=" gives an empty value. */
    char *argv2[] = { "punchd", "--port", "1", "--port", "2", "--token-key=" };
    assert_int_equal(config_from_args(&c, ARGC(argv2), argv2, err, sizeof err), CONFIG_CLI_RUN);
    assert_int_equal(c.port, 2);
    assert_int_equal(c.token_key_set, 0);
    /* A value may look like anything, even a negative number. */
    char *argv3[] = { "punchd", "--port", "-5" };
    assert_int_equal(config_from_args(&c, ARGC(argv3), argv3, err, sizeof err), -1);
    assert_contains(err, "port");
}

static void test_args_config_file(void **state)
{
    (void)state;
    make_dir("cwd-file");
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/cwd-file", tmpdir);
    assert_int_equal(chdir(dir), 0);

    const char *path = write_file("args.json", "{\"port\": 2222, \"peer_ttl\": 33, \"compat\": \"sobani-app\"}");
    struct config c;
    char err[ERRCAP] = "";
    char *argv1[] = { "punchd", "--config", (char *)path };
    assert_int_equal(config_from_args(&c, ARGC(argv1), argv1, err, sizeof err), CONFIG_CLI_RUN);
    assert_int_equal(c.port, 2222);
    assert_int_equal(c.peer_ttl, 33);
    assert_int_equal(c.compat, CONFIG_COMPAT_SOBANI_APP);

    /* Flags override the file whatever their position. */
    char cfgeq[PATH_MAX + 80];
    snprintf(cfgeq, sizeof cfgeq, "--config=%s", path);
    char *argv2[] = { "punchd", "--port", "1111", cfgeq, "--compat=readme" };
    assert_int_equal(config_from_args(&c, ARGC(argv2), argv2, err, sizeof err), CONFIG_CLI_RUN);
    assert_int_equal(c.port, 1111);
    assert_int_equal(c.peer_ttl, 33);
    assert_int_equal(c.compat, CONFIG_COMPAT_README);

    /* Without --config, ./config.json is read ... */
    write_file("cwd-file/config.json", "{\"peer_ttl\": 42}");
    char *argv3[] = { "punchd", "--port", "5" };
    assert_int_equal(config_from_args(&c, ARGC(argv3), argv3, err, sizeof err), CONFIG_CLI_RUN);
    assert_int_equal(c.peer_ttl, 42);
    assert_int_equal(c.port, 5);
    /* ... but not when --config names another file. */
    assert_int_equal(config_from_args(&c, ARGC(argv1), argv1, err, sizeof err), CONFIG_CLI_RUN);
    assert_int_equal(c.peer_ttl, 33);

    /* A broken ./config.json is an error, not silently skipped. */
    make_dir("cwd-broken");
    write_file("cwd-broken/config.json", "{\"peer_ttl\": \"long\"}");
    snprintf(dir, sizeof dir, "%s/cwd-broken", tmpdir);
    assert_int_equal(chdir(dir), 0);
    char *argv4[] = { "punchd" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(argv4), argv4, err, sizeof err), -1);
    assert_contains(err, "peer_ttl");

    /* A missing --config file is an error. */
    char *argv5[] = { "punchd", "--config", "/nonexistent/punchd.json" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(argv5), argv5, err, sizeof err), -1);
    assert_contains(err, "/nonexistent/punchd.json");
    /* A bad key in the --config file. */
    const char *bad = write_file("bad-key.json", "{\"prot\": 1}");
    char *argv6[] = { "punchd", "--config", (char *)bad };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(argv6), argv6, err, sizeof err), -1);
    assert_contains(err, "prot");
}

static void test_args_help_version(void **state)
{
    (void)state;
    struct config c;
    char err[ERRCAP] = "";
    char *a1[] = { "punchd", "--help" };
    assert_int_equal(config_from_args(&c, ARGC(a1), a1, err, sizeof err), CONFIG_CLI_HELP);
    char *a2[] = { "punchd", "--version" };
    assert_int_equal(config_from_args(&c, ARGC(a2), a2, err, sizeof err), CONFIG_CLI_VERSION);
    char *a3[] = { "punchd", "--port", "1", "--help" };
    assert_int_equal(config_from_args(&c, ARGC(a3), a3, err, sizeof err), CONFIG_CLI_HELP);
    char *a4[] = { "punchd", "--version", "--bogus" };
    assert_int_equal(config_from_args(&c, ARGC(a4), a4, err, sizeof err), CONFIG_CLI_VERSION);
    /* --help wins even when the config file would be refused. */
    char *a5[] = { "punchd", "--config", "/nonexistent/punchd.json", "--help" };
    assert_int_equal(config_from_args(&c, ARGC(a5), a5, err, sizeof err), CONFIG_CLI_HELP);
}

static void test_args_errors(void **state)
{
    (void)state;
    make_dir("cwd-errors");
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/cwd-errors", tmpdir);
    assert_int_equal(chdir(dir), 0);
    struct config c;
    char err[ERRCAP];

    char *a1[] = { "punchd", "--port" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a1), a1, err, sizeof err), -1);
    assert_contains(err, "--port");

    char *a2[] = { "punchd", "--peer-ttl", "5", "--config" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a2), a2, err, sizeof err), -1);
    assert_contains(err, "--config");

    char *a3[] = { "punchd", "serve" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a3), a3, err, sizeof err), -1);
    assert_contains(err, "serve");

    char *a4[] = { "punchd", "--port", "80", "extra" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a4), a4, err, sizeof err), -1);
    assert_contains(err, "extra");

    char *a5[] = { "punchd", "-p", "80" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a5), a5, err, sizeof err), -1);
    assert_contains(err, "-p");

    char *a6[] = { "punchd", "--no-such-flag", "1" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a6), a6, err, sizeof err), -1);
    assert_contains(err, "no-such-flag");

    char *a7[] = { "punchd", "--port", "http" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a7), a7, err, sizeof err), -1);
    assert_contains(err, "port");

    char *a8[] = { "punchd", "--" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a8), a8, err, sizeof err), -1);
    assert_true(err[0] != '\0');

    char *a9[] = { "punchd", "--token-key", "abcd" };
    err[0] = '\0';
    assert_int_equal(config_from_args(&c, ARGC(a9), a9, err, sizeof err), -1);
    assert_contains(err, "token");
}

static void test_finish_keys(void **state)
{
    (void)state;
    struct config a, b;
    char err[ERRCAP];
    config_defaults(&a);
    config_defaults(&b);
    assert_int_equal(config_finish(&a, err, sizeof err), 0);
    assert_int_equal(config_finish(&b, err, sizeof err), 0);
    assert_int_equal(a.token_key_set, 0);
    assert_memory_not_equal(a.token_key.k, b.token_key.k, IDS_KEYLEN); /* random per process/config */

    snprintf(a.token_key_hex, sizeof a.token_key_hex, "%s", key64);
    snprintf(b.token_key_hex, sizeof b.token_key_hex, "%s", key64);
    assert_int_equal(config_finish(&a, err, sizeof err), 0);
    assert_int_equal(config_finish(&b, err, sizeof err), 0);
    assert_int_equal(a.token_key_set, 1);
    assert_memory_equal(a.token_key.k, b.token_key.k, IDS_KEYLEN);

    /* A bad key that bypassed validation is still caught. */
    snprintf(a.token_key_hex, sizeof a.token_key_hex, "zz");
    err[0] = '\0';
    assert_int_equal(config_finish(&a, err, sizeof err), -1);
    assert_contains(err, "token_key");
}

static void test_usage(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_usage(f);
    fclose(f);
    static const char *const flags[] = { "--config", "--bind", "--port", "--peer-ttl", "--compat",
                                         "--max-peers", "--max-datagram", "--token-key",
                                         "--log-level", "--help", "--version" };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_contains(buf, flags[i]);
    free(buf);
}

int main(void)
{
    unit_sodium_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_all_keys),
        cmocka_unit_test(test_load_unknown_key),
        cmocka_unit_test(test_load_wrong_types),
        cmocka_unit_test(test_load_out_of_range),
        cmocka_unit_test(test_load_bind),
        cmocka_unit_test(test_load_token_key),
        cmocka_unit_test(test_load_enums),
        cmocka_unit_test(test_load_bad_files),
        cmocka_unit_test(test_set_text),
        cmocka_unit_test_teardown(test_args_flags, back_to_cwd),
        cmocka_unit_test_teardown(test_args_config_file, back_to_cwd),
        cmocka_unit_test(test_args_help_version),
        cmocka_unit_test_teardown(test_args_errors, back_to_cwd),
        cmocka_unit_test(test_finish_keys),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
