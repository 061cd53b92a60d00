/* testdir.c: see testdir.h. */
#include "testdir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_ARGS 32
#define ROTATING 8

/* ---- temp dirs ---- */

int testdir_setup(void **state)
{
    testdir *d = calloc(1, sizeof(*d));

    if (!d)
        return -1;
    snprintf(d->path, sizeof(d->path), "/tmp/%s.XXXXXX", program_invocation_short_name);
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    return remove(path);
}

int testdir_remove_tree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int testdir_teardown(void **state)
{
    testdir *d = *state;

    testdir_remove_tree(d->path);
    free(d);
    return 0;
}

const char *testdir_path(const testdir *d, const char *name)
{
    static char bufs[ROTATING][PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % ROTATING];

    testdir_path_into(b, d, name);
    return b;
}

void testdir_path_into(char *out, const testdir *d, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", d->path, name);
}

const char *test_decimal(uint64_t v)
{
    static char bufs[ROTATING][32];
    static unsigned next;
    char *b = bufs[next++ % ROTATING];

    snprintf(b, 32, "%llu", (unsigned long long)v);
    return b;
}

/* ---- running qemu-img and qemu-io ---- */

/* posix_spawn, not fork: forking a sanitizer build's large address space is
 * slow. */
int test_run_argv(char *const argv[], const char *out, bool quiet)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;

    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO,
                                                      out ? out : "/dev/null",
                                                      O_WRONLY | O_CREAT | O_TRUNC, 0644),
                     0);
    if (quiet)
        assert_int_equal(posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
                                                          O_WRONLY, 0),
                         0);
    assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_va(const char *out, bool quiet, const char *first, va_list ap)
{
    char *argv[MAX_ARGS];
    size_t n = 0;

    argv[n++] = (char *)first;
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        assert_true(n < MAX_ARGS - 1);
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
    return test_run_argv(argv, out, quiet);
}

static void assert_exited_0(const char *first, int status)
{
    if (status != 0)
        print_message("%s ... exited with %d\n", first, status);
    assert_int_equal(status, 0);
}

void test_run(const char *first, ...)
{
    va_list ap;
    int r;

    va_start(ap, first);
    r = run_va(NULL, false, first, ap);
    va_end(ap);
    assert_exited_0(first, r);
}

void test_run_out(const char *out, const char *first, ...)
{
    va_list ap;
    int r;

    va_start(ap, first);
    r = run_va(out, false, first, ap);
    va_end(ap);
    assert_exited_0(first, r);
}

int test_run_status(const char *out, const char *first, ...)
{
    va_list ap;
    int r;

    va_start(ap, first);
    r = run_va(out, true, first, ap);
    va_end(ap);
    return r;
}

void test_qemu_io(const char *path, const char *const *cmds)
{
    char *argv[MAX_ARGS];
    size_t n = 0;

    argv[n++] = "qemu-io";
    argv[n++] = "-f";
    argv[n++] = "qcow2";
    for (size_t k = 0; cmds[k]; k++) {
        assert_true(n < MAX_ARGS - 3);
        argv[n++] = "-c";
        argv[n++] = (char *)cmds[k];
    }
    argv[n++] = (char *)path;
    argv[n] = NULL;
    assert_int_equal(test_run_argv(argv, NULL, false), 0);
}

/* ---- files ---- */

uint8_t *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;

    assert_non_null(f);
    assert_int_equal(fstat(fileno(f), &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return buf;
}
