/* labels_cli.h — what `vesalius split` and `vesalius finetune` share: the study's label files
 * read under the site key, and the labeled patients of a shard folder. */
#ifndef VS_LABELS_CLI_H
#define VS_LABELS_CLI_H

#include <stdint.h>

#include "labels.h"
#include "shard.h"
#include "status.h"
#include "study.h"

/* The label files of s (labels.file as labels.format says, labels.volumes), every original
 * SeriesInstanceUID replaced by its pseudonym under deid.key_file. The key must exist: a new one
 * would map to pseudonyms no shard holds. VS_ERR_USAGE when the study names no label file. */
vs_status labels_cli_read(const study *s, label_set *ls, vs_error *err);

/* The patients of the labeled series found in set (their patient keys read from the shards;
 * a series without one is its own patient), sorted by key: keys[i] and positive[i] (1 when one
 * of the patient's series is labeled positive), *n patients, *n_series labeled series found.
 * Free *keys and *positive. */
vs_status labels_cli_patients(shard_set *set, const label_set *ls, char (**keys)[65],
                              uint8_t **positive, uint32_t *n, int *n_series, vs_error *err);

#endif
