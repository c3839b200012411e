/* geofence._hotpath: the engine's decision-cache hit in C (Probe).
 *
 * A repeated client is answered from the engine's decision cache: read the wall clock, check
 * that it is still inside the window in which nothing can change, look (peer, method, path) up,
 * check the entry's epoch, count or not. In Python that is about 2,500 instructions; here it is
 * a few hundred. geofence/_probe.py holds the Python twin (same behaviour, used without a
 * compiler) and the loader; the engine treats a None from any method as "take the slow path",
 * which then does everything properly (logs, errors, counts). So nothing here raises an
 * Exception: an error while probing (the clock, an unhashable peer, a counter) is cleared and
 * answered None. BaseExceptions that are not Exceptions (KeyboardInterrupt) pass through.
 *
 * The clock is the engine's Python callable (tests patch time through it), never the system
 * clock read here. The window and the epoch are read after the clock call with no Python code
 * in between, so a set() from another thread is seen whole or not at all.
 *
 * Plain C99 and the CPython C API (not the limited API), for CPython 3.10 to 3.13.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* PyMemberDescrObject's member types on 3.10 and 3.11 */

#include <stddef.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_AUDIT_READ
#define Py_AUDIT_READ PY_AUDIT_READ
#endif

/* The attribute names of a request, interned once. */
static PyObject *name_peer;
static PyObject *name_method;
static PyObject *name_path;

/* ---- reading a request ------------------------------------------------------------------
 *
 * RequestInfo is a slots dataclass: its three fields are member descriptors at fixed offsets
 * in the instance. Generic attribute access finds the descriptor through the type's attribute
 * cache and calls it, about 80 instructions a field; reading the slot directly is a load. The
 * offsets are learnt from the first request of a type and used while that type is unchanged:
 * CPython gives a type a new version tag (or none, 0) whenever anything in it or its bases is
 * assigned, so a type whose tag still equals the one seen when learning still has the same
 * descriptors, the same __getattribute__ and the same layout. Anything else (another type, a
 * changed one, a subclass with a property) is read with PyObject_GetAttr, the authority.
 */
/* A type's current version tag, 0 when it has none. Before 3.11 a changed type could keep its
 * old number with the "valid" flag cleared; since 3.11 the number itself is reset, as the
 * specialising interpreter's guards rely on. */
#if PY_VERSION_HEX < 0x030B0000
#define CURRENT_TAG(type) \
    (PyType_HasFeature((type), Py_TPFLAGS_VALID_VERSION_TAG) ? (type)->tp_version_tag : 0)
#else
#define CURRENT_TAG(type) ((type)->tp_version_tag)
#endif

static PyTypeObject *known_type; /* strong reference, or NULL */
static unsigned int known_tag;   /* its tp_version_tag when learnt; never 0 */
static Py_ssize_t known_offsets[3];
/* The last type that could not be learnt (borrowed: compared only), not tried again while
 * its tag is the same, so that a duck-typed request costs no lookups beyond its reads. */
static PyTypeObject *refused_type;
static unsigned int refused_tag;

/* The offset of ``name``'s slot in instances of ``type``, or -1. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    /* Borrowed; never sets an error. It also gives the type a version tag if it has none. */
    PyObject *descr = _PyType_Lookup(type, name);
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != Py_T_OBJECT_EX || (member->flags & Py_AUDIT_READ)) {
        return -1;
    }
    return member->offset;
}

static void
learn(PyTypeObject *type)
{
    if (type == refused_type && CURRENT_TAG(type) == refused_tag) {
        return;
    }
    Py_ssize_t offsets[3] = {-1, -1, -1};
    if (type->tp_getattro == PyObject_GenericGetAttr) {
        offsets[0] = slot_offset(type, name_peer);
        offsets[1] = slot_offset(type, name_method);
        offsets[2] = slot_offset(type, name_path);
    }
    /* Read after the lookups, which assign it. Nothing ran Python code in between. */
    unsigned int tag = CURRENT_TAG(type);
    if (tag == 0 || offsets[0] < 0 || offsets[1] < 0 || offsets[2] < 0) {
        refused_type = type;
        refused_tag = tag;
        return;
    }
    /* All of it set before the old type is released, which can run Python code. */
    PyTypeObject *old = known_type;
    Py_INCREF(type);
    known_type = type;
    known_tag = tag;
    memcpy(known_offsets, offsets, sizeof offsets);
    Py_XDECREF(old);
}

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Fill ``key``, a 3-tuple whose items are NULL, with new references to request.peer,
 * request.method and request.path. -1 with an error set (the items already filled stay in the
 * tuple, which releases them). */
static int
fill_key(PyObject *key, PyObject *request)
{
    PyTypeObject *type = Py_TYPE(request);
    if (type == known_type && CURRENT_TAG(type) == known_tag) {
        PyObject *peer = SLOT(request, known_offsets[0]);
        PyObject *method = SLOT(request, known_offsets[1]);
        PyObject *path = SLOT(request, known_offsets[2]);
        if (peer != NULL && method != NULL && path != NULL) {
            Py_INCREF(peer);
            PyTuple_SET_ITEM(key, 0, peer);
            Py_INCREF(method);
            PyTuple_SET_ITEM(key, 1, method);
            Py_INCREF(path);
            PyTuple_SET_ITEM(key, 2, path);
            return 0;
        }
        /* An unset slot: the generic read raises its AttributeError. */
    }
    PyObject *names[3] = {name_peer, name_method, name_path};
    for (int i = 0; i < 3; i++) {
        PyObject *value = PyObject_GetAttr(request, names[i]);
        if (value == NULL) {
            return -1;
        }
        PyTuple_SET_ITEM(key, i, value);
    }
    if (!(type == known_type && CURRENT_TAG(type) == known_tag)) {
        learn(type); /* a new type, or the known one changed since: learn it (or refuse it) */
    }
    return 0;
}

/* ---- the Probe type ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *cache; /* the engine's decision cache, an exact dict */
    PyObject *clock; /* the engine's wall clock: () -> float */
    vectorcallfunc clock_call; /* its vectorcall entry, or NULL */
    PyObject *epoch; /* what a valid entry carries first, compared by identity */
    double start;    /* the window [start, end) of the wall clock */
    double end;
    PyObject *spare; /* the key tuple reused by every probe (see take_key), or NULL */
    int spare_taken; /* a probe is using it (its lookup can run Python code that probes) */
} ProbeObject;

/* The key of a lookup is a 3-tuple made for it, hashed, compared and freed: about 170 of a
 * hit's instructions go to allocating and freeing it. So each probe keeps one spare tuple,
 * untracked by the collector, whose items are NULL between lookups: a lookup fills it, and
 * empties it afterwards unless something kept a reference to it (then it is left to its
 * holder and a new spare is made). A lookup that runs while the spare is taken (Python code
 * run by a key's __eq__ or __hash__, on this thread or another) makes its own tuple.
 * Tuples cache their hash from 3.14 on, and without the GIL another thread could take the
 * spare at the same time: there, every lookup makes its own. */
#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define REUSE_KEY 1
#else
#define REUSE_KEY 0
#endif

static PyObject *
new_spare(void)
{
    PyObject *spare = PyTuple_New(3);
    if (spare != NULL && PyObject_GC_IsTracked(spare)) {
        PyObject_GC_UnTrack(spare); /* it holds references only during a lookup */
    }
    return spare;
}

/* A 3-tuple with NULL items for one lookup (the spare, or a new one), or NULL with an error. */
static PyObject *
take_key(ProbeObject *self)
{
#if REUSE_KEY
    if (!self->spare_taken) {
        if (self->spare == NULL) {
            self->spare = new_spare();
            if (self->spare == NULL) {
                return NULL;
            }
        }
        self->spare_taken = 1;
        return self->spare;
    }
#endif
    return PyTuple_New(3);
}

/* The end of a lookup with ``key`` from take_key. */
static void
release_key(ProbeObject *self, PyObject *key)
{
    if (key != self->spare) {
        Py_DECREF(key);
        return;
    }
    self->spare_taken = 0;
    if (Py_REFCNT(key) != 1) {
        /* Something kept the key (a key's __eq__ stored its argument): it is theirs now. */
        self->spare = NULL;
        Py_DECREF(key);
        return;
    }
    /* Emptied before the items are released: their release can run code that probes. */
    PyObject *items[3];
    for (int i = 0; i < 3; i++) {
        items[i] = PyTuple_GET_ITEM(key, i);
        PyTuple_SET_ITEM(key, i, NULL);
    }
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(items[i]);
    }
}

/* None after an Exception (cleared: the slow path copes); NULL for any other BaseException. */
static PyObject *
miss_after_error(void)
{
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return NULL;
}

/* A new reference to the valid entry for ``request`` (or, when it is NULL, for the key made of
 * ``parts``): NULL without an error for a miss, NULL with one for an error. */
static PyObject *
find(ProbeObject *self, PyObject *request, PyObject *const *parts)
{
    if (self->clock == NULL || self->cache == NULL) {
        return NULL; /* cleared by the cyclic collector */
    }
    /* The clock's own vectorcall when it has one (time.time, time-machine's patch, a Python
     * function): PyObject_CallNoArgs would add a dispatch and a result check per call. */
    vectorcallfunc call = self->clock_call;
    PyObject *now = call != NULL ? call(self->clock, NULL, 0, NULL)
                                 : PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        return NULL; /* an error; or none set, which the callers answer None */
    }
    double wall;
    if (PyFloat_CheckExact(now)) {
        wall = PyFloat_AS_DOUBLE(now);
    }
    else if (PyFloat_Check(now) || PyLong_Check(now)) {
        wall = PyFloat_AsDouble(now); /* an int from a test's clock: can overflow */
        if (wall == -1.0 && PyErr_Occurred()) {
            Py_DECREF(now);
            return NULL;
        }
    }
    else {
        /* Not a number: a miss, as the twin's comparison with floats raises for it. */
        Py_DECREF(now);
        return NULL;
    }
    /* The window and the epoch as one snapshot: no Python code runs between these reads. */
    double start = self->start, end = self->end;
    PyObject *epoch = self->epoch;
    Py_XINCREF(epoch); /* a set() while the lookup runs Python code must not free it */
    Py_DECREF(now);
    if (!(start <= wall && wall < end) || epoch == NULL) { /* NaN is in no window */
        Py_XDECREF(epoch);
        return NULL;
    }
    PyObject *key = take_key(self);
    if (key == NULL) {
        Py_DECREF(epoch);
        return NULL;
    }
    PyObject *entry = NULL;
    if (request != NULL) {
        if (fill_key(key, request) < 0) {
            release_key(self, key);
            Py_DECREF(epoch);
            return NULL;
        }
    }
    else {
        for (int i = 0; i < 3; i++) {
            Py_INCREF(parts[i]);
            PyTuple_SET_ITEM(key, i, parts[i]);
        }
    }
    /* Borrowed, and held before the key goes: its members' __del__ could change the cache. */
    entry = PyDict_GetItemWithError(self->cache, key);
    Py_XINCREF(entry);
    release_key(self, key);
    if (entry != NULL
        && (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4
            || PyTuple_GET_ITEM(entry, 0) != epoch)) {
        Py_CLEAR(entry);
    }
    Py_DECREF(epoch);
    return entry;
}

/* For a found entry: whether it may be answered without the slow path, counting it when its
 * attention is a counter. 1 yes, 0 no (attention True, an exhausted or failing counter). */
static int
quiet(PyObject *entry)
{
    PyObject *attention = PyTuple_GET_ITEM(entry, 2);
    if (attention == Py_False) {
        return 1;
    }
    if (attention == Py_True) {
        return 0; /* the decision must be observed: the caller logs it */
    }
    iternextfunc next = Py_TYPE(attention)->tp_iternext;
    if (next == NULL) {
        return 0; /* not an iterator: the slow path says so */
    }
    Py_INCREF(attention); /* the counter may run code that drops the entry */
    PyObject *counted = next(attention);
    Py_DECREF(attention);
    if (counted == NULL) {
        return 0; /* exhausted, or an error (left set for the caller) */
    }
    Py_DECREF(counted);
    return 1;
}

/* Return entry[index] when the entry is quiet (after counting), else None. Steals entry. */
static PyObject *
quiet_member(PyObject *entry, Py_ssize_t index)
{
    PyObject *result = NULL;
    if (quiet(entry)) {
        result = PyTuple_GET_ITEM(entry, index);
        Py_INCREF(result);
    }
    Py_DECREF(entry);
    if (result != NULL) {
        return result;
    }
    if (PyErr_Occurred()) {
        return miss_after_error();
    }
    Py_RETURN_NONE;
}

static PyObject *
Probe_decision(ProbeObject *self, PyObject *request)
{
    PyObject *entry = find(self, request, NULL);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            return miss_after_error();
        }
        Py_RETURN_NONE;
    }
    return quiet_member(entry, 1);
}

static PyObject *
Probe_answer(ProbeObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "answer() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *entry = find(self, NULL, args);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            return miss_after_error();
        }
        Py_RETURN_NONE;
    }
    return quiet_member(entry, 3);
}

static PyObject *
Probe_entry(ProbeObject *self, PyObject *request)
{
    PyObject *entry = find(self, request, NULL);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            return miss_after_error();
        }
        Py_RETURN_NONE;
    }
    return entry;
}

static PyObject *
Probe_set(ProbeObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "set() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    double start = PyFloat_AsDouble(args[0]);
    if (start == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    double end = PyFloat_AsDouble(args[1]);
    if (end == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    /* All three change with no Python code in between (the old epoch is released last). */
    PyObject *old = self->epoch;
    Py_INCREF(args[2]);
    self->epoch = args[2];
    self->start = start;
    self->end = end;
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *
Probe_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"cache", "clock", NULL};
    PyObject *cache, *clock;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Probe", keywords, &cache, &clock)) {
        return NULL;
    }
    if (!PyDict_CheckExact(cache)) {
        PyErr_Format(PyExc_TypeError, "Probe(): cache must be a dict, not %.100s",
                     Py_TYPE(cache)->tp_name);
        return NULL;
    }
    if (!PyCallable_Check(clock)) {
        PyErr_Format(PyExc_TypeError, "Probe(): clock must be callable, not %.100s",
                     Py_TYPE(clock)->tp_name);
        return NULL;
    }
    ProbeObject *self = PyObject_GC_New(ProbeObject, type);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(cache);
    self->cache = cache;
    Py_INCREF(clock);
    self->clock = clock;
    self->clock_call = PyVectorcall_Function(clock);
    Py_INCREF(Py_None);
    self->epoch = Py_None;
    self->start = 0.0; /* an empty window: every probe misses until set() */
    self->end = 0.0;
    self->spare = NULL; /* made by the first lookup */
    self->spare_taken = 0;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* The probe holds no cycle of its own, but a clock may be a bound method of an object that
 * holds the probe (the engine's), so it takes part in cyclic collection. */
static int
Probe_traverse(ProbeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cache);
    Py_VISIT(self->clock);
    Py_VISIT(self->epoch);
    return 0;
}

static int
Probe_clear(ProbeObject *self)
{
    self->clock_call = NULL;
    Py_CLEAR(self->cache);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->epoch);
    if (!self->spare_taken) {
        Py_CLEAR(self->spare); /* empty: it holds nothing (not traversed) */
    }
    return 0;
}

static void
Probe_dealloc(ProbeObject *self)
{
    PyObject_GC_UnTrack(self);
    Probe_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef Probe_methods[] = {
    {"decision", (PyCFunction)Probe_decision, METH_O,
     "decision(request, /): the cached decision of a repeated quiet request (counted), or "
     "None."},
    {"answer", (PyCFunction)(void (*)(void))Probe_answer, METH_FASTCALL,
     "answer(peer, method, path, /): the cached answer of a repeated quiet request (counted), "
     "or None."},
    {"entry", (PyCFunction)Probe_entry, METH_O,
     "entry(request, /): the valid cache entry of a repeated request, whatever its attention, "
     "or None."},
    {"set", (PyCFunction)(void (*)(void))Probe_set, METH_FASTCALL,
     "set(start, end, epoch, /): the wall-clock window [start, end) and the current epoch."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "Probe[D, A] in annotations evaluated at run time."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProbeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geofence._hotpath.Probe",
    .tp_basicsize = sizeof(ProbeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Probe(cache, clock): the engine's decision-cache hit path.",
    .tp_new = Probe_new,
    .tp_dealloc = (destructor)Probe_dealloc,
    .tp_traverse = (traverseproc)Probe_traverse,
    .tp_clear = (inquiry)Probe_clear,
    .tp_methods = Probe_methods,
};

static struct PyModuleDef hotpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geofence._hotpath",
    .m_doc = "The engine's decision-cache hit path in C (see geofence/_probe.py).",
    .m_size = -1, /* the interned names and the learnt request layout are process-wide */
};

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    if (name_peer == NULL) {
        name_peer = PyUnicode_InternFromString("peer");
        name_method = PyUnicode_InternFromString("method");
        name_path = PyUnicode_InternFromString("path");
        if (name_peer == NULL || name_method == NULL || name_path == NULL) {
            return NULL;
        }
    }
    if (PyType_Ready(&ProbeType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&hotpath_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&ProbeType);
    if (PyModule_AddObject(module, "Probe", (PyObject *)&ProbeType) < 0) {
        Py_DECREF(&ProbeType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
