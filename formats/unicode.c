/* Unicode classes and llama.cpp's UTF-8 decoding (formats/unicode.h). */
#include "formats/unicode.h"

uint8_t nm_unicode_flags_slow(uint32_t cp) {
    if (cp >= 0x110000)
        return NM_UCAT_UNASSIGNED;
    unsigned lo = 0, hi = nm_unicode_range_count; /* last range with first <= cp */
    while (hi - lo > 1) {
        unsigned mid = lo + (hi - lo) / 2;
        if (nm_unicode_ranges[mid].first <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return nm_unicode_ranges[lo].flags;
}

static inline int is_cont(const char *t, size_t len, size_t i) {
    return i < len && ((unsigned char)t[i] & 0xc0) == 0x80;
}

uint32_t nm_utf8_decode(const char *text, size_t len, size_t *pos) {
    size_t i = *pos;
    unsigned c = (unsigned char)text[i];
    if (c < 0x80) {
        *pos = i + 1;
        return c;
    }
    /* llama.cpp checks only the lead byte's length bits and the continuation bytes' top bits */
    if ((c & 0xe0) == 0xc0 && is_cont(text, len, i + 1)) {
        *pos = i + 2;
        return ((c & 0x1fu) << 6) | ((unsigned char)text[i + 1] & 0x3fu);
    }
    if ((c & 0xf0) == 0xe0 && is_cont(text, len, i + 1) && is_cont(text, len, i + 2)) {
        *pos = i + 3;
        return ((c & 0x0fu) << 12) | (((unsigned char)text[i + 1] & 0x3fu) << 6) | ((unsigned char)text[i + 2] & 0x3fu);
    }
    if ((c & 0xf8) == 0xf0 && is_cont(text, len, i + 1) && is_cont(text, len, i + 2) && is_cont(text, len, i + 3)) {
        *pos = i + 4;
        return ((c & 0x07u) << 18) | (((unsigned char)text[i + 1] & 0x3fu) << 12) |
               (((unsigned char)text[i + 2] & 0x3fu) << 6) | ((unsigned char)text[i + 3] & 0x3fu);
    }
    *pos = i + 1;
    return 0xfffd;
}

size_t nm_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int nm_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}
