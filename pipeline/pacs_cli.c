/* pacs_cli.c — see pacs_cli.h. */
#include "pacs_cli.h"

#include <stdio.h>
#include <string.h>

vs_status pacs_cli_options(const study *s, pacs_options *o, vs_error *err) {
    const study_pacs *p = &s->pacs;
    memset(o, 0, sizeof *o);
    snprintf(o->calling_aet, sizeof o->calling_aet, "%s", p->calling_aet ? p->calling_aet : "");
    snprintf(o->move_aet, sizeof o->move_aet, "%s", p->move_aet ? p->move_aet : "");
    o->retrieve = p->retrieve == 1 ? PACS_MOVE : PACS_GET; /* row choices "get|move" */
    o->move_port = p->move_port;
    o->lookback_days = p->lookback_days;
    o->max_series = p->max_series;
    o->max_instances = p->max_instances;
    o->max_mb = p->max_mb;
    o->connect_timeout = p->connect_timeout;
    o->acse_timeout = p->acse_timeout;
    o->dimse_timeout = p->dimse_timeout;
    o->retries = p->retries;
    o->backoff = p->backoff;
    const struct {
        char *dst;
        const char *src;
    } paths[] = {{o->spool, p->spool},
                 {o->tls_ca, p->tls_ca},
                 {o->tls_cert, p->tls_cert},
                 {o->tls_key, p->tls_key}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        snprintf(paths[i].dst, sizeof o->spool, "%s", paths[i].src ? paths[i].src : "");
    vs_status st = pacs_window_parse(p->window, &o->window_start, &o->window_end, err);
    return st == VS_OK ? pacs_options_check(o, err) : st;
}
