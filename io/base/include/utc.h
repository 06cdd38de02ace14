/* utc.h — the time now as ISO 8601 text in UTC, one format for logs, the catalog and reports. */
#ifndef VS_UTC_H
#define VS_UTC_H

#include <stddef.h>

/* "2024-01-31T13:45:01Z", or with_ms "2024-01-31T13:45:01.123Z", into buf (cap 25 holds
 * either; a smaller cap truncates, always NUL-terminated when cap > 0). */
void vs_utc_now(char *buf, size_t cap, int with_ms);

#endif
