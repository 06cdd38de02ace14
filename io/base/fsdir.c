/* fsdir.c — see fsdir.h. */
#include "fsdir.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

vs_status vs_mkdirs(const char *path, unsigned mode, vs_error *err) {
    char p[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p)
        return VS_FAIL(err, VS_ERR_IO, "folder path is empty or longer than %zu bytes", sizeof p - 1);
    memcpy(p, path, n + 1);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0') continue;
        char keep = *c;
        *c = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
            return VS_FAIL(err, VS_ERR_IO, "%s: cannot create the folder (%s)", p, strerror(errno));
        *c = keep;
        if (!keep) break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return VS_FAIL(err, VS_ERR_IO, "%s: exists and is not a folder", path);
    return VS_OK;
}
