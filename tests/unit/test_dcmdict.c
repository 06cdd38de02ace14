/* test_dcmdict — the built-in dictionary table is installed and equals DCMTK's own load of its
 * files entry by entry; with DCMDICTPATH set, DCMTK's files are used and nothing is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcmdict.h"

static void test_table_equals_dcmtk(void **state) {
    (void)state;
    assert_int_equal(dcm_dict_install(), 1);
    char why[256];
    int r = dcm_dict_check(why, sizeof why);
    if (r != 0) fprintf(stderr, "dictionary: %s\n", why);
    assert_int_equal(r, 0);
    /* once created, the dictionary is never replaced */
    assert_int_equal(dcm_dict_install(), 0);
    assert_int_equal(dcm_dict_check(why, sizeof why), 0);
}

/* In a child: a dictionary path chosen by the user wins over the table. */
static void test_user_path_wins(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setenv("DCMDICTPATH", "/usr/share/libdcmtk17/dicom.dic", 1) != 0) _exit(3);
        if (dcm_dict_install() != 0) _exit(1);
        char why[256];
        _exit(dcm_dict_check(why, sizeof why) == 0 ? 0 : 2);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_path_wins), /* first: the child forks before install */
        cmocka_unit_test(test_table_equals_dcmtk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
