/* runner.h — `vesalius run`: the stages of a study, each skipped when what it consumed did
 * not change, resumable after kill -9, one run per output folder.
 *
 * Layout under the study's output folder OUT:
 *   OUT/.run.lock             flock'ed by the run in progress (a second run waits, then exit 6)
 *   OUT/run.jsonl             the run log: one JSON object per event, appended across runs
 *   OUT/stages/NAME.json      a finished stage's record: the SHA-256 of its inputs and outputs
 *   OUT/stages/NAME.started   the inputs hash of a stage in progress (kept if killed)
 *   OUT/logs/NAME.jsonl       the stage's own JSON-lines log (training curves for the report)
 *   OUT/NAME/...              the stage's outputs
 *
 * Invariants:
 *   1. A stage's record is written (atomically) only after the stage succeeded and its outputs
 *      were hashed; a stage without a record, or whose record's inputs hash differs from the
 *      current one, or whose outputs no longer match the record, runs.
 *   2. A stage interrupted with the same inputs resumes what it left (pretraining continues
 *      its checkpoint); one whose inputs changed starts over from an empty folder.
 *   3. Stages run as child processes of the same binary that die with the runner
 *      (PR_SET_PDEATHSIG), so a killed runner leaves no stage writing behind it; a stage
 *      started through the study's launcher (distributed.ranks > 1) has the launcher receive
 *      SIGTERM instead, which it passes on to the ranks (pretrain's stop at a step, with a
 *      checkpoint; finetune's end, and the stage runs again whole).
 */
#ifndef VS_RUNNER_H
#define VS_RUNNER_H

#include "study.h"

typedef struct runner_options {
    const char *stages; /* comma-separated stages to consider (NULL: all) */
    const char *from;   /* force this stage and every later one to run (NULL: none) */
    int dry_run;        /* print the plan, change nothing */
    int lock_timeout_s; /* wait this long for another run's lock */
} runner_options;

/* Run the study; returns the documented exit code (0 done, 4 done with rejected inputs,
 * 5 nothing to do, 6 busy, 1 failed, 2/3 usage/environment). */
int runner_run(study *s, const char *study_path, const runner_options *opt);

/* The stage names in order, for --help and validation of --stages / --from. */
extern const char *const runner_stage_names[];
extern const int runner_n_stages;

#endif
