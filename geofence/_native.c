/* geofence._native: the two per-new-client steps that cost most in Python, in C.
 *
 * walk()  the MaxMind DB search tree walk of geofence/geoip/_tree.py (SearchTree.leaf_prefix).
 * parse() a strict fast path for address text that is already canonical; None sends the text
 *         to the Python parser (geofence/clientip/_addresses.py), which stays the authority.
 *
 * Both are pure functions of their arguments: no state, no allocation beyond the result, and
 * the GIL is held throughout (the arrays are exported through the buffer protocol for the
 * duration of the walk, so they cannot be resized under it).
 *
 * Plain C99 and the CPython C API only, for CPython 3.10 to 3.13, on gcc and clang.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

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

/* The address as big-endian bits: hi holds bits 0..63 (the first), lo bits 64..127. */
static int
address_halves(PyObject *value, int bits, uint64_t *hi, uint64_t *lo)
{
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "walk(): value must be an int");
        return -1;
    }
    if (bits == 32) {
        /* Not PyLong_AsUnsignedLongLong: before 3.12 it goes through _PyLong_AsByteArray. */
        unsigned long v = PyLong_AsUnsignedLong(value);
        if (v == (unsigned long)-1 && PyErr_Occurred()) {
            return -1;
        }
        if ((uint64_t)v >> 32) {
            PyErr_SetString(PyExc_OverflowError, "walk(): value does not fit in 32 bits");
            return -1;
        }
        *hi = (uint64_t)v << 32; /* the 32 bits first, as for 128 */
        *lo = 0;
        return 0;
    }
    unsigned char bytes[16];
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t needed = PyLong_AsNativeBytes(
        value, bytes, 16,
        Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER
            | Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (needed < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            /* A negative value: OverflowError, as _PyLong_AsByteArray gives before 3.13. */
            PyErr_Clear();
            PyErr_SetString(PyExc_OverflowError, "walk(): value must not be negative");
        }
        return -1;
    }
    if (needed > 16) {
        PyErr_SetString(PyExc_OverflowError, "walk(): value does not fit in 128 bits");
        return -1;
    }
#else
    /* Raises OverflowError for a negative value or one wider than 128 bits. */
    if (_PyLong_AsByteArray((PyLongObject *)value, bytes, 16, 0, 0) < 0) {
        return -1;
    }
#endif
    uint64_t h = 0, l = 0;
    for (int i = 0; i < 8; i++) {
        h = h << 8 | bytes[i];
        l = l << 8 | bytes[i + 8];
    }
    *hi = h;
    *lo = l;
    return 0;
}

/* Bit ``depth`` (0 = the most significant) of the address. */
static inline unsigned
address_bit(uint64_t hi, uint64_t lo, int depth)
{
    return depth < 64 ? (unsigned)(hi >> (63 - depth)) & 1u
                      : (unsigned)(lo >> (127 - depth)) & 1u;
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

    uint64_t node = t[hi >> (64 - stride)];
    int depth = (int)stride;
    long long record = -1;
    while (node < count) {
        if (depth == bits || node >= (uint64_t)held) {
            depth = (int)bits;
            goto found; /* record stays -1 */
        }
        node = address_bit(hi, lo, depth) ? r[node] : l[node];
        depth++;
    }
    record = (long long)node;
found:
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

static inline int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* upper case is not canonical */
}

/* The 8 groups of RFC 5952 text that is exactly canonical; 0 if it is, -1 if not (any
 * other valid spelling included: the Python parser handles those). */
static int
parse_v6_canonical(const unsigned char *s, Py_ssize_t n, uint16_t groups[8])
{
    uint16_t written[8];
    int count = 0;
    int gap = -1; /* index in written[] where "::" stands, if any */
    Py_ssize_t i = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    }
    while (i < n) {
        Py_ssize_t start = i;
        unsigned group = 0;
        int d;
        while (i < n && i - start < 4 && (d = hex_digit(s[i])) >= 0) {
            group = group << 4 | (unsigned)d;
            i++;
        }
        if (i == start || (i - start > 1 && s[start] == '0') || count == 8) {
            return -1; /* empty group, a leading zero, or too many groups */
        }
        written[count++] = (uint16_t)group;
        if (i == n) {
            break;
        }
        if (s[i] != ':') {
            return -1; /* a fifth hex digit, a dot, '%', anything else */
        }
        i++;
        if (i < n && s[i] == ':') {
            if (gap >= 0) {
                return -1;
            }
            gap = count;
            i++;
        }
        else if (i == n) {
            return -1; /* one trailing colon */
        }
    }
    if (gap < 0 ? count != 8 : count > 6) {
        /* "::" standing for a single zero group is not RFC 5952 (it writes "0"). */
        return -1;
    }
    int zeros = 8 - count;
    for (int g = 0, w = 0; g < 8; g++) {
        groups[g] = (gap >= 0 && g >= gap && g < gap + zeros) ? 0 : written[w++];
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
    if (gap < 0) {
        return best_at < 0 ? 0 : -1;
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

static PyObject *
v6_int(const uint16_t g[8])
{
    unsigned char bytes[16];
    for (int i = 0; i < 8; i++) {
        bytes[2 * i] = (unsigned char)(g[i] >> 8);
        bytes[2 * i + 1] = (unsigned char)(g[i] & 0xff);
    }
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(bytes, 16, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    return _PyLong_FromByteArray(bytes, 16, 0, 0);
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

static PyObject *
native_parse(PyObject *module, PyObject *text)
{
    (void)module;
    /* Exact str only: a subclass goes the Python way, which keeps the caller's object. */
    if (!PyUnicode_CheckExact(text)) {
        Py_RETURN_NONE;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0 || n > MAX_TOKEN || !PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    const unsigned char *s = (const unsigned char *)PyUnicode_1BYTE_DATA(text);
    if (memchr(s, ':', (size_t)n) == NULL) {
        int64_t v4 = parse_v4(s, n);
        if (v4 < 0) {
            Py_RETURN_NONE;
        }
        return version_and_value(4, PyLong_FromLongLong(v4));
    }
    uint16_t groups[8];
    if (parse_v6_canonical(s, n, groups) < 0 || embeds_v4(groups)) {
        Py_RETURN_NONE;
    }
    return version_and_value(6, v6_int(groups));
}

/* ---- module ---------------------------------------------------------------------------- */

static PyMethodDef native_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))native_walk, METH_FASTCALL, walk_doc},
    {"parse", native_parse, METH_O, parse_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot native_slots[] = {
#ifdef Py_GIL_DISABLED
    /* Stateless, and the buffers it reads are exported for the call. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geofence._native",
    .m_doc = "geofence's compiled hot path (see geofence/_speedups.py).",
    .m_size = 0,
    .m_methods = native_methods,
    .m_slots = native_slots,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
