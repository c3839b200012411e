/* geofence.hotpath._native: the per-new-client steps that cost most in Python, in C.
 *
 * walk()  the MaxMind DB search tree walk of geofence/geoip/_tree.py (SearchTree.leaf_prefix).
 * Finder  a database's find_prefix() for the common case (geofence/geoip/_mmdb.py): the same
 *         walk plus the answer already decoded for its record, in one call without a Python
 *         frame; every other case goes to the Python find_prefix it was given.
 * bounded_put() geofence._cache.bounded_put, written on every new client (two caches).
 * parse() a strict fast path for address text that is already canonical; None sends the text
 *         to the Python parser (geofence/clientip/_addresses.py), which stays the authority.
 * Peers   parse_peer() of that module on parse(): the IP made here, the rest to Python.
 * _C_API  a capsule of Peers and Finder as C functions with the address's halves handed over
 *         (NativeAPI in _cutil.h), for geofence/hotpath/_miss.c.
 * ref()   a decision's reference (geofence/_refs.py): its input, the keyed hash's calls and
 *         the base32 text, without the Python steps around the hash.
 * header_line() forwarded_line() of geofence/http/_asgi.py: the one line of a header in an
 *         ASGI scope's raw headers, read without a Python step per header.
 *
 * walk() and parse() are pure functions of their arguments; bounded_put() writes its dict. The arrays are exported through
 * the buffer protocol (by walk() for the call, by a Finder for its life), so they cannot be
 * resized under a walk; the GIL is held throughout.
 *
 * Plain C99 and the CPython C API only, for CPython 3.10 to 3.13, on gcc and clang.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_cutil.h"

/* The methods ref() calls on a hash state, interned when the module is made. */
static PyObject *name_copy, *name_update, *name_digest;

/* ---- walk ------------------------------------------------------------------------------ */

/* An array('I') (or any buffer of 4-byte unsigned items), exported for reading. */
static int
get_u32_buffer(PyObject *obj, Py_buffer *view, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    const char *format = view->format;
    if (format != NULL && format[0] == '@') {
        format++; /* native order and size, the default */
    }
    /* A native unsigned 4-byte item: "I" (or "L" where long is 4 bytes). */
    if (view->itemsize != 4 || format == NULL || (format[0] != 'I' && format[0] != 'L')
        || format[1] != 0) {
        PyErr_Format(PyExc_TypeError, "walk(): %s must be an array of 4-byte unsigned items",
                     what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Up to ``left`` levels (bits from the top of ``word``) from ``node``, the levels walked added
 * to *depth; it stops at the first node the arrays do not hold as a node (``inner``: a leaf,
 * or damage). While at least 8 bits are left, 8 levels go by with one compare each and no
 * count of bits; the side is picked by indexing, not by a branch, since each bit of an
 * address is a coin toss for the CPU's branch predictor. Inlined into each caller: a call
 * would cost about what the unrolling saves an IPv4 walk. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline uint64_t
walk_bits(const uint32_t *const side[2], uint64_t inner, uint64_t node, uint64_t word, int left,
          int *depth)
{
    int d = *depth;
    while (left >= 8 && node < inner) {
        for (int i = 0; i < 8; i++) {
            node = side[word >> 63][node];
            word <<= 1;
            if (node >= inner) {
                *depth = d + i + 1;
                return node;
            }
        }
        d += 8;
        left -= 8;
    }
    while (left > 0 && node < inner) {
        node = side[word >> 63][node];
        word <<= 1;
        d++;
        left--;
    }
    *depth = d;
    return node;
}

/* The walk's answer: the leaf record, or -1 (depth: all the bits) when the bits ran out on a
 * node or ended on a node below ``count`` that the arrays do not hold (a damaged tree). */
static inline long long
walk_end(uint64_t node, uint64_t count, int bits, int d, int *depth)
{
    if (node < count) {
        *depth = bits;
        return -1;
    }
    *depth = d;
    return (long long)node;
}

/* The whole walk: the table's node for the first ``stride`` bits, then bit by bit (hi, then
 * lo for IPv6). ``held``: the nodes the arrays hold; a node below ``count`` beyond them is
 * damage, never a read. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline long long
walk_tree(const uint32_t *l, const uint32_t *r, const uint32_t *t, Py_ssize_t held,
          uint64_t count, uint64_t hi, uint64_t lo, int bits, int stride, int *depth)
{
    const uint64_t inner = count < (uint64_t)held ? count : (uint64_t)held;
    const uint32_t *const side[2] = {l, r};
    int d = stride;
    uint64_t node = walk_bits(side, inner, t[hi >> (64 - stride)], hi << stride,
                              (bits < 64 ? bits : 64) - stride, &d);
    if (bits > 64 && node < inner) {
        node = walk_bits(side, inner, node, lo, bits - 64, &d);
    }
    return walk_end(node, count, bits, d, depth);
}

static PyObject *
walk_result(long long record, int prefix_len)
{
    PyObject *r = PyLong_FromLongLong(record);
    if (r == NULL) {
        return NULL;
    }
    PyObject *p = PyLong_FromLong(prefix_len);
    if (p == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(r);
        Py_DECREF(p);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, r);
    PyTuple_SET_ITEM(result, 1, p);
    return result;
}

PyDoc_STRVAR(walk_doc,
"walk(left, right, table, node_count, value, bits, stride) -> (record, prefix_len)\n\n"
"The search tree walk for ``value`` (``bits`` wide): ``table`` maps its first ``stride``\n"
"bits to a node, then one bit per node through ``left``/``right``. ``record`` is the leaf\n"
"(node_count: not found, or a data pointer) and ``prefix_len`` the bits walked (``stride``\n"
"when the table entry is already a leaf); (-1, bits) when the bits run out on a node or a\n"
"node lies outside the arrays (a damaged tree).");

static PyObject *
native_walk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "walk() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t node_count = PyLong_AsSsize_t(args[3]);
    if (node_count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long bits = PyLong_AsLong(args[5]);
    if (bits == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long stride = PyLong_AsLong(args[6]);
    if (stride == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (bits != 32 && bits != 128) {
        PyErr_SetString(PyExc_ValueError, "walk(): bits must be 32 or 128");
        return NULL;
    }
    if (stride < 1 || stride > 24 || node_count < 0) {
        PyErr_SetString(PyExc_ValueError, "walk(): stride must be 1 to 24, node_count >= 0");
        return NULL;
    }
    uint64_t hi, lo;
    if (address_halves(args[4], (int)bits, &hi, &lo) < 0) {
        return NULL;
    }

    Py_buffer left, right, table;
    if (get_u32_buffer(args[0], &left, "left") < 0) {
        return NULL;
    }
    if (get_u32_buffer(args[1], &right, "right") < 0) {
        PyBuffer_Release(&left);
        return NULL;
    }
    if (get_u32_buffer(args[2], &table, "table") < 0) {
        PyBuffer_Release(&left);
        PyBuffer_Release(&right);
        return NULL;
    }
    PyObject *result = NULL;
    if (table.len / 4 < ((Py_ssize_t)1 << stride)) {
        PyErr_SetString(PyExc_ValueError, "walk(): table is shorter than 2**stride");
        goto done;
    }
    const uint32_t *l = (const uint32_t *)left.buf;
    const uint32_t *r = (const uint32_t *)right.buf;
    const uint32_t *t = (const uint32_t *)table.buf;
    /* A node below node_count that the arrays do not hold is a damaged tree, never a read. */
    Py_ssize_t held = left.len < right.len ? left.len / 4 : right.len / 4;
    uint64_t count = (uint64_t)node_count;

    int depth;
    long long record = walk_tree(l, r, t, held, count, hi, lo, (int)bits, (int)stride, &depth);
    result = walk_result(record, depth);
done:
    PyBuffer_Release(&table);
    PyBuffer_Release(&right);
    PyBuffer_Release(&left);
    return result;
}

/* ---- parse ----------------------------------------------------------------------------- */

#define MAX_TOKEN 45 /* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" */

/* A dotted quad of exactly 4 parts of 1-3 digits, each 0-255, no leading zeros; -1 if not. */
static int64_t
parse_v4(const unsigned char *s, Py_ssize_t n)
{
    uint32_t value = 0;
    Py_ssize_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') {
                return -1;
            }
            i++;
        }
        Py_ssize_t start = i;
        unsigned octet = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
            octet = octet * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        Py_ssize_t digits = i - start;
        if (digits == 0 || octet > 255 || (digits > 1 && s[start] == '0')) {
            return -1;
        }
        value = value << 8 | octet;
    }
    return i == n ? (int64_t)value : -1;
}

/* What two bytes are, indexed by the 16 bits they make in memory (one load): two lower-case
 * hex digits give PAIR_TWO + their value; a digit then ':' or the NUL that ends a str's data
 * gives PAIR_ONE + the digit; anything else 0. One table load per two characters,
 * for 38-character IPv6 text. 128 KiB of zeroed memory of which native_exec writes 288
 * entries: only the pages holding them (and the zero page, for misses) are ever mapped. */
enum { PAIR_ONE = 0x10, PAIR_TWO = 0x100 };
static uint16_t pair_class[1 << 16];

static int
hex_digit(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static inline unsigned
pair_at(const unsigned char *s)
{
    uint16_t bytes;
    memcpy(&bytes, s, 2); /* either byte order: fill_pair_class indexes the same way */
    return pair_class[bytes];
}

static void
fill_pair_class(void)
{
    for (int a = 0; a < 256; a++) {
        int x = hex_digit(a);
        for (int b = 0; x >= 0 && b < 256; b++) {
            int y = hex_digit(b);
            unsigned char pair[2] = {(unsigned char)a, (unsigned char)b};
            uint16_t bytes;
            memcpy(&bytes, pair, 2);
            if (y >= 0) {
                pair_class[bytes] = (uint16_t)(PAIR_TWO + (x << 4 | y));
            }
            else if (b == ':' || b == 0) {
                pair_class[bytes] = (uint16_t)(PAIR_ONE + x);
            }
        }
    }
}

/* The group of 1-4 hex digits without a leading zero at *at (before ``end``, the NUL), with
 * *at moved past it to the byte the caller checks (':' or the end; a fifth digit is
 * neither); -1 if there is none. Two pair loads, never past the NUL. */
static inline int
hex_group(const unsigned char **at, const unsigned char *end)
{
    const unsigned char *s = *at;
    unsigned first, second = 0;
    if (end - s >= 3) {
        first = pair_at(s);
        second = pair_at(s + 2);
    }
    else if (s < end) {
        first = pair_at(s); /* s[1] is at most the NUL */
    }
    else {
        return -1;
    }
    if (first < PAIR_TWO) {
        *at = s + 1;
        return first == 0 ? -1 : (int)(first - PAIR_ONE);
    }
    if (first < PAIR_TWO + 0x10) {
        return -1; /* a leading zero */
    }
    if (second >= PAIR_TWO) {
        *at = s + 4;
        return (int)((first << 8) + second - (PAIR_TWO << 8) - PAIR_TWO);
    }
    if (second != 0) {
        *at = s + 3;
        return (int)((first << 4) + second - (PAIR_TWO << 4) - PAIR_ONE);
    }
    *at = s + 2;
    return (int)(first - PAIR_TWO);
}

/* Four groups, each followed by a colon but the last, which is followed by ``last`` (':',
 * or the NUL at ``end``): 0 and their 64 bits in *half, or -1. */
static inline int
eight_half(const unsigned char **at, const unsigned char *end, unsigned char last,
           uint64_t *half)
{
    uint64_t bits = 0;
    for (int g = 0; g < 4; g++) {
        int group = hex_group(at, end);
        if (group < 0 || **at != (g < 3 ? ':' : last)) {
            return -1;
        }
        bits = bits << 16 | (unsigned)group;
        *at += g < 3;
    }
    *half = bits;
    return 0;
}

/* The high bit of each 16-bit lane of ``x`` that is zero (exact: no borrow between lanes). */
static inline uint64_t
zero_lanes(uint64_t x)
{
    const uint64_t low15 = 0x7FFF7FFF7FFF7FFFull;
    return ~(((x & low15) + low15) | x) & ~low15;
}

/* The halves of text that is eight groups and seven single colons, canonical (no leading
 * zero, no two zero groups side by side: RFC 5952 writes those as "::"); 0, or -1 for any
 * other text, which parse_v6_gap then reads. This is the usual client's text (a
 * privacy or SLAAC address): two characters per table load (pair_class). */
static int
parse_v6_eight(const unsigned char *s, Py_ssize_t n, uint64_t *hi, uint64_t *lo)
{
    const unsigned char *at = s, *end = s + n;
    if (eight_half(&at, end, ':', hi) < 0) {
        return -1;
    }
    at += 1;
    if (eight_half(&at, end, '\0', lo) < 0 || at != end) {
        return -1; /* a NUL before the end: the str holds one */
    }
    uint64_t zh = zero_lanes(*hi), zl = zero_lanes(*lo);
    /* side by side: within a half, or the last group of the high half and the first of
     * the low one */
    return (zh & zh << 16) | (zl & zl << 16) | (zh << 48 & zl) ? -1 : 0;
}

/* The 8 groups of RFC 5952 text with "::" that is exactly canonical; 0 if it is, -1 if not
 * (any other valid spelling included: the Python parser handles those). Text without "::"
 * is parse_v6_eight's. */
static int
parse_v6_gap(const unsigned char *s, Py_ssize_t n, uint16_t groups[8])
{
    uint16_t written[8];
    int count = 0;
    int gap = -1; /* index in written[] where "::" stands, if any */
    const unsigned char *at = s, *end = s + n;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        at = s + 2;
    }
    while (at < end) {
        int group = count < 8 ? hex_group(&at, end) : -1;
        if (group < 0) {
            return -1; /* no group here, or a ninth one */
        }
        written[count++] = (uint16_t)group;
        if (at == end) {
            break;
        }
        if (*at != ':') {
            return -1; /* a fifth digit, a dot, '%', upper case, a NUL, anything else */
        }
        at++;
        if (*at == ':') { /* *end is the NUL: no read past the end */
            if (gap >= 0) {
                return -1;
            }
            gap = count;
            at++;
        }
        else if (at == end) {
            return -1; /* one trailing colon */
        }
    }
    if (gap < 0 || count > 6) {
        /* Without "::" only parse_v6_eight's eight groups are canonical, and it has said no.
         * "::" standing for a single zero group is not RFC 5952 either (it writes "0"). */
        return -1;
    }
    int zeros = 8 - count;
    for (int g = 0, w = 0; g < 8; g++) {
        groups[g] = (g >= gap && g < gap + zeros) ? 0 : written[w++];
    }
    /* RFC 5952: the first of the longest runs of >= 2 zero groups is the "::". */
    int best_at = -1, best_len = 1;
    for (int g = 0; g < 8;) {
        if (groups[g] != 0) {
            g++;
            continue;
        }
        int run = g;
        while (g < 8 && groups[g] == 0) {
            g++;
        }
        if (g - run > best_len) {
            best_len = g - run;
            best_at = run;
        }
    }
    return best_at == gap && best_len == zeros ? 0 : -1;
}

/* Addresses geofence reads as the IPv4 client they carry (_embedded_v4 in _addresses.py). */
static int
embeds_v4(const uint16_t g[8])
{
    int zero4 = g[2] == 0 && g[3] == 0 && g[4] == 0;
    if (g[0] == 0 && g[1] == 0 && zero4 && g[5] == 0xffff) {
        return 1; /* ::ffff:0:0/96 */
    }
    if (g[0] == 0x64 && g[1] == 0xff9b && zero4 && g[5] == 0) {
        return 1; /* 64:ff9b::/96 */
    }
    return g[0] == 0x2002 || (g[0] == 0x2001 && g[1] == 0); /* 6to4, Teredo */
}

/* The int of a 128-bit value, its digits written straight in where _cutil.h's new_digits
 * can (this runs for each new IPv6 client whose IP Python code needs). */
static PyObject *
v6_int(uint64_t hi, uint64_t lo)
{
    if (hi == 0) {
        return PyLong_FromUnsignedLongLong(lo);
    }
#ifdef GEOFENCE_WRITES_DIGITS
    int width = 128 - __builtin_clzll(hi); /* hi != 0: 65 to 128 bits */
    Py_ssize_t size = (width + PyLong_SHIFT - 1) / PyLong_SHIFT;
    digit *digits;
    PyObject *value = new_digits(size, &digits);
    if (value == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        digits[i] = (digit)(lo & PyLong_MASK);
        lo = lo >> PyLong_SHIFT | hi << (64 - PyLong_SHIFT);
        hi >>= PyLong_SHIFT;
    }
    return value;
#else
    unsigned char bytes[16];
    for (int i = 0; i < 8; i++) {
        bytes[i] = (unsigned char)(hi >> (56 - 8 * i));
        bytes[i + 8] = (unsigned char)(lo >> (56 - 8 * i));
    }
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(bytes, 16, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    return _PyLong_FromByteArray(bytes, 16, 0, 0);
#endif
#endif
}

static PyObject *
version_and_value(long version, PyObject *value)
{
    if (value == NULL) {
        return NULL;
    }
    PyObject *v = PyLong_FromLong(version);
    if (v == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(v);
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, v);
    PyTuple_SET_ITEM(result, 1, value);
    return result;
}

PyDoc_STRVAR(parse_doc,
"parse(text) -> (version, value) | None\n\n"
"(4, value) for a canonical dotted quad, (6, value) for IPv6 text that is exactly its own\n"
"RFC 5952 form and carries no IPv4 client. None for anything else, valid or not: None\n"
"means \"not handled here\", never \"invalid\".");

/* The version and halves (as address_halves() gives them) of canonical address text: 1, 0
 * when the text is not handled here, -1 with an error set. */
static int
scan_canonical(PyObject *text, long *version, uint64_t *hi, uint64_t *lo)
{
    /* Exact str only: a subclass goes the Python way, which keeps the caller's object. */
    if (!PyUnicode_CheckExact(text)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return -1;
    }
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0 || n > MAX_TOKEN || !PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    const unsigned char *s = (const unsigned char *)PyUnicode_1BYTE_DATA(text);
    if (memchr(s, ':', (size_t)n) == NULL) {
        int64_t v4 = parse_v4(s, n);
        if (v4 < 0) {
            return 0;
        }
        *version = 4;
        *hi = (uint64_t)v4 << 32;
        *lo = 0;
        return 1;
    }
    if (parse_v6_eight(s, n, hi, lo) == 0) {
        /* No two zero groups side by side: neither ::ffff:0:0/96 nor 64:ff9b::/96, so only
         * 6to4 and Teredo can carry an IPv4 client. */
        if (*hi >> 48 == 0x2002 || *hi >> 32 == 0x20010000) {
            return 0;
        }
    }
    else {
        uint16_t g[8];
        if (parse_v6_gap(s, n, g) < 0 || embeds_v4(g)) {
            return 0;
        }
        *hi = (uint64_t)g[0] << 48 | (uint64_t)g[1] << 32 | (uint64_t)g[2] << 16 | g[3];
        *lo = (uint64_t)g[4] << 48 | (uint64_t)g[5] << 32 | (uint64_t)g[6] << 16 | g[7];
    }
    *version = 6;
    return 1;
}

/* The int of an address scan_canonical read; a new reference, or NULL with an error. */
static PyObject *
value_of(long version, uint64_t hi, uint64_t lo)
{
    return version == 4 ? PyLong_FromUnsignedLong((unsigned long)(hi >> 32)) : v6_int(hi, lo);
}

static PyObject *
native_parse(PyObject *module, PyObject *text)
{
    (void)module;
    long version;
    uint64_t hi, lo;
    int parsed = scan_canonical(text, &version, &hi, &lo);
    if (parsed <= 0) {
        if (parsed < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return version_and_value(version, value_of(version, hi, lo));
}

/* ---- Peers ------------------------------------------------------------------------------ */

/* parse_peer() of geofence/clientip/_addresses.py for canonical text: the IP named tuple made
 * here, without a Python frame; anything else is ``slow(text)``, the Python parser. */
typedef struct {
    PyObject_HEAD
    PyTypeObject *ip_type; /* the IP named tuple: a tuple subclass without extra slots */
    PyObject *slow;
    PyObject *four, *six;
    vectorcallfunc vectorcall;
} PeersObject;

static int
Peers_traverse(PeersObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ip_type);
    Py_VISIT(self->slow);
    return 0;
}

static int
Peers_clear(PeersObject *self)
{
    Py_CLEAR(self->ip_type);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->four);
    Py_CLEAR(self->six);
    return 0;
}

static void
Peers_dealloc(PeersObject *self)
{
    PyObject_GC_UnTrack(self);
    Peers_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* peers(text), with the address's version and halves when made here (else *version is 0:
 * the answer is slow's, whatever it is). */
/* The IP named tuple (text, version, value) of an address the compiled parse read. */
static PyObject *
make_ip(PeersObject *self, PyObject *text, long version, uint64_t hi, uint64_t lo)
{
    PyObject *value = value_of(version, hi, lo);
    if (value == NULL) {
        return NULL;
    }
    /* tp_alloc zero-fills: the collector sees NULL items until they are set just below. */
    PyObject *ip = self->ip_type->tp_alloc(self->ip_type, 3);
    if (ip == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(ip, 0, Py_NewRef(text));
    PyTuple_SET_ITEM(ip, 1, Py_NewRef(version == 4 ? self->four : self->six));
    PyTuple_SET_ITEM(ip, 2, value);
    /* A str and two ints in an immutable tuple: never part of a cycle, so never worth a visit
     * by the collector (see untracked_if_frozen in _tuples.c). */
    PyObject_GC_UnTrack(ip);
    return ip;
}

static int
peers_address(PyObject *peers, PyObject *text, Address *address)
{
    address->text = text;
    address->peers = peers;
    address->ip = NULL;
    int parsed = scan_canonical(text, &address->version, &address->hi, &address->lo);
    if (parsed != 0) {
        return parsed < 0 ? -1 : 0;
    }
    address->version = 0;
    address->ip = PyObject_CallOneArg(((PeersObject *)peers)->slow, text);
    return address->ip == NULL ? -1 : 0;
}

static PyObject *
address_ip(Address *address)
{
    if (address->ip == NULL) {
        address->ip = make_ip((PeersObject *)address->peers, address->text, address->version,
                              address->hi, address->lo);
    }
    return address->ip;
}

static PyObject *
Peers_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PeersObject *self = (PeersObject *)callable;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        return PyObject_Vectorcall(self->slow, args, nargsf & ~PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   kwnames);
    }
    Address address;
    if (peers_address(callable, args[0], &address) < 0) {
        return NULL;
    }
    return address.ip != NULL ? address.ip : make_ip(self, args[0], address.version,
                                                     address.hi, address.lo);
}

static PyObject *
Peers_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *ip_type, *slow;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Peers() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO:Peers", &ip_type, &slow)) {
        return NULL;
    }
    if (!PyType_Check(ip_type) || !PyType_IsSubtype((PyTypeObject *)ip_type, &PyTuple_Type)
        || ((PyTypeObject *)ip_type)->tp_basicsize != PyTuple_Type.tp_basicsize
        || ((PyTypeObject *)ip_type)->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "Peers(): ip_type must be a named tuple class");
        return NULL;
    }
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "Peers(): slow must be callable");
        return NULL;
    }
    PeersObject *self = (PeersObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(ip_type);
    self->ip_type = (PyTypeObject *)ip_type;
    Py_INCREF(slow);
    self->slow = slow;
    self->four = PyLong_FromLong(4);
    self->six = PyLong_FromLong(6);
    if (self->four == NULL || self->six == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->vectorcall = Peers_vectorcall;
    return (PyObject *)self;
}

PyDoc_STRVAR(Peers_doc,
"Peers(ip_type, slow)\n\n"
"``peers(text) -> IP | None``: ``ip_type(text, version, value)`` for canonical address text\n"
"(what parse() handles), else ``slow(text)``.");

static PyTypeObject PeersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "geofence.hotpath._native.Peers",
    .tp_basicsize = sizeof(PeersObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = Peers_doc,
    .tp_new = Peers_new,
    .tp_dealloc = (destructor)Peers_dealloc,
    .tp_traverse = (traverseproc)Peers_traverse,
    .tp_clear = (inquiry)Peers_clear,
    .tp_vectorcall_offset = offsetof(PeersObject, vectorcall),
    .tp_call = PyVectorcall_Call,
};

/* ---- Finder ----------------------------------------------------------------------------- */

/* A database's find_prefix() for the common case, in one C call: the walk on arrays exported
 * once (not per call), then the answer already decoded for that record. Anything else (no
 * decoded answer yet, a damaged tree, an IPv6 address without an IPv6 table, an argument that
 * is no IP) goes to ``slow``, the Python find_prefix, which does everything properly. */
typedef struct {
    PyObject_HEAD
    Py_buffer left, right, v4, v6; /* v6.obj is NULL without an IPv6 table */
    uint64_t *deep; /* with an IPv6 table: the /24 and /32 nodes met (see deep_walk) */
    Py_ssize_t held;
    uint64_t count;
    int stride;
    PyObject *answers; /* dict: record -> answer, filled by slow or decode */
    PyObject *slow;
    PyObject *decode; /* decode(record, ip) -> answer for a record not decoded yet, or NULL */
    vectorcallfunc vectorcall;
} FinderObject;

static int
Finder_traverse(FinderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->answers);
    Py_VISIT(self->slow);
    Py_VISIT(self->decode);
    return 0;
}

static int
Finder_clear(FinderObject *self)
{
    Py_CLEAR(self->answers);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->decode);
    return 0;
}

static void
release_buffer(Py_buffer *view)
{
    if (view->obj != NULL) {
        PyBuffer_Release(view);
    }
}

static void
Finder_dealloc(FinderObject *self)
{
    PyObject_GC_UnTrack(self);
    Finder_clear(self);
    release_buffer(&self->left);
    release_buffer(&self->right);
    release_buffer(&self->v4);
    release_buffer(&self->v6);
    PyMem_Free(self->deep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Finder_slow(FinderObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(self->slow, args, nargsf & ~PY_VECTORCALL_ARGUMENTS_OFFSET,
                               kwnames);
}

/* slow(ip) for an address handed over by a C caller. */
static PyObject *
slow_find(FinderObject *self, Address *address)
{
    PyObject *ip = address_ip(address);
    return ip == NULL ? NULL : PyObject_CallOneArg(self->slow, ip);
}

/* IPv6 prefixes lie 16 to 32 levels deeper in a tree than IPv4 ones (providers get a /32 or
 * a /29, customers a /48 to /64), so an IPv6 walk starts where an earlier one passed: the
 * node it met at depth 32, else at depth 24, kept per /32 and per /24 in two direct-mapped
 * arrays of DEEP_SLOTS (64 KiB together; a slot holds the prefix over the node, and 0 is
 * no node: the root is no one's child). Real clients come from a few thousand provider
 * /32s; an address in a /24 or /32 not met yet walks from the table as before and fills
 * the slots. The tree never changes under a Finder, so a slot is never stale, only
 * overwritten by another prefix. */
#define DEEP_BITS 12
#define DEEP_SLOTS (1 << DEEP_BITS)

static inline uint64_t *
deep_slot(uint64_t *deep, uint32_t prefix)
{
    return &deep[(uint32_t)(prefix * 0x9E3779B1u) >> (32 - DEEP_BITS)]; /* Fibonacci hashing */
}

/* A slot is one 64-bit word read and written whole (relaxed atomics, plain moves on x86-64
 * and arm64): threads without a GIL see either the old entry or the new one, both right. */
static inline uint64_t
slot_read(const uint64_t *slot)
{
#if defined(__GNUC__)
    return __atomic_load_n(slot, __ATOMIC_RELAXED);
#else
    return *slot;
#endif
}

static inline void
slot_write(uint64_t *slot, uint32_t prefix, uint64_t node)
{
#if defined(__GNUC__)
    __atomic_store_n(slot, (uint64_t)prefix << 32 | node, __ATOMIC_RELAXED);
#else
    *slot = (uint64_t)prefix << 32 | node;
#endif
}

static inline long long
deep_walk(FinderObject *self, const uint32_t *t, uint64_t hi, uint64_t lo, int *depth)
{
    const uint64_t inner = self->count < (uint64_t)self->held ? self->count : (uint64_t)self->held;
    const uint32_t *const side[2] = {self->left.buf, self->right.buf};
    uint32_t p32 = (uint32_t)(hi >> 32);
    uint64_t *s32 = deep_slot(self->deep, p32);
    /* The node (1 to 2**32 - 1: no slot holds node 0) if the slot holds this prefix; else 0
     * (an empty slot, prefix 0) or 2**32 and more. */
    uint64_t node = slot_read(s32) ^ (uint64_t)p32 << 32;
    int d = 32;
    if (node - 1 >= UINT32_MAX) {
        uint32_t p24 = (uint32_t)(hi >> 40);
        uint64_t *s24 = deep_slot(self->deep + DEEP_SLOTS, p24);
        node = slot_read(s24) ^ (uint64_t)p24 << 32;
        d = 24;
        if (node - 1 >= UINT32_MAX) {
            d = self->stride;
            node = walk_bits(side, inner, t[hi >> (64 - d)], hi << d, 24 - d, &d);
            if (d == 24 && node != 0) {
                slot_write(s24, p24, node);
            }
        }
        node = (uint32_t)node;
        if (d == 24) {
            node = walk_bits(side, inner, node, hi << 24, 8, &d);
            if (d == 32 && node != 0) {
                slot_write(s32, p32, node);
            }
        }
    }
    node = (uint32_t)node;
    if (d == 32) {
        node = walk_bits(side, inner, node, hi << 32, 32, &d);
    }
    if (d == 64 && node < inner) {
        node = walk_bits(side, inner, node, lo, 64, &d);
    }
    return walk_end(node, self->count, 128, d, depth);
}

/* finder(ip) for an address whose version (4 or 6) and halves the caller has read; the IP
 * itself is made only for Python code (the slow path, or a record's first decode). */
static PyObject *
finder_find(PyObject *finder, Address *address)
{
    FinderObject *self = (FinderObject *)finder;
    long version = address->version;
    const Py_buffer *table = version == 4 ? &self->v4 : &self->v6;
    if (table->obj == NULL) {
        return slow_find(self, address); /* IPv6 without an IPv6 table */
    }
    int depth;
    long long record = version == 4 ? walk_tree(self->left.buf, self->right.buf, table->buf,
                                                self->held, self->count, address->hi, 0, 32,
                                                self->stride, &depth)
                                    : deep_walk(self, table->buf, address->hi, address->lo,
                                                &depth);
    if (record < 0) {
        return slow_find(self, address); /* raises the DatabaseError */
    }
    PyObject *key = PyLong_FromLongLong(record);
    if (key == NULL) {
        return NULL;
    }
    PyObject *answer; /* a strong reference: the dict may be emptied by another thread */
#if PY_VERSION_HEX >= 0x030D0000
    (void)PyDict_GetItemRef(self->answers, key, &answer);
#else
    answer = PyDict_GetItemWithError(self->answers, key);
    Py_XINCREF(answer);
#endif
    if (answer == NULL) {
        if (PyErr_Occurred() || self->decode == NULL) {
            Py_DECREF(key);
            PyErr_Clear(); /* an error here is the slow path's to report */
            return slow_find(self, address);
        }
        /* The first address to lead to this record: decoded for the walk just made, without
         * the slow path's second walk and Python frames (it raises what slow would). */
        PyObject *ip = address_ip(address);
        PyObject *asked[2] = {key, ip};
        answer = ip == NULL ? NULL : PyObject_Vectorcall(self->decode, asked, 2, NULL);
        if (answer == NULL) {
            Py_DECREF(key);
            return NULL;
        }
    }
    Py_DECREF(key);
    PyObject *prefix = PyLong_FromLong(depth);
    if (prefix == NULL) {
        Py_DECREF(answer);
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(answer);
        Py_DECREF(prefix);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, answer);
    PyTuple_SET_ITEM(result, 1, prefix);
    return result;
}

static PyObject *
Finder_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FinderObject *self = (FinderObject *)callable;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        return Finder_slow(self, args, nargsf, kwnames);
    }
    PyObject *ip = args[0];
    if (!PyTuple_Check(ip) || PyTuple_GET_SIZE(ip) < 3
        || !PyLong_CheckExact(PyTuple_GET_ITEM(ip, 1))) {
        return Finder_slow(self, args, nargsf, kwnames);
    }
    /* The caller's IP, borrowed: address_ip() never replaces it. */
    Address address = {.text = PyTuple_GET_ITEM(ip, 0), .ip = ip};
    address.version = PyLong_AsLong(PyTuple_GET_ITEM(ip, 1));
    if ((address.version != 4 && address.version != 6)
        || address_halves(PyTuple_GET_ITEM(ip, 2), address.version == 4 ? 32 : 128,
                          &address.hi, &address.lo) < 0) {
        PyErr_Clear(); /* an int too large for a long, or a value that is no address */
        return Finder_slow(self, args, nargsf, kwnames);
    }
    return finder_find(callable, &address);
}

static PyObject *
Finder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *left, *right, *v4, *v6, *answers, *slow, *decode = Py_None;
    Py_ssize_t count;
    int stride;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Finder() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOniOO|O:Finder", &left, &right, &v4, &v6, &count, &stride,
                          &answers, &slow, &decode)) {
        return NULL;
    }
    if (stride < 1 || stride > 24 || count < 0) {
        PyErr_SetString(PyExc_ValueError, "Finder(): stride must be 1 to 24, node_count >= 0");
        return NULL;
    }
    if (!PyDict_Check(answers)) {
        PyErr_SetString(PyExc_TypeError, "Finder(): answers must be a dict");
        return NULL;
    }
    if (!PyCallable_Check(slow) || (decode != Py_None && !PyCallable_Check(decode))) {
        PyErr_SetString(PyExc_TypeError, "Finder(): slow and decode must be callable");
        return NULL;
    }
    FinderObject *self = (FinderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    /* tp_alloc zeroes the object: every buffer's obj is NULL until exported. */
    if (get_u32_buffer(left, &self->left, "left") < 0
        || get_u32_buffer(right, &self->right, "right") < 0
        || get_u32_buffer(v4, &self->v4, "v4") < 0
        || (v6 != Py_None && get_u32_buffer(v6, &self->v6, "v6") < 0)) {
        Py_DECREF(self);
        return NULL;
    }
    if (self->v6.obj != NULL) {
        self->deep = PyMem_Calloc(2 * DEEP_SLOTS, sizeof(uint64_t));
        if (self->deep == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t need = (Py_ssize_t)1 << stride;
    if (self->v4.len / 4 < need || (self->v6.obj != NULL && self->v6.len / 4 < need)) {
        PyErr_SetString(PyExc_ValueError, "Finder(): a table is shorter than 2**stride");
        Py_DECREF(self);
        return NULL;
    }
    self->held = self->left.len < self->right.len ? self->left.len / 4 : self->right.len / 4;
    self->count = (uint64_t)count;
    self->stride = stride;
    Py_INCREF(answers);
    self->answers = answers;
    Py_INCREF(slow);
    self->slow = slow;
    self->decode = decode == Py_None ? NULL : Py_NewRef(decode);
    self->vectorcall = Finder_vectorcall;
    return (PyObject *)self;
}

static PyObject *
Finder_get_slow(FinderObject *self, void *closure)
{
    (void)closure;
    Py_INCREF(self->slow);
    return self->slow;
}

static PyGetSetDef Finder_getset[] = {
    {"slow", (getter)Finder_get_slow, NULL, "What every call that is not the common case goes to.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Finder_doc,
"Finder(left, right, v4, v6, node_count, stride, answers, slow, decode=None)\n\n"
"``finder(ip) -> (answer, prefix_len)``: the walk of walk() for an IP (text, version, value)\n"
"on the arrays, exported once, then ``answers[record]``, or ``decode(record, ip)`` when it\n"
"has none yet (given); every other case (no answer yet without ``decode``, a damaged tree,\n"
"IPv6 when ``v6`` is None, any other argument) is ``slow(ip)``.");

static PyTypeObject FinderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "geofence.hotpath._native.Finder",
    .tp_basicsize = sizeof(FinderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = Finder_doc,
    .tp_new = Finder_new,
    .tp_dealloc = (destructor)Finder_dealloc,
    .tp_traverse = (traverseproc)Finder_traverse,
    .tp_clear = (inquiry)Finder_clear,
    .tp_vectorcall_offset = offsetof(FinderObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_getset = Finder_getset,
};

static int
native_exec(PyObject *module)
{
    fill_pair_class();
    if (name_copy == NULL) {
        name_copy = PyUnicode_InternFromString("copy");
        name_update = PyUnicode_InternFromString("update");
        name_digest = PyUnicode_InternFromString("digest");
        if (name_copy == NULL || name_update == NULL || name_digest == NULL) {
            return -1;
        }
    }
    static NativeAPI api = {&PeersType, peers_address, address_ip, &FinderType,
                            finder_find};
    PyObject *capsule = PyCapsule_New(&api, NATIVE_API_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(module, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        return -1;
    }
    PyTypeObject *types[] = {&FinderType, &PeersType};
    const char *names[] = {"Finder", "Peers"};
    for (int i = 0; i < 2; i++) {
        if (PyType_Ready(types[i]) < 0) {
            return -1;
        }
        Py_INCREF(types[i]);
        if (PyModule_AddObject(module, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            return -1;
        }
    }
    return 0;
}

/* ---- bounded_put ------------------------------------------------------------------------ */

PyDoc_STRVAR(bounded_put_doc,
"bounded_put(cache, limit, key, value) -> value\n\n"
"geofence._cache.bounded_put in C: empty ``cache`` when it holds ``limit`` entries or more,\n"
"then set ``cache[key] = value``. A plain dict is written directly; anything else through\n"
"its own ``len()``, ``clear()`` and item assignment.");

static PyObject *
native_bounded_put(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "bounded_put() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *cache = args[0];
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyDict_CheckExact(cache)) {
        if (PyDict_GET_SIZE(cache) >= limit) {
            PyDict_Clear(cache);
        }
        if (PyDict_SetItem(cache, args[2], args[3]) < 0) {
            return NULL;
        }
    }
    else {
        Py_ssize_t size = PyObject_Size(cache);
        if (size < 0) {
            return NULL;
        }
        if (size >= limit) {
            PyObject *done = PyObject_CallMethod(cache, "clear", NULL);
            if (done == NULL) {
                return NULL;
            }
            Py_DECREF(done);
        }
        if (PyObject_SetItem(cache, args[2], args[3]) < 0) {
            return NULL;
        }
    }
    Py_INCREF(args[3]);
    return args[3];
}

/* ---- header_line ------------------------------------------------------------------------ */

PyDoc_STRVAR(header_line_doc,
"header_line(slow, raw, name) -> str | None\n\n"
"forwarded_line(raw, name) of geofence/http/_asgi.py for what servers send: ``raw`` a list\n"
"or tuple of (name, value) pairs (tuples or lists) of bytes, ``name`` lower-case bytes. The\n"
"value, decoded as latin-1, when exactly one header has that name (ASCII case ignored, as\n"
"bytes.lower() does); else None. Any other input is answered by ``slow(raw, name)``, the\n"
"Python function, which stays the authority on odd input.");

/* Whether the bytes ``key`` equal ``name`` (lower case) with ASCII letters folded. */
static int
same_name(PyObject *key, const char *name, Py_ssize_t size)
{
    if (PyBytes_GET_SIZE(key) != size) {
        return 0;
    }
    const unsigned char *text = (const unsigned char *)PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = text[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)name[i]) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
native_header_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "header_line() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *slow = args[0], *raw = args[1], *wanted = args[2];
    if (!PyBytes_CheckExact(wanted) || !(PyList_CheckExact(raw) || PyTuple_CheckExact(raw))) {
        return PyObject_CallFunctionObjArgs(slow, raw, wanted, NULL);
    }
    const char *name = PyBytes_AS_STRING(wanted);
    Py_ssize_t size = PyBytes_GET_SIZE(wanted);
    PyObject *found = NULL; /* borrowed: no Python code runs until it is decoded */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(raw); i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(raw, i);
        if (!(PyTuple_CheckExact(pair) || PyList_CheckExact(pair))
            || PySequence_Fast_GET_SIZE(pair) != 2) {
            return PyObject_CallFunctionObjArgs(slow, raw, wanted, NULL);
        }
        PyObject *key = PySequence_Fast_GET_ITEM(pair, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) {
            return PyObject_CallFunctionObjArgs(slow, raw, wanted, NULL);
        }
        if (same_name(key, name, size)) {
            if (found != NULL) {
                Py_RETURN_NONE; /* several lines: as the Python function, at once */
            }
            found = value;
        }
    }
    if (found == NULL) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(found), PyBytes_GET_SIZE(found), NULL);
}

/* ---- ref -------------------------------------------------------------------------------- */

PyDoc_STRVAR(ref_doc,
"ref(slow, keyed, client_ip, rule, reason, account=None) -> str\n\n"
"slow(keyed, client_ip, rule, reason, account), the Python function of geofence/_refs.py, for\n"
"what it is called with: ``keyed`` a BLAKE2b state after its key block (copied, never\n"
"changed), client_ip, rule and account str or None, reason a str. Hashes the same UTF-8 text\n"
"and writes the 8-byte digest's first 50 bits in Crockford's base32, as two groups of five\n"
"joined by '-'. Anything else (str subclasses, another digest size) is slow's to answer.");

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static PyObject *
native_ref(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 && nargs != 6) {
        PyErr_Format(PyExc_TypeError, "ref() takes 5 or 6 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *slow = args[0], *keyed = args[1];
    PyObject *parts[4] = {args[2], args[3], args[4], nargs == 6 ? args[5] : Py_None};
    /* client_ip, rule, reason, account: the text is 'a or "-"', 'b or "-"', 'c', 'd or "-"' */
    const char *texts[4];
    Py_ssize_t sizes[4];
    Py_ssize_t total = 3; /* the three NULs */
    for (int i = 0; i < 4; i++) {
        PyObject *value = parts[i];
        if (value == Py_None && i != 2) {
            texts[i] = "-";
            sizes[i] = 1;
        }
        else if (PyUnicode_CheckExact(value)) {
            texts[i] = PyUnicode_AsUTF8AndSize(value, &sizes[i]);
            if (texts[i] == NULL) {
                return NULL; /* a lone surrogate: UnicodeEncodeError, as str.encode() */
            }
            if (sizes[i] == 0 && i != 2) {
                texts[i] = "-";
                sizes[i] = 1;
            }
        }
        else {
            return PyObject_Vectorcall(slow, args + 1, (size_t)(nargs - 1), NULL);
        }
        total += sizes[i];
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, total);
    if (data == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(data);
    for (int i = 0; i < 4; i++) {
        memcpy(out, texts[i], (size_t)sizes[i]);
        out += sizes[i];
        if (i < 3) {
            *out++ = '\0';
        }
    }
    PyObject *hashed = PyObject_CallMethodNoArgs(keyed, name_copy);
    if (hashed == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    PyObject *done = PyObject_CallMethodOneArg(hashed, name_update, data);
    Py_DECREF(data);
    if (done == NULL) {
        Py_DECREF(hashed);
        return NULL;
    }
    Py_DECREF(done);
    PyObject *digest = PyObject_CallMethodNoArgs(hashed, name_digest);
    Py_DECREF(hashed);
    if (digest == NULL) {
        return NULL;
    }
    if (!PyBytes_CheckExact(digest) || PyBytes_GET_SIZE(digest) != 8) {
        Py_DECREF(digest);
        return PyObject_Vectorcall(slow, args + 1, (size_t)(nargs - 1), NULL);
    }
    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(digest);
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) {
        bits = bits << 8 | bytes[i];
    }
    Py_DECREF(digest);
    bits >>= 14; /* the first 50 bits */
    char text[11];
    for (int i = 9; i >= 0; i--) { /* the last character first */
        text[i < 5 ? i : i + 1] = crockford[bits & 31];
        bits >>= 5;
    }
    text[5] = '-';
    return PyUnicode_FromStringAndSize(text, 11);
}

/* ---- module ---------------------------------------------------------------------------- */

static PyMethodDef native_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))native_walk, METH_FASTCALL, walk_doc},
    {"parse", native_parse, METH_O, parse_doc},
    {"bounded_put", (PyCFunction)(void (*)(void))native_bounded_put, METH_FASTCALL,
     bounded_put_doc},
    {"header_line", (PyCFunction)(void (*)(void))native_header_line, METH_FASTCALL,
     header_line_doc},
    {"ref", (PyCFunction)(void (*)(void))native_ref, METH_FASTCALL, ref_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
#ifdef Py_GIL_DISABLED
    /* No module state; the buffers are exported, and a Finder reads its dict by strong
     * reference (PyDict_GetItemRef). */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geofence.hotpath._native",
    .m_doc = "geofence's compiled hot path (see geofence/hotpath/__init__.py).",
    .m_size = 0,
    .m_methods = native_methods,
    .m_slots = native_slots,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
