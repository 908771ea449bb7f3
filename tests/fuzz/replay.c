/* replay: runs every saved fuzz input (tests/fuzz/corpus/<target>/ and
 * tests/fuzz/regress/<target>/) through the harnesses' entry points, without
 * libFuzzer, and prints TAP: one "ok N - <target> ..." line per target, so
 * tests/run_tests.py counts it like a cmocka binary. Built by `make test`
 * with the project's compiler and flags (sanitizers under SAN=1).
 *
 * Each target runs in a child process: a crash or a broken invariant (an
 * abort) fails that target's line, names the input, and the other targets
 * still run. A file under regress/ whose name ends in ".xfail" is a known,
 * not yet fixed crash: it runs alone in its own child and its line passes
 * while it still fails, and fails once it passes (then drop the suffix).
 *
 * usage: fuzz_replay [ROOT]   (ROOT defaults to the tests/fuzz directory
 * this binary was built from; $TEST_FUZZ_ROOT overrides it). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_ROOT
#define FUZZ_ROOT "tests/fuzz"
#endif

#define REPLAY_PATH_MAX 1024
#define REPLAY_INPUT_MAX (1 << 20) /* no saved input is larger; libFuzzer runs cap at 64 KiB */

struct replay_target {
    const char *name;
    int (*one)(const uint8_t *data, size_t size);
};

static const struct replay_target replay_targets[] = {
    { "proto", fuzz_proto_one },   { "http", fuzz_http_one },       { "ws", fuzz_ws_one },
    { "config", fuzz_config_one }, { "tracker", fuzz_tracker_one }, { "ratelimit", fuzz_ratelimit_one },
    { "connlimit", fuzz_connlimit_one }, { "client", fuzz_client_one },
    { "protofast", fuzz_protofast_one },
};

/* Shared with the children: the input being run when one dies. */
struct replay_shared {
    char current[REPLAY_PATH_MAX];
    unsigned count;
};

static struct replay_shared *replay_sh;

static int replay_is_xfail(const char *name)
{
    size_t n = strlen(name);
    return n > 6 && strcmp(name + n - 6, ".xfail") == 0;
}

/* Runs one file through t. Returns 0, or -1 if it cannot be read. */
static int replay_file(const struct replay_target *t, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    uint8_t *buf = malloc(REPLAY_INPUT_MAX);
    if (!buf) {
        fclose(fp);
        return -1;
    }
    size_t n = fread(buf, 1, REPLAY_INPUT_MAX, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (!bad) {
        /* An exact-size copy, as libFuzzer hands inputs over. */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact)
            abort();
        memcpy(exact, buf, n);
        t->one(exact, n);
        free(exact);
    }
    free(buf);
    return bad ? -1 : 0;
}

/* path without the root prefix, for short report lines. */
static const char *replay_short(const char *root, const char *path)
{
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

static int replay_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir (sorted), xfail ones or the others; a NULL-ended
 * array the caller frees (with its strings). */
static char **replay_list(const char *dir, int want_xfail)
{
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof *v);
    DIR *d = opendir(dir);
    if (!v)
        abort();
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || replay_is_xfail(e->d_name) != want_xfail)
                continue;
            char path[REPLAY_PATH_MAX];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            if (n + 1 >= cap) {
                cap *= 2;
                v = realloc(v, cap * sizeof *v);
                if (!v)
                    abort();
            }
            v[n++] = strdup(path);
        }
        closedir(d);
    }
    qsort(v, n, sizeof *v, replay_cmp);
    v[n] = NULL;
    return v;
}

static void replay_free(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* Runs files through t in a child. Returns 0 if it finished, else 1 and
 * replay_sh->current names the input it died on. */
static int replay_child(const struct replay_target *t, char **files)
{
    replay_sh->current[0] = '\0';
    replay_sh->count = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        for (size_t i = 0; files[i]; i++) {
            snprintf(replay_sh->current, sizeof replay_sh->current, "%s", files[i]);
            if (replay_file(t, files[i]) != 0) {
                fprintf(stderr, "replay: cannot read %s\n", files[i]);
                _exit(3);
            }
            replay_sh->count++;
        }
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : getenv("TEST_FUZZ_ROOT");
    if (!root || !*root)
        root = FUZZ_ROOT;
    replay_sh = mmap(NULL, sizeof *replay_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (replay_sh == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    fuzz_init();

    size_t ntargets = sizeof replay_targets / sizeof replay_targets[0];
    int test = 0, failed = 0;
    unsigned total = 0;
    /* Count lines first: TAP's plan. */
    int planned = (int)ntargets;
    for (size_t k = 0; k < ntargets; k++) {
        char dir[REPLAY_PATH_MAX];
        snprintf(dir, sizeof dir, "%s/regress/%s", root, replay_targets[k].name);
        char **x = replay_list(dir, 1);
        for (size_t i = 0; x[i]; i++)
            planned++;
        replay_free(x);
    }
    printf("1..%d\n", planned);

    for (size_t k = 0; k < ntargets; k++) {
        const struct replay_target *t = &replay_targets[k];
        char corpus[REPLAY_PATH_MAX], regress[REPLAY_PATH_MAX];
        snprintf(corpus, sizeof corpus, "%s/corpus/%s", root, t->name);
        snprintf(regress, sizeof regress, "%s/regress/%s", root, t->name);

        /* All kept inputs, corpus first, in one child. */
        char **c = replay_list(corpus, 0), **r = replay_list(regress, 0);
        size_t nc = 0, nr = 0;
        while (c[nc])
            nc++;
        while (r[nr])
            nr++;
        char **all = malloc((nc + nr + 1) * sizeof *all);
        if (!all)
            abort();
        memcpy(all, c, nc * sizeof *all);
        memcpy(all + nc, r, (nr + 1) * sizeof *all);
        test++;
        if (nc + nr == 0) {
            printf("not ok %d - %s: no inputs under %s\n", test, t->name, replay_short(root, corpus));
            failed++;
        } else if (replay_child(t, all) == 0) {
            printf("ok %d - %s: %zu corpus + %zu regression inputs replayed\n", test, t->name, nc, nr);
            total += (unsigned)(nc + nr);
        } else {
            printf("not ok %d - %s: failed on %s (after %u inputs; see its output above)\n", test,
                   t->name, replay_sh->current[0] ? replay_short(root, replay_sh->current) : "?",
                   replay_sh->count);
            failed++;
        }
        free(all);
        replay_free(c);
        replay_free(r);

        /* Known crashes: each must still fail until it is fixed. */
        char **x = replay_list(regress, 1);
        for (size_t i = 0; x[i]; i++) {
            char *one[2] = { x[i], NULL };
            test++;
            fprintf(stderr, "replay: %s is a known failure; its output follows\n", x[i]);
            if (replay_child(t, one) != 0) {
                printf("ok %d - %s: known failure %s still fails (expected)\n", test, t->name,
                       replay_short(root, x[i]));
            } else {
                printf("not ok %d - %s: %s passes now: rename it without .xfail\n", test, t->name,
                       replay_short(root, x[i]));
                failed++;
            }
        }
        replay_free(x);
        fflush(stdout);
    }
    fprintf(stderr, "replay: %u inputs, %d of %d lines failed\n", total, failed, test);
    munmap(replay_sh, sizeof *replay_sh);
    return failed ? 1 : 0;
}
