/* testdir.h: what the storage unit tests share: a temp dir per test, paths
 * and numbers as argv strings, running qemu-img and qemu-io, and reading a
 * whole file. Every failure is a cmocka assertion, so these are for code
 * that runs inside a cmocka test. */
#ifndef AGENTD_TESTS_TESTDIR_H
#define AGENTD_TESTS_TESTDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct testdir {
    char path[PATH_MAX];
} testdir;

/* cmocka setup: makes /tmp/<program name>.XXXXXX and hands it over as *state. */
int testdir_setup(void **state);
/* cmocka teardown: removes the dir of testdir_setup with all inside it. */
int testdir_teardown(void **state);
/* Removes path and all below it, not following links; 0 or -1 as nftw. */
int testdir_remove_tree(const char *path);
/* d/name in a static buffer of eight that rotate, so one call can name several. */
const char *testdir_path(const testdir *d, const char *name);
/* d/name into out (PATH_MAX bytes), for a path kept across calls. */
void testdir_path_into(char *out, const testdir *d, const char *name);

/* v in decimal in a static buffer of eight that rotate, for an argv. */
const char *test_decimal(uint64_t v);
/* Runs argv, stdout to out (NULL: /dev/null), stderr too when quiet; exit status or -1. */
int test_run_argv(char *const argv[], const char *out, bool quiet);
/* Runs the NULL-terminated argv first, ... and asserts that it exits 0. */
void test_run(const char *first, ...) __attribute__((sentinel));
/* test_run with stdout into the file out. */
void test_run_out(const char *out, const char *first, ...) __attribute__((sentinel));
/* Runs first, ... with stdout into out (may be NULL), stderr dropped; the exit status. */
int test_run_status(const char *out, const char *first, ...) __attribute__((sentinel));
/* Runs qemu-io -f qcow2 with each of the NULL-terminated cmds on path; asserts exit 0. */
void test_qemu_io(const char *path, const char *const *cmds);
/* The whole file (malloc'd, one spare byte past *len); the caller frees it. */
uint8_t *test_read_file(const char *path, size_t *len);

#endif
