/* walk.h — the one rule by which every command turns the paths it is given into files
 * (ingest, inspect, anonymize, verify-deid, finetune's mask folders, the settings' content
 * hashes). The same paths give the same files, in the same order, whatever the command.
 *
 * The rule:
 *   1. The paths are taken in the order given. A path to a file is that file; a path to a
 *      folder is walked; a path that does not exist is an error naming it.
 *   2. A folder's entries are visited in byte order of their names, depth first; every entry,
 *      hidden names ('.name') included: nothing is left out unseen, and what a command cannot
 *      use it reports as skipped or rejected with its reason.
 *   3. Symbolic links are followed, to files and to folders alike. Each folder is walked once
 *      (by device and inode), so a link back to a parent or to a folder already walked adds
 *      nothing and no walk can loop; each file is given once, at the first path that reaches it.
 *   4. A link that leads nowhere and a folder that cannot be read are given to the callback
 *      with their errno, for the command to report by name; sockets, pipes and devices are not
 *      files and are left out.
 *
 * Invariants: the callback sees each (device, inode) of a file at most once per vs_walk call;
 * the order of the calls depends only on the names in the tree and the order of the paths.
 */
#ifndef VS_WALK_H
#define VS_WALK_H

#include "status.h"

/* One file of the walk: errno_ is 0 for a regular file, else why path could not be read
 * (a broken link: ENOENT; an unreadable folder: EACCES ...). A non-VS_OK return stops the walk
 * and is vs_walk's result. */
typedef vs_status (*vs_walk_fn)(void *ctx, const char *path, int errno_, vs_error *err);

/* Walk paths[0..n) by the rule above. */
vs_status vs_walk(const char *const *paths, int n, vs_walk_fn fn, void *ctx, vs_error *err);

#endif
