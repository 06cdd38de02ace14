/* pacs_cli.h — the study's pacs section (studies/study.h, rows read by ST_PACS) as the
 * io/pacs options of `vesalius ingest` and `vesalius send`. */
#ifndef VS_PACS_CLI_H
#define VS_PACS_CLI_H

#include "pacs.h"
#include "study.h"

/* Fill o from s->pacs; VS_ERR_CONFIG naming the key when a value is not one io/pacs takes
 * (a window that is not HH:MM-HH:MM, an AE title with a backslash, TLS files without tls_ca). */
vs_status pacs_cli_options(const study *s, pacs_options *o, vs_error *err);

#endif
