/* general.name / basename / finetune / version / size_label and the default output file name,
 * following the heuristics of llama.cpp's gguf-py (Metadata.get_model_id_components,
 * id_to_title, size_label, naming_convention) so that our files carry the same general.* keys.
 * The README.md model card is not read (llama.cpp reads its YAML front matter). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"

#define MAX_PARTS 32
#define PART_LEN 128

enum { T_BASENAME = 1, T_SIZE = 2, T_FINETUNE = 4, T_VERSION = 8, T_TYPE = 16 };

/* (v|iter)?\d+([.]\d+)* */
static bool is_version(const char *p) {
    if (strncasecmp(p, "iter", 4) == 0)
        p += 4;
    else if (*p == 'v' || *p == 'V')
        p++;
    for (;;) {
        const char *q = p;
        while (isdigit((unsigned char)*q))
            q++;
        if (q == p)
            return false;
        if (*q == '\0')
            return true;
        if (*q != '.')
            return false;
        p = q + 1;
    }
}

static bool is_word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* i?q\d(_\w)*|b?fp?(16|32) */
static bool is_quant_type(const char *p) {
    const char *q = p;
    if (*q == 'i' || *q == 'I')
        q++;
    if (*q == 'q' || *q == 'Q') {
        q++;
        if (isdigit((unsigned char)*q)) {
            q++;
            while (q[0] == '_' && is_word_char(q[1]))
                q += 2;
            if (*q == '\0')
                return true;
        }
    }
    q = p;
    if (*q == 'b' || *q == 'B')
        q++;
    if (*q != 'f' && *q != 'F')
        return false;
    q++;
    if (*q == 'p' || *q == 'P')
        q++;
    return strcmp(q, "16") == 0 || strcmp(q, "32") == 0;
}

/* (([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl), case-insensitive */
static bool size_prefix(const char *p) {
    /* tries the optional group at p, then the rest */
    const char *q = p;
    while (isdigit((unsigned char)*q))
        q++;
    if (q == p)
        return false;
    if (*q == '.' || *q == '_') {
        const char *r = q + 1;
        while (isdigit((unsigned char)*r))
            r++;
        if (r > q + 1)
            q = r;
    }
    if (!*q || !strchr("KMBTkmbt", *q))
        return false;
    q++;
    if (isdigit((unsigned char)*q))
        q++;
    return *q == '\0';
}
static bool is_size(const char *p) {
    static const char *words[] = {"small", "mini", "medium", "large", "xl", "xxl"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasecmp(p, words[i]) == 0)
            return true;
    if (size_prefix(p))
        return true;
    if ((*p == 'a' || *p == 'A') && size_prefix(p + 1))
        return true;
    /* \d+x prefix: try every split point */
    for (const char *q = p; isdigit((unsigned char)*q); q++)
        if ((q[1] == 'x' || q[1] == 'X') && size_prefix(q + 2))
            return true;
    return false;
}

static bool is_finetune_word(const char *p) {
    return strcasecmp(p, "chat") == 0 || strcasecmp(p, "instruct") == 0 || strcasecmp(p, "vision") == 0 ||
           strcasecmp(p, "lora") == 0;
}

/* Python float() of a size label's number part, or NAN when it is not a plain number. */
static double parse_number(const char *s, size_t n) {
    char buf[PART_LEN];
    if (n == 0 || n >= sizeof buf)
        return NAN;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)buf[i]) && buf[i] != '.')
            return NAN;
    char *end;
    double v = strtod(buf, &end);
    return *end ? NAN : v;
}

static void join_parts(char parts[][PART_LEN], const int *types, int n, int want, int exclude, char *out,
                       size_t size) {
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (!(types[i] & want) || (types[i] & exclude))
            continue;
        if (want == T_SIZE) { /* order-preserving de-duplication */
            bool dup = false;
            for (int k = 0; k < i; k++)
                if ((types[k] & T_SIZE) && strcmp(parts[k], parts[i]) == 0)
                    dup = true;
            if (dup)
                continue;
        }
        int w = snprintf(out + len, size - len, "%s%s", len ? "-" : "", parts[i]);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
}

typedef struct id_components {
    char full[256], org[256], basename[256], finetune[256], version[128], size_label[64];
    bool has_full;
} id_components;

static void model_id_components(const char *model_id, int64_t total_params, id_components *o) {
    memset(o, 0, sizeof *o);
    if (!model_id)
        return;
    o->has_full = true;
    if (strchr(model_id, ' ')) {
        snprintf(o->full, sizeof o->full, "%s", model_id);
        return;
    }
    const char *slash = strchr(model_id, '/');
    if (slash) {
        size_t n = (size_t)(slash - model_id);
        if (n > 0 && model_id[0] != '.')
            snprintf(o->org, sizeof o->org, "%.*s", (int)n, model_id);
        snprintf(o->full, sizeof o->full, "%s", slash + 1);
    } else {
        snprintf(o->full, sizeof o->full, "%s", model_id);
    }
    char parts[MAX_PARTS][PART_LEN];
    int types[MAX_PARTS];
    int n = 0;
    for (const char *p = o->full; *p && n < MAX_PARTS;) {
        const char *dash = strchr(p, '-');
        size_t len = dash ? (size_t)(dash - p) : strlen(p);
        if (len > 0 && len < PART_LEN) {
            memcpy(parts[n], p, len);
            parts[n][len] = '\0';
            types[n] = 0;
            n++;
        } else if (len >= PART_LEN) {
            return; /* absurd names: keep just the full name */
        }
        p += len;
        if (*p == '-')
            p++;
    }
    for (int i = 0; i < n; i++) {
        char *part = parts[i];
        if (is_version(part)) {
            types[i] |= T_VERSION;
        } else if (is_quant_type(part)) {
            types[i] |= T_TYPE;
            for (char *c = part; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        } else if (i > 0 && is_size(part)) {
            for (char *c = part; *c; c++)
                if (*c == '_')
                    *c = '.';
            size_t len = strlen(part);
            if (len >= 2 && isdigit((unsigned char)part[len - 1]) && len + 1 < PART_LEN) {
                /* bloom-7b1 -> 7.1b */
                char last = part[len - 1], unit = part[len - 2];
                part[len - 2] = '.';
                part[len - 1] = last;
                part[len] = unit;
                part[len + 1] = '\0';
                len++;
            }
            if (len > 1 && isdigit((unsigned char)part[len - 2]) && strchr("kmbt", part[len - 1]))
                part[len - 1] = (char)toupper((unsigned char)part[len - 1]);
            if (total_params != 0) {
                double num = parse_number(part, len - 1);
                const char *units = " KMBT";
                const char *u = strchr(units, part[len - 1]);
                if (!isnan(num)) {
                    double label = num * (u && part[len - 1] ? pow(1000, (double)(u - units)) : 0.001);
                    double total = (double)total_params;
                    /* an adapter (negative count) may cover only part of the model: a label is a
                     * size unless it is below 1/8 of the adapted weights */
                    bool context = total_params < 0 ? label < (double)(-total_params / 8)
                                                     : fabs(label - total) > (double)(7 * total_params / 8);
                    if (context) {
                        types[i] |= T_FINETUNE;
                        part[len - 1] = (char)tolower((unsigned char)part[len - 1]);
                    }
                }
            }
            if (types[i] == 0)
                types[i] |= T_SIZE;
        } else if (i > 0 && is_finetune_word(part)) {
            /* "lora" in an adapter's own name is its type, not a fine-tune */
            types[i] |= total_params < 0 && strcasecmp(part, "lora") == 0 ? T_TYPE : T_FINETUNE;
        }
    }
    bool numeric_size = false;
    for (int i = 0; i < n; i++)
        if (types[i] & T_SIZE)
            for (const char *c = parts[i]; *c; c++)
                if (isdigit((unsigned char)*c))
                    numeric_size = true;
    if (numeric_size)
        for (int i = 0; i < n; i++)
            if (types[i] & T_SIZE) {
                bool alpha = true;
                for (const char *c = parts[i]; *c; c++)
                    if (!isalpha((unsigned char)*c))
                        alpha = false;
                if (alpha)
                    types[i] &= ~T_SIZE;
            }
    bool at_start = true;
    for (int i = 0; i < n; i++) {
        if (at_start && ((types[i] == 0 && isalpha((unsigned char)parts[i][0])) || (types[i] & T_VERSION))) {
            types[i] |= T_BASENAME;
        } else {
            at_start = false;
            if (types[i] == 0)
                types[i] |= T_FINETUNE;
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        if ((types[i] & T_BASENAME) && (types[i] & ~T_BASENAME))
            types[i] &= ~T_BASENAME;
        else
            break;
    }
    join_parts(parts, types, n, T_BASENAME, 0, o->basename, sizeof o->basename);
    join_parts(parts, types, n, T_SIZE, 0, o->size_label, sizeof o->size_label);
    join_parts(parts, types, n, T_FINETUNE, 0, o->finetune, sizeof o->finetune);
    join_parts(parts, types, n, T_VERSION, T_BASENAME, o->version, sizeof o->version);
    if (!o->size_label[0] && !o->finetune[0] && !o->version[0])
        o->basename[0] = '\0';
}

/* Python's str.islower() and str.title() on ASCII; other bytes count as uncased. */
static bool word_is_lower(const char *w, size_t n) {
    bool cased = false;
    for (size_t i = 0; i < n; i++) {
        if (isupper((unsigned char)w[i]))
            return false;
        if (islower((unsigned char)w[i]))
            cased = true;
    }
    return cased;
}

void conv_id_to_title(const char *id, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    const char *p = id;
    for (;;) {
        while (*p == ' ' || *p == '-' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ' ' && *p != '-' && *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        size_t n = (size_t)(p - start);
        if (len + n + 2 >= size)
            break;
        if (len)
            buf[len++] = ' ';
        bool keep = !word_is_lower(start, n) || isdigit((unsigned char)start[0]) ||
                    ((start[0] == 'v') && n > 1 && is_version(start) && strncasecmp(start, "iter", 4) != 0);
        bool prev_cased = false;
        for (size_t i = 0; i < n; i++) {
            char c = start[i];
            if (!keep && isalpha((unsigned char)c)) {
                c = prev_cased ? (char)tolower((unsigned char)c) : (char)toupper((unsigned char)c);
                prev_cased = true;
            } else if (!keep) {
                prev_cased = false;
            }
            buf[len++] = c;
        }
        buf[len] = '\0';
    }
}

void conv_size_label(uint64_t params, char *buf, size_t size) {
    double scaled;
    char suffix;
    double p = (double)params;
    if (p > 1e12) {
        scaled = p * 1e-12;
        suffix = 'T';
    } else if (p > 1e9) {
        scaled = p * 1e-9;
        suffix = 'B';
    } else if (p > 1e6) {
        scaled = p * 1e-6;
        suffix = 'M';
    } else {
        scaled = p * 1e-3;
        suffix = 'K';
    }
    char digits[64];
    snprintf(digits, sizeof digits, "%.0f", nearbyint(scaled)); /* Python round(): ties to even */
    const char *d = digits;
    while (*d == '0')
        d++;
    int fix = 2 - (int)strlen(d);
    if (fix < 0)
        fix = 0;
    snprintf(buf, size, "%.*f%c", fix, scaled, suffix);
}

/* n_expert > 0 (a mixture of experts): gguf-py's fallback size label is "<experts>x<size>", the size
 * counting the shared tensors and one expert's share of each stacked one (label_params). */
static void naming_build(conv_naming *n, const char *name_or_path, const char *dir_name, int64_t total_params,
                         uint32_t n_expert, uint64_t label_params) {
    memset(n, 0, sizeof *n);
    const char *sources[2] = {NULL, dir_name};
    if (name_or_path) {
        int slashes = 0;
        for (const char *c = name_or_path; *c; c++)
            slashes += *c == '/';
        if (slashes <= 1)
            sources[0] = name_or_path;
    }
    for (int s = 0; s < 2; s++) {
        if (!sources[s])
            continue;
        id_components o;
        model_id_components(sources[s], total_params, &o);
        if (!n->name[0] && o.has_full && o.full[0])
            conv_id_to_title(o.full, n->name, sizeof n->name);
        if (!n->organization[0] && o.org[0])
            conv_id_to_title(o.org, n->organization, sizeof n->organization);
        if (!n->basename[0] && o.basename[0])
            snprintf(n->basename, sizeof n->basename, "%s", o.basename);
        if (!n->finetune[0] && o.finetune[0])
            snprintf(n->finetune, sizeof n->finetune, "%s", o.finetune);
        if (!n->version[0] && o.version[0])
            snprintf(n->version, sizeof n->version, "%s", o.version);
        if (!n->size_label[0] && o.size_label[0])
            snprintf(n->size_label, sizeof n->size_label, "%s", o.size_label);
    }
    if (!n->size_label[0] && total_params > 0 && n_expert > 0) {
        char size[48];
        conv_size_label(label_params, size, sizeof size);
        snprintf(n->size_label, sizeof n->size_label, "%ux%s", n_expert, size);
    } else if (!n->size_label[0] && total_params > 0) {
        conv_size_label((uint64_t)total_params, n->size_label, sizeof n->size_label);
    }
}

void conv_naming_build(conv_naming *n, const char *name_or_path, const char *dir_name, uint64_t total_params) {
    naming_build(n, name_or_path, dir_name, total_params > INT64_MAX ? INT64_MAX : (int64_t)total_params, 0, 0);
}

void conv_naming_build_experts(conv_naming *n, const char *name_or_path, const char *dir_name, uint64_t total_params,
                               uint32_t n_expert, uint64_t label_params) {
    naming_build(n, name_or_path, dir_name, total_params > INT64_MAX ? INT64_MAX : (int64_t)total_params, n_expert,
                 label_params);
}

void conv_naming_build_adapter(conv_naming *n, const char *dir_name, int64_t adapted_params) {
    naming_build(n, NULL, dir_name, adapted_params > 0 ? -adapted_params : adapted_params, 0, 0);
}

static void append_dashed(char *buf, size_t size, const char *s, bool upper) {
    size_t len = strlen(buf);
    /* strip() then spaces (and slashes) to dashes */
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < n && len + 1 < size; i++) {
        char c = s[i] == ' ' || s[i] == '/' ? '-' : s[i];
        buf[len++] = upper ? (char)toupper((unsigned char)c) : c;
    }
    buf[len] = '\0';
}

void conv_default_filename(const conv_naming *n, const char *type_upper, bool vocab_only, char *buf, size_t size) {
    buf[0] = '\0';
    if (n->basename[0])
        append_dashed(buf, size, n->basename, false);
    else if (n->name[0])
        append_dashed(buf, size, n->name, false);
    else
        append_dashed(buf, size, "ggml-model", false);
    if (!vocab_only && n->size_label[0]) {
        append_dashed(buf, size, "-", false);
        append_dashed(buf, size, n->size_label, false);
    }
    if (n->finetune[0]) {
        append_dashed(buf, size, "-", false);
        append_dashed(buf, size, n->finetune, false);
    }
    if (n->version[0]) {
        append_dashed(buf, size, "-", false);
        append_dashed(buf, size, n->version, false);
    }
    if (!vocab_only) {
        append_dashed(buf, size, "-", false);
        append_dashed(buf, size, type_upper, true);
    } else {
        append_dashed(buf, size, "-vocab", false);
    }
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, ".gguf");
}
