/* GPT-2 byte-level BPE as llama.cpp's llm_tokenizer_bpe does it: a pre-tokenizer splits the
 * text into words (the GPT-2 pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
 * ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, optionally after splitting off every digit; or Llama 3's
 * and Qwen2's patterns); each word's
 * bytes are mapped to printable code points; then adjacent pairs are merged by merge rank
 * (lowest first, leftmost on ties). */
#include <stdlib.h>
#include <string.h>

#include "tok/merge_queue.h"
#include "tok/unicode.h"
#include "tok/vocab.h"

/* ---- pre-tokenizer: word boundaries over code points ---- */

typedef struct {
    size_t *end; /* exclusive end of each word, in code points */
    size_t n, cap;
} cuts;

static int cut(cuts *c, size_t end) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        size_t *ne = realloc(c->end, sizeof(size_t) * nc);
        if (!ne) return -1;
        c->end = ne;
        c->cap = nc;
    }
    c->end[c->n++] = end;
    return 0;
}

#define OUT_OF_RANGE 0xFFFFFFFFu
enum { F_LETTER = 1, F_NUMBER = 2, F_SPACE = 4, F_ANY = 8 };

static int flags_of(uint32_t cp);

/* Where the patterns' last alternatives, \s+(?!\S)|\s+ or one code point of anything else, end
 * for a run of ws spaces at pos: a run followed by more text leaves its last space to the next
 * word; no space at all takes one code point. */
static size_t whitespace_end(size_t pos, size_t ws, int followed) {
    if (ws > 1 && followed) return pos + ws - 1;
    return ws > 0 ? pos + ws : pos + 1;
}

/* The GPT-2 pattern on cps[a, b), as llama.cpp's unicode_regex_split_custom_gpt2: positions
 * outside the segment read as "nothing" (so (?!\S) holds at its end). */
static int split_gpt2(const uint32_t *cps, size_t a, size_t b, cuts *out) {
#define CPT(p) ((p) < b ? cps[p] : OUT_OF_RANGE)
#define FLAGS(p) ((p) < b ? flags_of(cps[p]) : 0)
    size_t prev = a;
#define ADD(end) do { if ((end) > prev) { if (cut(out, (end))) return -1; } prev = (end); } while (0)
    for (size_t pos = a; pos < b;) {
        uint32_t c = cps[pos];
        if (c == '\'' && pos + 1 < b) {
            uint32_t c1 = cps[pos + 1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { ADD(pos + 2); pos += 2; continue; }
            if (pos + 2 < b) {
                uint32_t c2 = cps[pos + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    ADD(pos + 3);
                    pos += 3;
                    continue;
                }
            }
        }
        int f = (c == ' ') ? FLAGS(pos + 1) : FLAGS(pos);
        if (f & F_LETTER) {
            pos += (c == ' ');
            while (FLAGS(pos) & F_LETTER) pos++;
            ADD(pos);
            continue;
        }
        if (f & F_NUMBER) {
            pos += (c == ' ');
            while (FLAGS(pos) & F_NUMBER) pos++;
            ADD(pos);
            continue;
        }
        if (f && !(f & (F_SPACE | F_LETTER | F_NUMBER))) {
            pos += (c == ' ');
            for (;;) {
                int g = FLAGS(pos);
                if (!g || (g & (F_SPACE | F_LETTER | F_NUMBER))) break;
                pos++;
            }
            ADD(pos);
            continue;
        }
        size_t ws = 0;
        while (FLAGS(pos + ws) & F_SPACE) ws++;
        pos = whitespace_end(pos, ws, CPT(pos + ws) != OUT_OF_RANGE);
        ADD(pos);
    }
    return 0;
#undef ADD
#undef CPT
#undef FLAGS
}

/* The Llama 3 pattern (llama.cpp's pre-tokenizer "llama-bpe"; Qwen2's is the same with digits
 * one at a time, max_digits 1) on cps[a, b), as llama.cpp's unicode_regex_split_custom_llama3:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static int split_llama3(const uint32_t *cps, size_t a, size_t b, int max_digits, cuts *out) {
#define CPT(p) ((p) < b ? cps[p] : OUT_OF_RANGE)
#define FLAGS(p) ((p) < b ? flags_of(cps[p]) : 0)
#define LOWER(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))
    size_t prev = a;
#define ADD(end) do { if ((end) > prev) { if (cut(out, (end))) return -1; } prev = (end); } while (0)
    for (size_t pos = a; pos < b;) {
        const uint32_t c = cps[pos];
        const int f = flags_of(c);
        if (c == '\'' && pos + 1 < b) { /* contractions, either case */
            uint32_t c1 = LOWER(cps[pos + 1]);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { ADD(pos + 2); pos += 2; continue; }
            if (pos + 2 < b) {
                uint32_t c2 = LOWER(cps[pos + 2]);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    ADD(pos + 3);
                    pos += 3;
                    continue;
                }
            }
        }
        /* one optional non-letter, non-digit, non-newline, then letters */
        if (c != '\r' && c != '\n' && !(f & F_NUMBER) && ((f & F_LETTER) || (FLAGS(pos + 1) & F_LETTER))) {
            pos++;
            while (FLAGS(pos) & F_LETTER) pos++;
            ADD(pos);
            continue;
        }
        if (f & F_NUMBER) { /* digits, at most max_digits to a word */
            size_t start = pos;
            while (FLAGS(pos) & F_NUMBER) {
                if ((int)(++pos - start) >= max_digits) {
                    ADD(pos);
                    start = pos;
                }
            }
            ADD(pos);
            continue;
        }
        /* an optional space, punctuation and symbols, then any newlines */
        int g = c == ' ' ? FLAGS(pos + 1) : f;
        if (g && !(g & (F_SPACE | F_LETTER | F_NUMBER))) {
            pos += (c == ' ');
            while ((g = FLAGS(pos)) && !(g & (F_SPACE | F_LETTER | F_NUMBER))) pos++;
            while (CPT(pos) == '\r' || CPT(pos) == '\n') pos++;
            ADD(pos);
            continue;
        }
        size_t ws = 0, after_newline = 0;
        while (FLAGS(pos + ws) & F_SPACE) {
            uint32_t w = cps[pos + ws];
            if (w == '\r' || w == '\n') after_newline = pos + ws + 1;
            ws++;
        }
        if (after_newline) { /* \s*[\r\n]+: up to the last newline of the run */
            pos = after_newline;
            ADD(pos);
            continue;
        }
        pos = whitespace_end(pos, ws, CPT(pos + ws) != OUT_OF_RANGE);
        ADD(pos);
    }
    return 0;
#undef ADD
#undef LOWER
#undef CPT
#undef FLAGS
}

static int flags_of(uint32_t cp) {
    int f = F_ANY;
    int k = qs_unicode_class(cp);
    if (k == QS_UNI_LETTER) f |= F_LETTER;
    if (k == QS_UNI_NUMBER) f |= F_NUMBER;
    if (qs_unicode_is_space(cp)) f |= F_SPACE;
    return f;
}

/* ---- byte <-> printable code point (GPT-2's bytes_to_unicode) ---- */

static uint32_t byte_to_cp(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) return b;
    /* the other 68 bytes map to 256.. in increasing byte order */
    int k = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) k++;
    return 256u + (uint32_t)k;
}

/* ---- merging ---- */

typedef struct {
    char *buf; /* scratch for "left right" keys */
    size_t cap;
} scratch;

typedef struct {
    const qs_vocab *v;
    const char *w;
    qs_symbol *sy;
    qs_merge_queue *q;
    scratch *s;
} bpe_ctx;

/* queues (left, right) if "left right" is a merge, lower rank first */
static int try_add(void *ctx, int left, int right) {
    bpe_ctx *c = ctx;
    if (left < 0 || right < 0) return 0;
    const qs_symbol *sy = c->sy;
    size_t ln = sy[left].n, rn = sy[right].n, need = ln + rn + 1;
    scratch *s = c->s;
    if (need > s->cap) {
        char *nb = realloc(s->buf, need * 2);
        if (!nb) return -1;
        s->buf = nb;
        s->cap = need * 2;
    }
    memcpy(s->buf, c->w + sy[left].off, ln);
    s->buf[ln] = ' ';
    memcpy(s->buf + ln + 1, c->w + sy[right].off, rn);
    int rank = qs_strmap_get(c->v->merges, s->buf, need);
    if (rank < 0) return 0;
    return qs_merge_queue_push(c->q, (qs_bigram){left, right, -(double)rank, ln + rn});
}

/* Merges one byte-encoded word and appends its tokens. */
static int bpe_word(const qs_vocab *v, const char *w, size_t n, qs_ids *out, scratch *s) {
    qs_merge_queue q = {0};
    int rc = -1, ns = 0;
    qs_symbol *sy = qs_symbols_split(w, n, &ns);
    if (!sy) return -1;
    bpe_ctx c = {v, w, sy, &q, s};
    for (int i = 1; i < ns; i++)
        if (try_add(&c, i - 1, i)) goto done;
    if (qs_merge_run(&q, sy, try_add, &c)) goto done;
    for (int i = ns > 0 ? 0 : -1; i != -1; i = sy[i].next) {
        int id = qs_strmap_get(v->to_id, w + sy[i].off, sy[i].n);
        if (id >= 0) {
            if (qs_ids_push(out, id)) goto done;
            continue;
        }
        /* not a token: emit the bytes that are tokens on their own (llama.cpp does the same) */
        for (size_t j = 0; j < sy[i].n; j++) {
            int bid = qs_strmap_get(v->to_id, w + sy[i].off + j, 1);
            if (bid >= 0 && qs_ids_push(out, bid)) goto done;
        }
    }
    rc = 0;
done:
    free(sy);
    free(q.a);
    return rc;
}

int qs_bpe_tokenize(const qs_vocab *v, const char *text, size_t n, qs_ids *out) {
    size_t ncp;
    uint32_t *cps = qs_utf8_decode(text, n, &ncp);
    if (!cps) return -1;
    cuts segs = {0}, words = {0};
    int rc = -1;
    char *w = NULL;
    scratch s = {0};
    /* first pass: segments (the whole text, or digits split off one by one) */
    if (v->pre == QS_PRE_DIGITS_GPT2) {
        size_t start = 0;
        for (size_t i = 0; i < ncp; i++) {
            if (qs_unicode_class(cps[i]) == QS_UNI_NUMBER) {
                if (i > start && cut(&segs, i)) goto done;
                if (cut(&segs, i + 1)) goto done;
                start = i + 1;
            }
        }
        if (ncp > start && cut(&segs, ncp)) goto done;
    } else if (ncp > 0 && cut(&segs, ncp)) {
        goto done;
    }
    for (size_t i = 0, a = 0; i < segs.n; a = segs.end[i++]) {
        int src = v->pre == QS_PRE_LLAMA3   ? split_llama3(cps, a, segs.end[i], 3, &words)
                  : v->pre == QS_PRE_QWEN2 ? split_llama3(cps, a, segs.end[i], 1, &words)
                                           : split_gpt2(cps, a, segs.end[i], &words);
        if (src) goto done;
    }
    w = malloc(ncp * 8 + 8);
    if (!w) goto done;
    for (size_t i = 0, a = 0; i < words.n; a = words.end[i++]) {
        size_t k = 0;
        for (size_t j = a; j < words.end[i]; j++) {
            char u8[4];
            int m = qs_utf8_encode(cps[j], u8);
            for (int t = 0; t < m; t++) k += (size_t)qs_utf8_encode(byte_to_cp((uint8_t)u8[t]), w + k);
        }
        /* llama.cpp's ignore_merges (Llama 3): a word that is itself a token is that token */
        int whole = v->pre == QS_PRE_LLAMA3 ? qs_strmap_get(v->to_id, w, k) : -1;
        if (whole >= 0) {
            if (qs_ids_push(out, whole)) goto done;
        } else if (bpe_word(v, w, k, out, &s)) {
            goto done;
        }
    }
    rc = 0;
done:
    free(cps);
    free(segs.end);
    free(words.end);
    free(w);
    free(s.buf);
    return rc;
}
