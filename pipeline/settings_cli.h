/* settings_cli.h — the options of a stage command (ingest, pretrain, finetune, validate):
 * `--study FILE`, whose values take the place of the defaults; then one option per setting the
 * stage reads (the rows of studies/study.h, listed by --help), which win; then the command's
 * own options, which say what to work on (input and output folders), not how.
 *
 * Invariants:
 *   1. A setting given as an option and the same value in a study file give the same study
 *      struct, hence the same resolved settings and the same results.
 *   2. The global -j N is the setting `threads`; 0 (the default, also `-j 0`) means all cores
 *      and resolves here (settings_cli_threads), so a stage records the thread count it ran
 *      with.
 */
#ifndef VS_SETTINGS_CLI_H
#define VS_SETTINGS_CLI_H

#include <getopt.h>

#include "study.h"

/* A command's own option: returns 0, or the exit code after printing the error. */
typedef int (*settings_cli_own_fn)(void *ctx, int id, const char *arg, study *s);

/* Parse argv (argv[0] the command name). own: the command's options (getopt_long rows, val
 * below 10000, NULL-terminated), handled by fn. On success *out holds the settings (checked
 * with study_check) and *positional the index of the first argument left over. Returns
 * VS_EXIT_OK, or the exit code after printing the error. */
int settings_cli_parse(const char *cmd, unsigned readers, const struct option *own,
                       settings_cli_own_fn fn, void *ctx, int argc, char **argv, study **out,
                       int *positional);

/* The worker threads a command runs with: -j N when given, else the study's `threads` when
 * above 0 (s may be NULL), else all cores (nn_threads: OpenMP's default). Never 0. */
int settings_cli_threads(const study *s);

/* The settings the stage records: study_resolve with threads resolved (invariant 2). */
vs_status settings_cli_resolve(study *s, unsigned stage, study_kv *out, vs_error *err);

/* Create the study's site key (deid.key_file) when it names one that does not exist yet: the
 * settings record the key by fingerprint, which must be the same before and after a stage
 * creates it. */
vs_status settings_cli_ensure_key(const study *s, vs_error *err);

/* Write OUT/settings.json for `stage` (the settings the stage runs with), after creating OUT. */
vs_status settings_cli_record(const study_kv *kv, const char *stage, const char *out_dir,
                              vs_error *err);

#endif
