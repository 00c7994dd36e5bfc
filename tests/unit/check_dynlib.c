// SPDX-License-Identifier: MIT
// core/dynlib: a library and its symbols found, a missing library or symbol reported.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/dynlib.h"

START_TEST(symbols_are_filled)
{
    size_t (*len)(const char *) = NULL;
    const struct dynlib_sym syms[] = {{"strlen", (void **)&len}};
    char err[256] = "";
    ck_assert_int_eq(dynlib_load("libc.so.6", syms, 1, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(len);
    ck_assert_uint_eq(len("energy"), 6);
}
END_TEST

START_TEST(missing_library_is_reported)
{
    void (*fn)(void) = NULL;
    const struct dynlib_sym syms[] = {{"nothing", (void **)&fn}};
    char err[256] = "";
    ck_assert_int_eq(dynlib_load("libe2m-absent.so.1", syms, 1, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "cannot load libe2m-absent.so.1"), "%s", err);
    ck_assert_ptr_null(fn);
}
END_TEST

START_TEST(missing_symbol_is_reported)
{
    size_t (*len)(const char *) = NULL;
    void (*fn)(void) = NULL;
    const struct dynlib_sym syms[] = {{"strlen", (void **)&len},
                                      {"e2m_no_such_function", (void **)&fn}};
    char err[256] = "";
    ck_assert_int_eq(dynlib_load("libc.so.6", syms, 2, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "libc.so.6 has no e2m_no_such_function");
    ck_assert_ptr_null(fn);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dynlib");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, symbols_are_filled);
    tcase_add_test(tc, missing_library_is_reported);
    tcase_add_test(tc, missing_symbol_is_reported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
