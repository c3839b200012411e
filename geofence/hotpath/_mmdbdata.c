/* geofence.hotpath._mmdbdata: what a country rule needs from a MaxMind DB record, read from
 * the data section in place.
 *
 * The first address that leads to a data record makes the database decode it once
 * (geofence.geoip._mmdb.MaxMindDB._decode_record); later ones get the answer from a dict. The
 * maxminddb reader would build the whole record (continent, registered country, names in eight
 * languages) as Python objects to hand over two ISO codes: ~50,000 instructions, against a few
 * hundred here. A real-size Country file has thousands of distinct records, so a process meets
 * new ones for a long time.
 *
 * Only the well-formed common case is read here; anything else (a record that is not a map, a
 * country without an ISO code, a type or size the format does not allow, a pointer to a pointer,
 * anything past the end of the file, nesting deeper than real records, invalid UTF-8) answers
 * None, and the caller asks the reader, which raises what it raises for it. The format:
 * https://maxmind.github.io/MaxMind-DB/ ("Data Section Format"). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    T_POINTER = 1,
    T_UTF8 = 2,
    T_DOUBLE = 3,
    T_BYTES = 4,
    T_UINT16 = 5,
    T_UINT32 = 6,
    T_MAP = 7,
    T_INT32 = 8,
    T_UINT64 = 9,
    T_UINT128 = 10,
    T_ARRAY = 11,
    T_CONTAINER = 12,
    T_END = 13,
    T_BOOLEAN = 14,
    T_FLOAT = 15,
};

/* Deeper than any GeoIP2/GeoLite2/DB-IP record (a record, a subdivision list, a names map, a
 * pointer before each). */
#define MAX_DEPTH 16

/* Fields read for one record at most: a record is a few hundred; pointers followed into
 * maps that point back (a damaged or hostile file) would otherwise multiply without end. */
#define MAX_FIELDS 20000

typedef struct {
    const uint8_t *bytes;
    Py_ssize_t size;  /* of the whole file: both readers decode up to its end */
    Py_ssize_t start; /* of the data section: pointers count from here */
    Py_ssize_t left;  /* fields that may still be read (MAX_FIELDS) */
    /* One bit per byte of the data section: set for a pointer's target once the value there
     * has been checked (country_at's ``checked``), or NULL. Records share their names and
     * continents through pointers, and checking those again for every record cost most of
     * a record's read. */
    uint8_t *checked;
    Py_ssize_t checked_size;
} Data;

/* The control byte(s) at *pos: the type, and the size (for a pointer, its absolute target);
 * *pos moves past them (and past a pointer's value bytes). -1: not a valid field here. */
static int
field(Data *d, Py_ssize_t *pos, int *type, Py_ssize_t *size)
{
    Py_ssize_t at = *pos;
    if (at < 0 || at >= d->size || --d->left < 0) {
        return -1;
    }
    uint8_t control = d->bytes[at++];
    int kind = control >> 5;
    if (kind == T_POINTER) {
        int extra = (control >> 3) & 3;
        if (at + extra + 1 > d->size) {
            return -1;
        }
        uint64_t value = extra == 3 ? 0 : (uint64_t)(control & 7);
        for (int i = 0; i <= extra; i++) {
            value = value << 8 | d->bytes[at + i];
        }
        static const uint64_t bias[4] = {0, 2048, 526336, 0};
        value += bias[extra];
        *pos = at + extra + 1;
        *type = T_POINTER;
        if (value >= (uint64_t)(d->size - d->start)) {
            return -1;
        }
        *size = d->start + (Py_ssize_t)value;
        return 0;
    }
    if (kind == 0) { /* extended: the next byte is the type minus 7 */
        if (at >= d->size) {
            return -1;
        }
        kind = 7 + d->bytes[at++];
        if (kind <= T_MAP || kind > T_FLOAT) {
            return -1;
        }
    }
    Py_ssize_t length = control & 31;
    if (length >= 29) {
        int extra = (int)length - 28;
        if (at + extra > d->size) {
            return -1;
        }
        Py_ssize_t value = 0;
        for (int i = 0; i < extra; i++) {
            value = value << 8 | d->bytes[at + i];
        }
        static const Py_ssize_t base[4] = {0, 29, 285, 65821};
        length = base[extra] + value;
        at += extra;
    }
    *pos = at;
    *type = kind;
    *size = length;
    return 0;
}

/* field(), through one pointer if the field is one (a pointer to a pointer is invalid). */
static int
value_field(Data *d, Py_ssize_t *pos, int *type, Py_ssize_t *size)
{
    if (field(d, pos, type, size) < 0) {
        return -1;
    }
    if (*type != T_POINTER) {
        return 0;
    }
    Py_ssize_t target = *size;
    if (field(d, &target, type, size) < 0 || *type == T_POINTER) {
        return -1;
    }
    *pos = target; /* the caller reads the payload there; it never goes on after a pointer */
    return 0;
}

/* Whether bytes[0:size] is UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF), as the reader requires of every string it decodes: a record is refused here
 * for whatever the reader would refuse it for, even in a part no rule reads. */
static int
utf8(const uint8_t *bytes, Py_ssize_t size)
{
    Py_ssize_t i = 0;
    while (i < size) {
        uint8_t lead = bytes[i];
        if (lead < 0x80) {
            i++;
            continue;
        }
        int more = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC2 ? 1 : -1;
        if (more < 0 || lead > 0xF4 || i + more >= size) { /* its last byte is past the end */
            return 0;
        }
        uint8_t second = bytes[i + 1];
        uint8_t low = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
        uint8_t high = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
        if (second < low || second > high) {
            return 0;
        }
        for (int k = 2; k <= more; k++) {
            if ((bytes[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += more + 1;
    }
    return 1;
}

static int string_at(Data *d, Py_ssize_t *pos, const char **text, Py_ssize_t *length);

/* Move *pos past the value there (a pointer: past the pointer itself), having checked it as
 * the reader would decode it: what a pointer leads to too. */
static int
skip(Data *d, Py_ssize_t *pos, int depth)
{
    int type;
    Py_ssize_t size;
    if (depth > MAX_DEPTH || field(d, pos, &type, &size) < 0) {
        return -1;
    }
    switch (type) {
    case T_POINTER: {
        Py_ssize_t target = size;
        int pointed;
        Py_ssize_t ignored;
        /* A pointer to a pointer is invalid; what it leads to is checked where it lies,
         * once: the value there is the same bytes whatever points to it. */
        Py_ssize_t bit = target - d->start;
        if (d->checked != NULL && bit >> 3 < d->checked_size
            && (d->checked[bit >> 3] >> (bit & 7) & 1)) {
            return 0;
        }
        Py_ssize_t peek = target;
        if (field(d, &peek, &pointed, &ignored) < 0 || pointed == T_POINTER
            || skip(d, &target, depth + 1) < 0) {
            return -1;
        }
        if (d->checked != NULL && bit >> 3 < d->checked_size) {
            d->checked[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        }
        return 0;
    }
    case T_BOOLEAN:
        return size <= 1 ? 0 : -1;
    case T_MAP:
    case T_ARRAY:
        for (Py_ssize_t i = 0; i < size; i++) {
            const char *key;
            Py_ssize_t length;
            /* a map's keys are strings (libmaxminddb refuses any other) */
            if ((type == T_MAP && string_at(d, pos, &key, &length) < 0)
                || skip(d, pos, depth + 1) < 0) {
                return -1;
            }
        }
        return 0;
    case T_DOUBLE:
        if (size != 8) {
            return -1;
        }
        break;
    case T_FLOAT:
        if (size != 4) {
            return -1;
        }
        break;
    case T_UINT16:
    case T_UINT32:
    case T_INT32:
    case T_UINT64:
    case T_UINT128: {
        static const Py_ssize_t widest[] = {[T_UINT16] = 2, [T_UINT32] = 4, [T_INT32] = 4,
                                            [T_UINT64] = 8, [T_UINT128] = 16};
        if (size > widest[type]) {
            return -1;
        }
        break;
    }
    case T_UTF8:
        if (size <= d->size - *pos && !utf8(d->bytes + *pos, size)) {
            return -1;
        }
        break;
    case T_BYTES:
        break;
    default: /* a data cache container or an end marker: never inside a record */
        return -1;
    }
    if (size > d->size - *pos) {
        return -1;
    }
    *pos += size;
    return 0;
}

/* The UTF-8 string at *pos (through a pointer): its bytes and length; *pos moves past the
 * field. -1: not a string. */
static int
string_at(Data *d, Py_ssize_t *pos, const char **text, Py_ssize_t *length)
{
    int type;
    Py_ssize_t size;
    Py_ssize_t at = *pos;
    if (field(d, &at, &type, &size) < 0) {
        return -1;
    }
    Py_ssize_t payload = at;
    Py_ssize_t after = -1; /* where the next field begins: after a pointer, past it */
    if (type == T_POINTER) {
        after = at;
        payload = size;
        if (field(d, &payload, &type, &size) < 0) {
            return -1;
        }
    }
    if (type != T_UTF8 || size > d->size - payload || !utf8(d->bytes + payload, size)) {
        return -1;
    }
    if (after < 0) {
        after = payload + size;
    }
    *text = (const char *)d->bytes + payload;
    *length = size;
    *pos = after;
    return 0;
}

static int
is_key(const char *text, Py_ssize_t length, const char *name)
{
    return (size_t)length == strlen(name) && memcmp(text, name, (size_t)length) == 0;
}

/* The "iso_code" string of the map at *pos (through a pointer): a new str, Py_None (a map
 * without one), or NULL for anything else (with an error only for a failed allocation). */
static PyObject *
iso_code(Data *d, Py_ssize_t pos, int depth)
{
    int type;
    Py_ssize_t pairs;
    if (value_field(d, &pos, &type, &pairs) < 0 || type != T_MAP) {
        return NULL;
    }
    PyObject *found = Py_NewRef(Py_None);
    for (Py_ssize_t i = 0; i < pairs; i++) {
        const char *key;
        Py_ssize_t length;
        if (string_at(d, &pos, &key, &length) < 0) {
            goto bad;
        }
        if (is_key(key, length, "iso_code")) {
            const char *text;
            Py_ssize_t size;
            if (string_at(d, &pos, &text, &size) < 0) {
                goto bad;
            }
            PyObject *code = PyUnicode_DecodeUTF8(text, size, NULL);
            if (code == NULL) {
                PyErr_Clear(); /* the reader's to report */
                goto bad;
            }
            Py_SETREF(found, code);
        }
        else if (skip(d, &pos, depth + 1) < 0) {
            goto bad;
        }
    }
    return found;
bad:
    Py_DECREF(found);
    return NULL;
}

/* The iso_code of each map in the array at pos (None for one without), as a tuple. */
static PyObject *
iso_codes(Data *d, Py_ssize_t pos, int depth)
{
    int type;
    Py_ssize_t count;
    if (value_field(d, &pos, &type, &count) < 0 || type != T_ARRAY || count > 64) {
        return NULL;
    }
    PyObject *codes = PyTuple_New(count);
    if (codes == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t entry = pos;
        PyObject *code = iso_code(d, entry, depth + 1);
        if (code == NULL || skip(d, &pos, depth + 1) < 0) {
            Py_XDECREF(code);
            Py_DECREF(codes);
            return NULL;
        }
        PyTuple_SET_ITEM(codes, i, code);
    }
    return codes;
}

PyDoc_STRVAR(country_at_doc,
"country_at(data, start, offset, checked=None, /) -> (country, subdivisions) | None\n\n"
"The record at ``offset`` in the data section that begins at ``start`` of the MaxMind DB\n"
"file ``data`` (a buffer): ``country`` is its country's iso_code (None when the record has no\n"
"country), ``subdivisions`` the iso_code of each of its subdivisions (None for one without)\n"
"or None when it has none. None for anything but a well-formed record of that shape.\n"
"``checked``, a writable buffer of one bit per byte of the data section (zeros at first, kept\n"
"for the file), remembers the pointer targets already checked.");

static PyObject *
mmdbdata_country_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 && nargs != 4) {
        PyErr_Format(PyExc_TypeError, "country_at() takes 3 or 4 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_buffer marks = {0};
    if (nargs == 4 && args[3] != Py_None
        && PyObject_GetBuffer(args[3], &marks, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&view);
    if (marks.obj != NULL) {
        PyBuffer_Release(&marks);
    }
        return NULL;
    }
    Data d = {(const uint8_t *)view.buf, view.len, start, MAX_FIELDS, (uint8_t *)marks.buf,
              marks.buf == NULL ? 0 : marks.len};
    PyObject *country = NULL, *subdivisions = NULL, *result = NULL;
    Py_ssize_t pos = start + offset;
    int type;
    Py_ssize_t pairs;
    if (start < 0 || start > view.len || offset < 0 || offset >= view.len - start
        || value_field(&d, &pos, &type, &pairs) < 0 || type != T_MAP) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < pairs; i++) {
        const char *key;
        Py_ssize_t length;
        if (string_at(&d, &pos, &key, &length) < 0) {
            goto done;
        }
        PyObject **slot = is_key(key, length, "country")        ? &country
                          : is_key(key, length, "subdivisions") ? &subdivisions
                                                                : NULL;
        if (slot != NULL) {
            PyObject *got = slot == &country ? iso_code(&d, pos, 1) : iso_codes(&d, pos, 1);
            if (got == NULL || got == Py_None) { /* a country without a code: the reader's */
                Py_XDECREF(got);
                goto done;
            }
            Py_XSETREF(*slot, got);
        }
        if (skip(&d, &pos, 1) < 0) {
            goto done;
        }
    }
    result = PyTuple_Pack(2, country != NULL ? country : Py_None,
                          subdivisions != NULL ? subdivisions : Py_None);
done:
    Py_XDECREF(country);
    Py_XDECREF(subdivisions);
    PyBuffer_Release(&view);
    if (marks.obj != NULL) {
        PyBuffer_Release(&marks);
    }
    if (result == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return result;
}

static PyMethodDef mmdbdata_methods[] = {
    {"country_at", (PyCFunction)(void (*)(void))mmdbdata_country_at, METH_FASTCALL,
     country_at_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot mmdbdata_slots[] = {
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED}, /* no state; the buffer is held for the call */
#endif
    {0, NULL},
};

static struct PyModuleDef mmdbdata_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geofence.hotpath._mmdbdata",
    .m_doc = "A MaxMind DB record's country and subdivision codes, read in place.",
    .m_size = 0,
    .m_methods = mmdbdata_methods,
    .m_slots = mmdbdata_slots,
};

PyMODINIT_FUNC
PyInit__mmdbdata(void)
{
    return PyModuleDef_Init(&mmdbdata_module);
}
