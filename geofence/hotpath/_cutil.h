/* Helpers shared by geofence's C modules (each .c is its own extension module, so these
 * are static inline: one copy per module, one definition here).
 *
 * address_halves()       an IP's integer value as two 64-bit halves (geofence/hotpath/_native.c's
 *                        walk and geofence/hotpath/_miss.c's network keys).
 * new_digits(), long_from_u60()  ints written digit by digit (IPv6 values and network keys).
 * NativeAPI             what _native.c lends the other modules through its capsule.
 * frozen(), untracked_if_frozen() named tuples the collector never needs to visit
 *                        (geofence/hotpath/_tuples.c, and the tuples geofence/hotpath/_miss.c builds).
 */
#ifndef GEOFENCE_CUTIL_H
#define GEOFENCE_CUTIL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

/* The address as big-endian bits: hi holds bits 0..63 (the first), lo bits 64..127. */
static inline int
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

#if PyLong_SHIFT == 30 && PY_VERSION_HEX < 0x030E0000
#define GEOFENCE_WRITES_DIGITS 1
/* A new int of ``size`` 30-bit digits for the caller to write in *digits, least significant
 * first, the last one not zero (CPython's normal form): the documented longintrepr.h layout,
 * on the versions where it is known. Several times cheaper than the public conversions,
 * which loop to size the int and again to fill it; used for IPv6 values and keys. */
static inline PyObject *
new_digits(Py_ssize_t size, digit **digits)
{
    PyLongObject *made = _PyLong_New(size);
    if (made == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    *digits = made->long_value.ob_digit;
#else
    *digits = made->ob_digit;
#endif
    return (PyObject *)made;
}
#endif

/* The int of a value below 2**60 (IPv6's network key). */
static inline PyObject *
long_from_u60(uint64_t value)
{
#ifdef GEOFENCE_WRITES_DIGITS
    if (value >> PyLong_SHIFT != 0 && value >> (2 * PyLong_SHIFT) == 0) {
        digit *digits;
        PyObject *made = new_digits(2, &digits);
        if (made != NULL) {
            digits[0] = (digit)(value & PyLong_MASK);
            digits[1] = (digit)(value >> PyLong_SHIFT);
        }
        return made;
    }
#endif
    return PyLong_FromUnsignedLongLong(value);
}

/* A client's address as geofence/hotpath/_miss.c hands it to _native: the text, the version (4
 * or 6) and the halves always; ``ip``, the IP named tuple Python code sees, only once
 * something needs it (a new reference, or NULL until then: most new clients never do, and
 * making it costs more for IPv6 than for IPv4). ``peers`` makes it. */
typedef struct {
    PyObject *text;
    long version;
    uint64_t hi, lo;
    PyObject *ip;
    PyObject *peers;
} Address;

/* geofence.hotpath._native's Peers and Finder for a C caller (geofence/hotpath/_miss.c): the
 * parse hands over the halves it computed and the finder takes them, so an address's
 * integer value is made once, if at all, and never read back.
 *   peers_address(peers, text, &a): -1 with an error; else a filled in. For text the
 *       compiled parse reads, a.version is 4 or 6 and a.ip NULL; for anything else a.ip is
 *       what the slow parser gives (an IP, or None) and a.version 0.
 *   address_ip(&a): a.ip, made if it is not there yet (borrowed from a; NULL, an error).
 *   finder_find(finder, &a): what finder(ip) gives, for a with its version and halves set.
 * Optional: without _native, callers call the objects. */
typedef struct {
    PyTypeObject *peers_type;
    int (*peers_address)(PyObject *peers, PyObject *text, Address *address);
    PyObject *(*address_ip)(Address *address);
    PyTypeObject *finder_type;
    PyObject *(*finder_find)(PyObject *finder, Address *address);
} NativeAPI;

#define NATIVE_API_CAPSULE "geofence.hotpath._native._C_API"

/* Whether ``item`` can never lead back to a container, so that holding it does not make a
 * reference cycle possible: an object the collector does not track at all (str, int, None,
 * datetime...), or an untracked tuple with a tuple's own layout (no __dict__, no extra slots,
 * as every named tuple): immutable, its items of the same kind. */
static inline int
frozen(PyObject *item)
{
    PyTypeObject *type = Py_TYPE(item);
    /* Flag tests first: this runs for every item of every tuple made here. */
    if (!PyType_IS_GC(type)) {
        return 1;
    }
    return PyTuple_Check(item) && type->tp_basicsize == PyTuple_Type.tp_basicsize
           && type->tp_dictoffset == 0 && !PyObject_GC_IsTracked(item);
}

/* Untrack ``made`` (a tuple of the kind frozen() accepts, all items set) when every item is
 * frozen: the collector then never visits it. A new client's decision, key and address
 * would otherwise be traversed by every collection for as long as the caches hold them:
 * about a tenth of a new client's cost went to the collector. CPython untracks exact tuples
 * this way too, but only when a collection first sees them, and never named tuples. */
static inline PyObject *
untracked_if_frozen(PyObject *made)
{
    PyTypeObject *type = Py_TYPE(made);
    if (type->tp_basicsize != PyTuple_Type.tp_basicsize || type->tp_dictoffset != 0) {
        return made; /* a subclass with a __dict__ or slots: not immutable */
    }
    Py_ssize_t size = PyTuple_GET_SIZE(made);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (!frozen(PyTuple_GET_ITEM(made, i))) {
            return made;
        }
    }
    PyObject_GC_UnTrack(made); /* made tracked by its allocation; a no-op otherwise */
    return made;
}

#endif /* GEOFENCE_CUTIL_H */
