/*
 * Script driver for the stock ZooKeeper C client (libzookeeper_mt), for the zkernel
 * integration tests.
 *
 *   gcc -DTHREADED -I/usr/include/zookeeper -o zkscript zkscript.c -lzookeeper_mt -lpthread
 *   ./zkscript HOST:PORT < script
 *
 * Commands are read from stdin one line at a time and executed in order. Every command
 * prints exactly one JSON line (its result); every watch / session event prints one JSON
 * line. All ZooKeeper operations use the asynchronous API: completions and watcher calls
 * both run on the library's completion thread, in the order the client read the server's
 * frames, so the output shows wire order (e.g. a notification before the reply of the
 * write that fired it).
 *
 * Line syntax: [label:] [@session] command args... [key=value...]
 * Tokens split on blanks, double quotes group, "~" as data means a null buffer.
 * The command list is documented in tests/integration/client_drivers.py.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zookeeper.h>

#define MAXTOK 256
#define MAXSESS 32

/* ------------------------------------------------------------------ string buffer */

typedef struct {
    char *p;
    size_t len, cap;
} sb_t;

static void sb_putn(sb_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n + 1) c *= 2;
        b->p = realloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_printf(sb_t *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp) {
        char *big = malloc(n + 1);
        va_start(ap, fmt);
        vsnprintf(big, n + 1, fmt, ap);
        va_end(ap);
        sb_putn(b, big, n);
        free(big);
    } else {
        sb_putn(b, tmp, n);
    }
}

static void sb_jstr_n(sb_t *b, const char *s, int n) {
    if (s == NULL || n < 0) {
        sb_putn(b, "null", 4);
        return;
    }
    sb_putn(b, "\"", 1);
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') sb_putn(b, "\\\"", 2);
        else if (c == '\\') sb_putn(b, "\\\\", 2);
        else if (c == '\n') sb_putn(b, "\\n", 2);
        else if (c == '\t') sb_putn(b, "\\t", 2);
        else if (c < 0x20) sb_printf(b, "\\u%04x", c);
        else sb_putn(b, (const char *)&c, 1);
    }
    sb_putn(b, "\"", 1);
}

static void sb_jstr(sb_t *b, const char *s) {
    sb_jstr_n(b, s, s ? (int)strlen(s) : -1);
}

static void sb_stat(sb_t *b, const struct Stat *st) {
    if (!st) {
        sb_putn(b, "null", 4);
        return;
    }
    sb_printf(b,
              "{\"czxid\":%" PRId64 ",\"mzxid\":%" PRId64 ",\"ctime\":%" PRId64 ",\"mtime\":%" PRId64
              ",\"version\":%d,\"cversion\":%d,\"aversion\":%d,\"ephemeralOwner\":%" PRId64
              ",\"dataLength\":%d,\"numChildren\":%d,\"pzxid\":%" PRId64 "}",
              st->czxid, st->mzxid, st->ctime, st->mtime, st->version, st->cversion, st->aversion,
              st->ephemeralOwner, st->dataLength, st->numChildren, st->pzxid);
}

static int cmpstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sb_strings(sb_t *b, const struct String_vector *v) {
    if (!v) {
        sb_putn(b, "null", 4);
        return;
    }
    char **copy = calloc(v->count + 1, sizeof(char *));
    for (int i = 0; i < v->count; i++) copy[i] = v->data[i];
    qsort(copy, v->count, sizeof(char *), cmpstr);
    sb_putn(b, "[", 1);
    for (int i = 0; i < v->count; i++) {
        if (i) sb_putn(b, ",", 1);
        sb_jstr(b, copy[i]);
    }
    sb_putn(b, "]", 1);
    free(copy);
}

/* ------------------------------------------------------------------ names */

static const char *err_name(int rc) {
    switch (rc) {
    case ZOK: return "OK";
    case ZSYSTEMERROR: return "SYSTEMERROR";
    case ZRUNTIMEINCONSISTENCY: return "RUNTIMEINCONSISTENCY";
    case ZDATAINCONSISTENCY: return "DATAINCONSISTENCY";
    case ZCONNECTIONLOSS: return "CONNECTIONLOSS";
    case ZMARSHALLINGERROR: return "MARSHALLINGERROR";
    case ZUNIMPLEMENTED: return "UNIMPLEMENTED";
    case ZOPERATIONTIMEOUT: return "OPERATIONTIMEOUT";
    case ZBADARGUMENTS: return "BADARGUMENTS";
    case ZINVALIDSTATE: return "INVALIDSTATE";
    case ZNEWCONFIGNOQUORUM: return "NEWCONFIGNOQUORUM";
    case ZRECONFIGINPROGRESS: return "RECONFIGINPROGRESS";
    case ZSSLCONNECTIONERROR: return "SSLCONNECTIONERROR";
    case ZAPIERROR: return "APIERROR";
    case ZNONODE: return "NONODE";
    case ZNOAUTH: return "NOAUTH";
    case ZBADVERSION: return "BADVERSION";
    case ZNOCHILDRENFOREPHEMERALS: return "NOCHILDRENFOREPHEMERALS";
    case ZNODEEXISTS: return "NODEEXISTS";
    case ZNOTEMPTY: return "NOTEMPTY";
    case ZSESSIONEXPIRED: return "SESSIONEXPIRED";
    case ZINVALIDCALLBACK: return "INVALIDCALLBACK";
    case ZINVALIDACL: return "INVALIDACL";
    case ZAUTHFAILED: return "AUTHFAILED";
    case ZCLOSING: return "CLOSING";
    case ZNOTHING: return "NOTHING";
    case ZSESSIONMOVED: return "SESSIONMOVED";
    case ZNOTREADONLY: return "NOTREADONLY";
    case ZEPHEMERALONLOCALSESSION: return "EPHEMERALONLOCALSESSION";
    case ZNOWATCHER: return "NOWATCHER";
    case ZRECONFIGDISABLED: return "RECONFIGDISABLED";
    case ZSESSIONCLOSEDREQUIRESASLAUTH: return "SESSIONCLOSEDREQUIRESASLAUTH";
    case ZTHROTTLEDOP: return "THROTTLEDOP";
    default: return "UNKNOWN";
    }
}

static const char *type_name(int t) {
    if (t == ZOO_CREATED_EVENT) return "NodeCreated";
    if (t == ZOO_DELETED_EVENT) return "NodeDeleted";
    if (t == ZOO_CHANGED_EVENT) return "NodeDataChanged";
    if (t == ZOO_CHILD_EVENT) return "NodeChildrenChanged";
    if (t == ZOO_SESSION_EVENT) return "None";
    if (t == ZOO_NOTWATCHING_EVENT) return "NotWatching";
    return "Unknown";
}

static const char *state_name(int s) {
    if (s == ZOO_CONNECTED_STATE) return "Connected";
    if (s == ZOO_CONNECTING_STATE) return "Connecting";
    if (s == ZOO_ASSOCIATING_STATE) return "Associating";
    if (s == ZOO_EXPIRED_SESSION_STATE) return "Expired";
    if (s == ZOO_AUTH_FAILED_STATE) return "AuthFailed";
    if (s == ZOO_READONLY_STATE) return "ReadOnly";
    if (s == ZOO_NOTCONNECTED_STATE) return "NotConnected";
    if (s == 0) return "Closed";
    return "Unknown";
}

/* ------------------------------------------------------------------ global state */

typedef struct {
    char sess[64];
    char w[64];
} wctx_t;

typedef struct {
    char name[64];
    zhandle_t *zh;
    wctx_t dflt;
} sess_t;

typedef struct {
    char sess[64];
    const char *type;
    const char *state;
    char *path;
    int consumed;
} ev_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static ev_t *events;
static int nevents, capevents;
static sess_t sessions[MAXSESS];
static int nsess;
static sess_t *current;
static const char *default_host;
static int counter;

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    wctx_t *w = ctx;
    if (!w) return;
    /* session events are delivered to the default watcher; named watchers only report node events */
    if (type == ZOO_SESSION_EVENT && strcmp(w->w, "default") != 0) return;
    int nodeless = (type == ZOO_SESSION_EVENT) || path == NULL;
    sb_t b = {0};
    sb_printf(&b, "{\"s\":");
    sb_jstr(&b, w->sess);
    sb_printf(&b, ",\"event\":\"%s\",\"state\":\"%s\",\"path\":", type_name(type), state_name(state));
    if (nodeless) sb_putn(&b, "null", 4);
    else sb_jstr(&b, path);
    sb_printf(&b, ",\"w\":");
    sb_jstr(&b, w->w);
    sb_putn(&b, "}", 1);
    pthread_mutex_lock(&lock);
    if (nevents == capevents) {
        capevents = capevents ? capevents * 2 : 64;
        events = realloc(events, capevents * sizeof(ev_t));
    }
    ev_t *e = &events[nevents++];
    memset(e, 0, sizeof *e);
    snprintf(e->sess, sizeof e->sess, "%s", w->sess);
    e->type = type_name(type);
    e->state = state_name(state);
    e->path = nodeless ? NULL : strdup(path);
    fputs(b.p, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    free(b.p);
}

static wctx_t *named_watch(sess_t *s, const char *w) {
    wctx_t *c = calloc(1, sizeof *c);
    snprintf(c->sess, sizeof c->sess, "%s", s->name);
    snprintf(c->w, sizeof c->w, "%s", w);
    return c;
}

/* ------------------------------------------------------------------ results */

typedef struct {
    sb_t b;
    int done;
    /* multi bookkeeping */
    int nops;
    zoo_op_t *ops;
    zoo_op_result_t *results;
    char (*paths)[1024];
    struct Stat *stats;
} res_t;

static res_t *res_new(const char *sess, const char *label, const char *cmd) {
    res_t *r = calloc(1, sizeof *r);
    sb_printf(&r->b, "{\"s\":");
    sb_jstr(&r->b, sess);
    sb_printf(&r->b, ",\"n\":%d", ++counter);
    if (label) {
        sb_printf(&r->b, ",\"label\":");
        sb_jstr(&r->b, label);
    }
    sb_printf(&r->b, ",\"cmd\":");
    sb_jstr(&r->b, cmd);
    return r;
}

static void res_finish(res_t *r, int rc, int client_side) {
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"ok\":true}");
    } else {
        sb_printf(&r->b, ",\"ok\":false,\"err\":\"%s\",\"code\":%d", err_name(rc), rc);
        if (client_side) sb_printf(&r->b, ",\"client\":true");
        sb_putn(&r->b, "}", 1);
    }
    pthread_mutex_lock(&lock);
    fputs(r->b.p, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    r->done = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void res_fail(res_t *r, const char *err, const char *msg) {
    sb_printf(&r->b, ",\"ok\":false,\"err\":\"%s\"", err);
    if (msg) {
        sb_printf(&r->b, ",\"msg\":");
        sb_jstr(&r->b, msg);
    }
    sb_putn(&r->b, "}", 1);
    pthread_mutex_lock(&lock);
    fputs(r->b.p, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    r->done = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void deadline_in(struct timespec *ts, long ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void res_wait(res_t *r) {
    struct timespec ts;
    deadline_in(&ts, 60000);
    pthread_mutex_lock(&lock);
    while (!r->done) {
        if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT) break;
    }
    int done = r->done;
    pthread_mutex_unlock(&lock);
    if (!done) res_fail(r, "CLIENT_TIMEOUT", "no completion within 60 s");
}

/* ------------------------------------------------------------------ completions */

static void c_void(int rc, const void *data) {
    res_finish((res_t *)data, rc, 0);
}

static void c_string(int rc, const char *value, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"path\":");
        sb_jstr(&r->b, value);
    }
    res_finish(r, rc, 0);
}

static void c_string_stat(int rc, const char *value, const struct Stat *st, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"path\":");
        sb_jstr(&r->b, value);
        sb_printf(&r->b, ",\"stat\":");
        sb_stat(&r->b, st);
    }
    res_finish(r, rc, 0);
}

static void c_stat(int rc, const struct Stat *st, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"stat\":");
        sb_stat(&r->b, st);
    }
    res_finish(r, rc, 0);
}

static void c_data(int rc, const char *value, int value_len, const struct Stat *st, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"data\":");
        sb_jstr_n(&r->b, value, value ? value_len : -1);
        sb_printf(&r->b, ",\"stat\":");
        sb_stat(&r->b, st);
    }
    res_finish(r, rc, 0);
}

static void c_strings(int rc, const struct String_vector *v, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"children\":");
        sb_strings(&r->b, v);
    }
    res_finish(r, rc, 0);
}

static void c_strings_stat(int rc, const struct String_vector *v, const struct Stat *st, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"children\":");
        sb_strings(&r->b, v);
        sb_printf(&r->b, ",\"stat\":");
        sb_stat(&r->b, st);
    }
    res_finish(r, rc, 0);
}

static void c_acl(int rc, struct ACL_vector *acl, struct Stat *st, const void *data) {
    res_t *r = (res_t *)data;
    if (rc == ZOK) {
        sb_printf(&r->b, ",\"acl\":[");
        for (int i = 0; acl && i < acl->count; i++) {
            if (i) sb_putn(&r->b, ",", 1);
            sb_printf(&r->b, "[%d,", acl->data[i].perms);
            sb_jstr(&r->b, acl->data[i].id.scheme);
            sb_putn(&r->b, ",", 1);
            sb_jstr(&r->b, acl->data[i].id.id);
            sb_putn(&r->b, "]", 1);
        }
        sb_printf(&r->b, "],\"stat\":");
        sb_stat(&r->b, st);
    }
    res_finish(r, rc, 0);
}

static void c_multi(int rc, const void *data) {
    res_t *r = (res_t *)data;
    sb_printf(&r->b, ",\"results\":[");
    for (int i = 0; i < r->nops; i++) {
        if (i) sb_putn(&r->b, ",", 1);
        zoo_op_t *op = &r->ops[i];
        zoo_op_result_t *res = &r->results[i];
        sb_printf(&r->b, "{\"err\":%d", res->err);
        if (res->err == ZOK && (op->type == ZOO_CREATE_OP || op->type == ZOO_CREATE_CONTAINER_OP)) {
            sb_printf(&r->b, ",\"path\":");
            sb_jstr(&r->b, r->paths[i]);
        }
        if (res->err == ZOK && op->type == ZOO_SETDATA_OP) {
            sb_printf(&r->b, ",\"stat\":");
            sb_stat(&r->b, &r->stats[i]);
        }
        sb_putn(&r->b, "}", 1);
    }
    sb_putn(&r->b, "]", 1);
    res_finish(r, rc, 0);
}

/* ------------------------------------------------------------------ parsing */

#define EMPTY_TOKEN "\001EMPTY"

static int tokenize(char *line, char **out) {
    int n = 0;
    char *p = line;
    while (*p && n < MAXTOK) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        sb_t b = {0};
        int quoted = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            if (*p == '"') {
                quoted = 1;
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1]) {
                        p++;
                        char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
                        sb_putn(&b, &c, 1);
                    } else {
                        sb_putn(&b, p, 1);
                    }
                    p++;
                }
                if (*p == '"') p++;
            } else {
                sb_putn(&b, p, 1);
                p++;
            }
        }
        if (quoted && b.len == 0) out[n++] = strdup(EMPTY_TOKEN);
        else out[n++] = b.p ? b.p : strdup("");
    }
    return n;
}

typedef struct {
    char *pos[MAXTOK];
    int npos;
    char *key[MAXTOK];
    char *val[MAXTOK];
    int nopt;
} args_t;

static int is_flag(const char *t) {
    return !strcmp(t, "watch") || !strcmp(t, "local") || !strcmp(t, "badpw");
}

static int is_key(const char *t, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || t[i] == '_')) return 0;
    return 1;
}

static void parse_args(char **toks, int n, args_t *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < n; i++) {
        char *t = toks[i];
        char *eq = strchr(t, '=');
        if (eq && is_key(t, eq - t)) {
            a->key[a->nopt] = strndup(t, eq - t);
            a->val[a->nopt++] = eq + 1;
        } else if (is_flag(t)) {
            a->key[a->nopt] = t;
            a->val[a->nopt++] = "";
        } else {
            a->pos[a->npos++] = strcmp(t, EMPTY_TOKEN) == 0 ? "" : t;
        }
    }
}

static const char *opt(args_t *a, const char *k) {
    for (int i = 0; i < a->nopt; i++)
        if (!strcmp(a->key[i], k)) return a->val[i];
    return NULL;
}

static const char *pos(args_t *a, int i, const char *dflt) {
    return i < a->npos ? a->pos[i] : dflt;
}

static int parse_mode(const char *s) {
    if (!strcmp(s, "P") || !strcmp(s, "PERSISTENT")) return ZOO_PERSISTENT;
    if (!strcmp(s, "E") || !strcmp(s, "EPHEMERAL")) return ZOO_EPHEMERAL;
    if (!strcmp(s, "PS") || !strcmp(s, "PERSISTENT_SEQUENTIAL")) return ZOO_PERSISTENT_SEQUENTIAL;
    if (!strcmp(s, "ES") || !strcmp(s, "EPHEMERAL_SEQUENTIAL")) return ZOO_EPHEMERAL_SEQUENTIAL;
    if (!strcmp(s, "C") || !strcmp(s, "CONTAINER")) return ZOO_CONTAINER;
    if (!strcmp(s, "T") || !strcmp(s, "TTL") || !strcmp(s, "PERSISTENT_WITH_TTL")) return ZOO_PERSISTENT_WITH_TTL;
    if (!strcmp(s, "TS") || !strcmp(s, "STTL") || !strcmp(s, "PERSISTENT_SEQUENTIAL_WITH_TTL"))
        return ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL;
    return atoi(s); /* raw flag value, e.g. 7 (invalid) */
}

static int parse_perms(const char *s) {
    if ((*s >= '0' && *s <= '9') || *s == '-') return atoi(s);
    int p = 0;
    for (; *s; s++) {
        if (*s == 'r') p |= ZOO_PERM_READ;
        else if (*s == 'w') p |= ZOO_PERM_WRITE;
        else if (*s == 'c') p |= ZOO_PERM_CREATE;
        else if (*s == 'd') p |= ZOO_PERM_DELETE;
        else if (*s == 'a') p |= ZOO_PERM_ADMIN;
    }
    return p;
}

/* open | read | creator | scheme:id:perms[,scheme:id:perms...] */
static struct ACL_vector *parse_acl(const char *spec) {
    if (!spec || !strcmp(spec, "open")) return &ZOO_OPEN_ACL_UNSAFE;
    if (!strcmp(spec, "read")) return &ZOO_READ_ACL_UNSAFE;
    if (!strcmp(spec, "creator")) return &ZOO_CREATOR_ALL_ACL;
    struct ACL_vector *v = calloc(1, sizeof *v);
    v->data = calloc(64, sizeof(struct ACL));
    char *copy = strdup(spec), *save = NULL;
    for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char *a = strchr(e, ':');
        char *b = strrchr(e, ':');
        if (!a || a == b) continue;
        struct ACL *acl = &v->data[v->count++];
        acl->perms = parse_perms(b + 1);
        acl->id.scheme = strndup(e, a - e);
        acl->id.id = strndup(a + 1, b - a - 1);
    }
    return v;
}

static int parse_wtype(const char *s) {
    if (!strcasecmp(s, "children")) return ZWATCHTYPE_CHILD;
    if (!strcasecmp(s, "data")) return ZWATCHTYPE_DATA;
    return ZWATCHTYPE_ANY;
}

static sess_t *find_sess(const char *name) {
    for (int i = 0; i < nsess; i++)
        if (!strcmp(sessions[i].name, name)) return &sessions[i];
    return NULL;
}

static int unhex(const char *s, char *out, int max) {
    int n = 0;
    if (s[0] == '0' && s[1] == 'x') s += 2;
    while (s[0] && s[1] && n < max) {
        unsigned v;
        sscanf(s, "%2x", &v);
        out[n++] = (char)v;
        s += 2;
    }
    return n;
}

/* ------------------------------------------------------------------ commands */

/* Wait for (and consume) an event; type NULL = session event with the given state. */
static int wait_event(const char *sess, const char *type, const char *path, const char *state,
                      long ms, ev_t *found) {
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&lock);
    for (;;) {
        for (int i = 0; i < nevents; i++) {
            ev_t *e = &events[i];
            if (e->consumed || strcmp(e->sess, sess) != 0) continue;
            if (strcmp(e->type, type) != 0) continue;
            if (state && strcmp(e->state, state) != 0) continue;
            if (path && (!e->path || strcmp(e->path, path) != 0)) continue;
            e->consumed = 1;
            if (found) *found = *e;
            pthread_mutex_unlock(&lock);
            return 1;
        }
        if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&lock);
            return 0;
        }
    }
}

static void cmd_connect(args_t *a, res_t *r) {
    const char *name = pos(a, 0, "a");
    sess_t *s = find_sess(name);
    if (!s) {
        if (nsess == MAXSESS) {
            res_fail(r, "CLIENT_EXCEPTION", "too many sessions");
            return;
        }
        s = &sessions[nsess++];
    } else if (s->zh) {
        zookeeper_close(s->zh);
    }
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->dflt.sess, sizeof s->dflt.sess, "%s", name);
    snprintf(s->dflt.w, sizeof s->dflt.w, "default");
    const char *cs = opt(a, "cs") ? opt(a, "cs") : default_host;
    int timeout = opt(a, "timeout") ? atoi(opt(a, "timeout")) : 30000;
    clientid_t cid, *pcid = NULL;
    memset(&cid, 0, sizeof cid);
    if (opt(a, "session")) {
        sess_t *o = find_sess(opt(a, "session"));
        if (!o || !o->zh) {
            res_fail(r, "CLIENT_EXCEPTION", "no such session");
            return;
        }
        cid = *zoo_client_id(o->zh);
        pcid = &cid;
    } else if (opt(a, "sid")) {
        cid.client_id = (int64_t)strtoull(opt(a, "sid"), NULL, 16);
        if (opt(a, "pw")) unhex(opt(a, "pw"), cid.passwd, 16);
        pcid = &cid;
    }
    if (pcid && opt(a, "badpw")) cid.passwd[0] ^= 0x55;
    int before;
    pthread_mutex_lock(&lock);
    before = nevents;
    pthread_mutex_unlock(&lock);
    current = s;
    s->zh = zookeeper_init(cs, watcher, timeout, pcid, &s->dflt, 0);
    if (!s->zh) {
        res_fail(r, "CLIENT_EXCEPTION", strerror(errno));
        return;
    }
    struct timespec ts;
    deadline_in(&ts, opt(a, "wait") ? atol(opt(a, "wait")) : 15000);
    pthread_mutex_lock(&lock);
    for (;;) {
        for (int i = before; i < nevents; i++) {
            ev_t *e = &events[i];
            if (e->consumed || strcmp(e->sess, name) != 0 || strcmp(e->type, "None") != 0) continue;
            if (!strcmp(e->state, "Connecting") || !strcmp(e->state, "Associating")) continue;
            e->consumed = 1;
            const char *st = e->state;
            pthread_mutex_unlock(&lock);
            sb_printf(&r->b, ",\"state\":\"%s\"", st);
            if (!strcmp(st, "Connected")) {
                const clientid_t *c = zoo_client_id(s->zh);
                sb_printf(&r->b, ",\"session_id\":%" PRId64 ",\"timeout\":%d", c->client_id,
                          zoo_recv_timeout(s->zh));
                res_finish(r, ZOK, 0);
            } else {
                res_fail(r, !strcmp(st, "Expired") ? "EXPIRED" : "AUTHFAILED", NULL);
            }
            return;
        }
        if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&lock);
    res_fail(r, "CONNECT_TIMEOUT", NULL);
}

static void cmd_multi(sess_t *s, char **toks, int ntok, res_t *r) {
    int nops = 1;
    for (int i = 0; i < ntok; i++)
        if (!strcmp(toks[i], "|")) nops++;
    r->nops = nops;
    r->ops = calloc(nops, sizeof(zoo_op_t));
    r->results = calloc(nops, sizeof(zoo_op_result_t));
    r->paths = calloc(nops, sizeof *r->paths);
    r->stats = calloc(nops, sizeof(struct Stat));
    int start = 0, k = 0;
    for (int i = 0; i <= ntok; i++) {
        if (i < ntok && strcmp(toks[i], "|") != 0) continue;
        args_t *a = calloc(1, sizeof *a);
        parse_args(toks + start + 1, i - start - 1, a);
        const char *op = toks[start];
        zoo_op_t *o = &r->ops[k];
        if (!strcmp(op, "create")) {
            const char *d = pos(a, 1, "~");
            int isnull = !strcmp(d, "~");
            zoo_create_op_init(o, pos(a, 0, "/"), isnull ? NULL : d, isnull ? -1 : (int)strlen(d),
                               parse_acl(opt(a, "acl")), parse_mode(pos(a, 2, "P")), r->paths[k], 1024);
        } else if (!strcmp(op, "delete")) {
            zoo_delete_op_init(o, pos(a, 0, "/"), atoi(pos(a, 1, "-1")));
        } else if (!strcmp(op, "set")) {
            const char *d = pos(a, 1, "~");
            int isnull = !strcmp(d, "~");
            zoo_set_op_init(o, pos(a, 0, "/"), isnull ? NULL : d, isnull ? -1 : (int)strlen(d),
                            atoi(pos(a, 2, "-1")), &r->stats[k]);
        } else if (!strcmp(op, "check")) {
            zoo_check_op_init(o, pos(a, 0, "/"), atoi(pos(a, 1, "-1")));
        } else {
            res_fail(r, "CLIENT_EXCEPTION", "unknown multi op");
            return;
        }
        k++;
        start = i + 1;
    }
    int rc = zoo_amulti(s->zh, nops, r->ops, r->results, c_multi, r);
    if (rc != ZOK) res_finish(r, rc, 1);
}

static void run_line(char *line) {
    char *toks[MAXTOK];
    int n = tokenize(line, toks);
    if (n == 0 || toks[0][0] == '#') return;
    int i = 0;
    const char *label = NULL;
    sess_t *s = current;
    /* "label:" and "@session" prefixes, in either order */
    for (int k = 0; k < 2 && i < n; k++) {
        size_t l0 = strlen(toks[i]);
        if (!label && l0 > 1 && toks[i][l0 - 1] == ':' && toks[i][0] != '/' && toks[i][0] != '@') {
            toks[i][l0 - 1] = 0;
            label = toks[i++];
        } else if (toks[i][0] == '@' && l0 > 1) {
            s = find_sess(toks[i] + 1);
            i++;
        }
    }
    const char *cmd = i < n ? toks[i++] : "";
    args_t a;
    parse_args(toks + i, n - i, &a);
    res_t *r = res_new(!strcmp(cmd, "connect") ? pos(&a, 0, "a")
                       : (!strcmp(cmd, "wait_event") || !strcmp(cmd, "wait_state")) ? pos(&a, 0, "")
                       : (s ? s->name : NULL),
                       label, cmd);
    int rc = ZOK;

    if (!strcmp(cmd, "connect")) {
        cmd_connect(&a, r);
        return;
    }
    if (!strcmp(cmd, "sleep")) {
        usleep(atol(pos(&a, 0, "0")) * 1000L);
        res_finish(r, ZOK, 0);
        return;
    }
    if (!strcmp(cmd, "echo")) {
        sb_printf(&r->b, ",\"text\":");
        sb_jstr(&r->b, pos(&a, 0, ""));
        res_finish(r, ZOK, 0);
        return;
    }
    if (!strcmp(cmd, "use")) {
        current = find_sess(pos(&a, 0, ""));
        if (current) res_finish(r, ZOK, 0);
        else res_fail(r, "CLIENT_EXCEPTION", "no such session");
        return;
    }
    if (!strcmp(cmd, "wait_event") || !strcmp(cmd, "wait_state")) {
        ev_t e;
        int is_state = !strcmp(cmd, "wait_state");
        const char *sess = pos(&a, 0, "");
        const char *type = is_state ? "None" : pos(&a, 1, "");
        const char *path = is_state ? NULL : pos(&a, 2, "-");
        if (path && !strcmp(path, "-")) path = NULL;
        const char *state = is_state ? pos(&a, 1, "") : NULL;
        long ms = atol(pos(&a, is_state ? 2 : 3, "15000"));
        if (wait_event(sess, type, path, state, ms, &e)) {
            sb_printf(&r->b, ",\"event\":\"%s\",\"state\":\"%s\",\"path\":", e.type, e.state);
            sb_jstr(&r->b, e.path);
            res_finish(r, ZOK, 0);
        } else {
            res_fail(r, "TIMEOUT", NULL);
        }
        return;
    }
    if (!s || !s->zh) {
        res_fail(r, "CLIENT_EXCEPTION", "no session");
        return;
    }
    zhandle_t *zh = s->zh;
    const char *w = opt(&a, "watch");
    int watch_bool = w && !*w;
    wctx_t *wnamed = (w && *w) ? named_watch(s, w) : NULL;

    if (!strcmp(cmd, "session")) {
        const clientid_t *c = zoo_client_id(zh);
        sb_printf(&r->b, ",\"session_id\":%" PRId64 ",\"session_hex\":\"0x%" PRIx64 "\",\"passwd\":\"",
                  c->client_id, (uint64_t)c->client_id);
        for (int k = 0; k < 16; k++) sb_printf(&r->b, "%02x", (unsigned char)c->passwd[k]);
        sb_printf(&r->b, "\",\"timeout\":%d,\"state\":\"%s\"", zoo_recv_timeout(zh), state_name(zoo_state(zh)));
        res_finish(r, ZOK, 0);
        return;
    }
    if (!strcmp(cmd, "close")) {
        rc = zookeeper_close(zh);
        s->zh = NULL;
        res_finish(r, rc, 1);
        return;
    }
    if (!strcmp(cmd, "create") || !strcmp(cmd, "create2")) {
        const char *path = pos(&a, 0, "/");
        const char *d = pos(&a, 1, "~");
        int isnull = !strcmp(d, "~");
        int mode = parse_mode(pos(&a, 2, "P"));
        int64_t ttl = opt(&a, "ttl") ? strtoll(opt(&a, "ttl"), NULL, 10) : -1;
        struct ACL_vector *acl = parse_acl(opt(&a, "acl"));
        if (!strcmp(cmd, "create"))
            rc = zoo_acreate_ttl(zh, path, isnull ? NULL : d, isnull ? -1 : (int)strlen(d), acl, mode, ttl,
                                 c_string, r);
        else
            rc = zoo_acreate2_ttl(zh, path, isnull ? NULL : d, isnull ? -1 : (int)strlen(d), acl, mode, ttl,
                                  c_string_stat, r);
    } else if (!strcmp(cmd, "delete")) {
        rc = zoo_adelete(zh, pos(&a, 0, "/"), atoi(pos(&a, 1, "-1")), c_void, r);
    } else if (!strcmp(cmd, "exists")) {
        if (wnamed) rc = zoo_awexists(zh, pos(&a, 0, "/"), watcher, wnamed, c_stat, r);
        else rc = zoo_aexists(zh, pos(&a, 0, "/"), watch_bool, c_stat, r);
    } else if (!strcmp(cmd, "get")) {
        if (wnamed) rc = zoo_awget(zh, pos(&a, 0, "/"), watcher, wnamed, c_data, r);
        else rc = zoo_aget(zh, pos(&a, 0, "/"), watch_bool, c_data, r);
    } else if (!strcmp(cmd, "set")) {
        const char *d = pos(&a, 1, "~");
        int isnull = !strcmp(d, "~");
        rc = zoo_aset(zh, pos(&a, 0, "/"), isnull ? NULL : d, isnull ? -1 : (int)strlen(d),
                      atoi(pos(&a, 2, "-1")), c_stat, r);
    } else if (!strcmp(cmd, "ls")) {
        if (wnamed) rc = zoo_awget_children(zh, pos(&a, 0, "/"), watcher, wnamed, c_strings, r);
        else rc = zoo_aget_children(zh, pos(&a, 0, "/"), watch_bool, c_strings, r);
    } else if (!strcmp(cmd, "ls2")) {
        if (wnamed) rc = zoo_awget_children2(zh, pos(&a, 0, "/"), watcher, wnamed, c_strings_stat, r);
        else rc = zoo_aget_children2(zh, pos(&a, 0, "/"), watch_bool, c_strings_stat, r);
    } else if (!strcmp(cmd, "getacl")) {
        rc = zoo_aget_acl(zh, pos(&a, 0, "/"), c_acl, r);
    } else if (!strcmp(cmd, "setacl")) {
        rc = zoo_aset_acl(zh, pos(&a, 0, "/"), atoi(pos(&a, 2, "-1")), parse_acl(pos(&a, 1, "open")), c_void, r);
    } else if (!strcmp(cmd, "sync")) {
        rc = zoo_async(zh, pos(&a, 0, "/"), c_string, r);
    } else if (!strcmp(cmd, "addauth")) {
        const char *cert = pos(&a, 1, "");
        rc = zoo_add_auth(zh, pos(&a, 0, "digest"), cert, (int)strlen(cert), c_void, r);
    } else if (!strcmp(cmd, "removeallwatches")) {
        rc = zoo_remove_all_watches(zh, pos(&a, 0, "/"), parse_wtype(pos(&a, 1, "any")), opt(&a, "local") != NULL);
        res_finish(r, rc, 0);
        return;
    } else if (!strcmp(cmd, "multi")) {
        cmd_multi(s, toks + i, n - i, r);
        if (!r->done) res_wait(r);
        return;
    } else {
        res_fail(r, "CLIENT_EXCEPTION", "unknown command");
        return;
    }
    if (rc != ZOK) {
        res_finish(r, rc, 1);
        return;
    }
    res_wait(r);
}

int main(int argc, char **argv) {
    default_host = argc > 1 ? argv[1] : "127.0.0.1:2181";
    zoo_set_debug_level(getenv("ZKSCRIPT_DEBUG") ? ZOO_LOG_LEVEL_DEBUG : ZOO_LOG_LEVEL_ERROR);
    zoo_set_log_stream(stderr);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) >= 0) {
        run_line(line);
    }
    for (int k = 0; k < nsess; k++) {
        if (sessions[k].zh) zookeeper_close(sessions[k].zh);
    }
    fflush(stdout);
    return 0;
}
