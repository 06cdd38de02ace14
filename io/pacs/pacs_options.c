/* pacs_options.c — PACS URLs and the PACS settings: one table of names, defaults and ranges. */
#include "pacs.h"
#include "parse.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "pacs:" and not only "pacs://", so that a mistyped URL is a usage error, not a missing folder */
int pacs_url_is(const char *s) { return s && strncasecmp(s, "pacs:", 5) == 0; }

/* An AE title: 1-16 characters, printable, no backslash; not all spaces. */
static int aet_ok(const char *s, size_t n) {
    int visible = 0;
    if (n == 0 || n > 16) return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isprint((unsigned char)s[i]) || s[i] == '\\') return 0;
        if (s[i] != ' ') visible = 1;
    }
    return visible;
}

/* YYYYMMDD with a plausible month and day. */
static int date_ok(const char *s, size_t n) {
    if (n != 8) return 0;
    for (size_t i = 0; i < 8; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    int m = (s[4] - '0') * 10 + (s[5] - '0'), d = (s[6] - '0') * 10 + (s[7] - '0');
    return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static vs_status url_query(const char *q, pacs_url *u, const char *url, vs_error *err) {
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        if (!eq)
            return VS_FAIL(err, VS_ERR_USAGE, "%s: query part '%.*s' is not NAME=VALUE", url,
                           (int)len, q);
        size_t kl = (size_t)(eq - q), vl = len - kl - 1;
        const char *v = eq + 1;
        if (kl == 8 && strncmp(q, "modality", 8) == 0) {
            while (vl > 0) {
                const char *comma = memchr(v, ',', vl);
                size_t ml = comma ? (size_t)(comma - v) : vl;
                if (ml == 0 || ml > 16 || u->n_modalities == PACS_MAX_MODALITIES)
                    return VS_FAIL(err, VS_ERR_USAGE, "%s: modality wants a list like CT,MR", url);
                for (size_t i = 0; i < ml; i++)
                    if (!isalnum((unsigned char)v[i]))
                        return VS_FAIL(err, VS_ERR_USAGE, "%s: modality wants a list like CT,MR",
                                       url);
                memcpy(u->modalities[u->n_modalities], v, ml);
                u->modalities[u->n_modalities++][ml] = 0;
                vl -= comma ? ml + 1 : ml;
                v += comma ? ml + 1 : ml;
            }
        } else if ((kl == 5 && strncmp(q, "since", 5) == 0) ||
                   (kl == 5 && strncmp(q, "until", 5) == 0)) {
            if (!date_ok(v, vl))
                return VS_FAIL(err, VS_ERR_USAGE, "%s: %.*s wants a date YYYYMMDD", url, (int)kl,
                               q);
            memcpy(q[0] == 's' ? u->since : u->until, v, 8);
        } else {
            return VS_FAIL(err, VS_ERR_USAGE,
                           "%s: unknown query parameter '%.*s' (modality, since, until)", url,
                           (int)kl, q);
        }
        q += len + (amp ? 1 : 0);
    }
    if (u->since[0] && u->until[0] && strcmp(u->since, u->until) > 0)
        return VS_FAIL(err, VS_ERR_USAGE, "%s: since is after until", url);
    return VS_OK;
}

vs_status pacs_url_parse(const char *s, pacs_url *u, vs_error *err) {
    memset(u, 0, sizeof *u);
    if (strncmp(s, "pacs://", 7) != 0)
        return VS_FAIL(err, VS_ERR_USAGE, "%s: a PACS URL starts with pacs://", s);
    const char *p = s + 7, *at = strchr(p, '@');
    const char *end = p + strcspn(p, "?/");
    if (!at || at > end || !aet_ok(p, (size_t)(at - p)))
        return VS_FAIL(err, VS_ERR_USAGE,
                       "%s: wants pacs://PACS_AET@host:port (an AE title of 1-16 characters)", s);
    memcpy(u->aet, p, (size_t)(at - p));
    const char *h = at + 1, *colon = NULL;
    if (*h == '[') { /* [IPv6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb || rb[1] != ':') return VS_FAIL(err, VS_ERR_USAGE, "%s: wants [address]:port", s);
        if ((size_t)(rb - h - 1) >= sizeof u->host || rb == h + 1)
            return VS_FAIL(err, VS_ERR_USAGE, "%s: bad host", s);
        memcpy(u->host, h + 1, (size_t)(rb - h - 1));
        colon = rb + 1;
    } else {
        for (const char *c = h; c < end; c++)
            if (*c == ':') colon = c;
        if (!colon || colon == h || (size_t)(colon - h) >= sizeof u->host)
            return VS_FAIL(err, VS_ERR_USAGE, "%s: wants pacs://PACS_AET@host:port", s);
        memcpy(u->host, h, (size_t)(colon - h));
        for (const char *c = u->host; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
                return VS_FAIL(err, VS_ERR_USAGE, "%s: bad host name", s);
    }
    char port[8] = "";
    size_t n_port = (size_t)(end - colon - 1);
    uint64_t v = 0;
    if (n_port < sizeof port) memcpy(port, colon + 1, n_port);
    if (n_port >= sizeof port || !vs_parse_u64(port, 1, 65535, &v))
        return VS_FAIL(err, VS_ERR_USAGE, "%s: the port must be 1 to 65535", s);
    u->port = (int)v;
    snprintf(u->name, sizeof u->name, "pacs://%s@%s:%d", u->aet, u->host, u->port);
    const char *rest = end;
    if (*rest == '/') rest++;
    if (*rest && *rest != '?')
        return VS_FAIL(err, VS_ERR_USAGE, "%s: unexpected path after the port", s);
    return *rest == '?' ? url_query(rest + 1, u, s, err) : VS_OK;
}

/* ---- settings (their defaults and ranges: studies/study.h, section pacs) ---------------- */

static int parse_hhmm(const char *s, int *minutes) {
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return 0;
    int h = (s[0] - '0') * 10 + s[1] - '0', m = (s[3] - '0') * 10 + s[4] - '0';
    if (h > 23 || m > 59) return 0;
    *minutes = h * 60 + m;
    return 1;
}

vs_status pacs_window_parse(const char *text, int *start, int *end, vs_error *err) {
    int a = 0, b = 0;
    if (!text || !text[0]) {
        *start = *end = 0;
        return VS_OK;
    }
    if (strlen(text) != 11 || text[5] != '-' || !parse_hhmm(text, &a) ||
        !parse_hhmm(text + 6, &b) || a == b)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "pacs window '%s' wants HH:MM-HH:MM (two different times) or nothing", text);
    *start = a;
    *end = b;
    return VS_OK;
}

vs_status pacs_options_check(const pacs_options *o, vs_error *err) {
    if (!aet_ok(o->calling_aet, strlen(o->calling_aet)))
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "pacs calling_aet wants 1-16 printable characters, no '\\'");
    if (o->move_aet[0] && !aet_ok(o->move_aet, strlen(o->move_aet)))
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "pacs move_aet wants 1-16 printable characters, no '\\'");
    if ((o->tls_cert[0] || o->tls_key[0]) && !o->tls_ca[0])
        return VS_FAIL(err, VS_ERR_CONFIG, "pacs tls_cert and tls_key need tls_ca (TLS)");
    return VS_OK;
}
