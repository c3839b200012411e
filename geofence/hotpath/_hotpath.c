/* geofence.hotpath._hotpath: the engine's decision-cache hit in C (Probe), and Engine.decide and
 * Engine.cached themselves (Front), so that a repeated request runs no Python frame of ours.
 *
 * A repeated client is answered from the engine's decision cache: read the wall clock, check
 * that it is still inside the window in which nothing can change, look (peer, method, path) up,
 * check the entry's epoch, count or not. In Python that is about 2,500 instructions; here it is
 * a few hundred. geofence/hotpath/_probe.py holds the Python twin (same behaviour, used without a
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
 * ``parts``): NULL without an error for a miss, NULL with one for an error. With ``missed``
 * given, a miss inside the window (no entry, or one of another epoch) also sets *missed to
 * the window's epoch (a new reference) and *wall to the clock read. */
static PyObject *
find_ex(ProbeObject *self, PyObject *request, PyObject *const *parts, PyObject **missed,
        double *wall_read, int *absent)
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
    if (absent != NULL) {
        *absent = entry == NULL; /* no entry at all, not even a stale one */
    }
    if (entry != NULL
        && (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4
            || PyTuple_GET_ITEM(entry, 0) != epoch)) {
        int plain = PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 4;
        Py_CLEAR(entry);
        if (!plain) {
            Py_DECREF(epoch); /* not an entry at all: the slow path says what it is */
            return NULL;
        }
    }
    if (entry == NULL && missed != NULL && !PyErr_Occurred()) {
        *missed = epoch; /* the reference taken above */
        *wall_read = wall;
        return NULL;
    }
    Py_DECREF(epoch);
    return entry;
}

static PyObject *
find(ProbeObject *self, PyObject *request, PyObject *const *parts)
{
    return find_ex(self, request, parts, NULL, NULL, NULL);
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

static PyObject *name__off;
static PyObject *name__entry;
/* Engine._EXACT: how far inside its window the float clock must be for the step. */
#define EXACT 0.001

static PyObject *name__miss;
static PyObject *kwnames_wall_stepped; /* ("wall", "stepped") */

/* engine._miss, the compiled new-client step, asked about ``request`` or, when that is NULL,
 * about the three ``parts`` (Engine.quick): its entry, or None when the engine has no step or
 * the step declines (new references); NULL with an error. */
static PyObject *
step_entry(PyObject *engine, PyObject *bound_step, PyObject *request, PyObject *const *parts,
           int absent, PyObject *epoch, PyObject *seconds)
{
    /* ``bound_step``: engine._miss as a bound quick() read it (see Front_get), or NULL. */
    PyObject *step = bound_step != NULL ? Py_NewRef(bound_step)
                                        : PyObject_GetAttr(engine, name__miss);
    if (step == NULL || step == Py_None) {
        return step;
    }
    PyObject *made;
    if (request != NULL) {
        PyObject *asked[4] = {engine, request, epoch, seconds};
        made = PyObject_Vectorcall(step, asked, 4, NULL);
    }
    else {
        /* The eighth: whether the probe just found no entry at all for these three, in the
         * engine's epoch, well inside its window, with nothing run since: what the step would
         * otherwise check itself (see geofence/hotpath/_miss.c). */
        PyObject *asked[8] = {engine, Py_None, epoch,    seconds,
                              parts[0], parts[1], parts[2], absent ? Py_True : Py_False};
        made = PyObject_Vectorcall(step, asked, 8, NULL);
    }
    Py_DECREF(step);
    return made;
}

/* The entry of a plain miss inside the window (a new reference; NULL with an error that must
 * propagate): the compiled new-client step's (step_entry), else engine._entry(request, None,
 * epoch, wall=wall, stepped=True), which is what Engine._decide_inline and _answer_probed
 * would get after reading the clock and the cache again. Steals ``epoch``. */
static PyObject *
miss_entry(PyObject *engine, PyObject *request, PyObject *epoch, double wall)
{
    PyObject *seconds = PyFloat_FromDouble(wall);
    /* An error from the step is raised as _entry would raise it. */
    PyObject *made =
        seconds == NULL ? NULL : step_entry(engine, NULL, request, NULL, 0, epoch, seconds);
    if (made == Py_None) {
        Py_DECREF(made);
        PyObject *call[6] = {engine, request, Py_None, epoch, seconds, Py_True};
        made = PyObject_VectorcallMethod(name__entry, call, 4, kwnames_wall_stepped);
    }
    Py_XDECREF(seconds);
    Py_DECREF(epoch);
    if (made != NULL && !(PyTuple_Check(made) && PyTuple_GET_SIZE(made) == 4)) {
        Py_DECREF(made);
        PyErr_SetString(PyExc_TypeError, "Engine._entry() must return an entry (a 4-tuple)");
        return NULL;
    }
    return made;
}

/* Whether the engine is "off" (1), not (0), or -1 after an error that must propagate; after
 * an Exception, 1 (the slow path copes). */
static int
engine_off(PyObject *engine)
{
    PyObject *off = PyObject_GetAttr(engine, name__off);
    if (off == NULL) {
        PyObject *none = miss_after_error();
        if (none == NULL) {
            return -1;
        }
        Py_DECREF(none);
        return 1;
    }
    Py_DECREF(off); /* True and False are never freed */
    return off != Py_False;
}

/* The entry for ``request``: the cache's (*hit = 1), or on a plain miss inside the window of
 * an engine that is not "off", miss_entry()'s (*hit = 0); a new reference. NULL without an
 * error: the slow path decides; NULL with one: it propagates (not an Exception, or raised by
 * _entry as decide() and answer() would raise it). */
static PyObject *
entry_for(ProbeObject *self, PyObject *engine, PyObject *request, int *hit)
{
    PyObject *epoch = NULL;
    double wall = 0.0;
    PyObject *entry = find_ex(self, request, NULL, &epoch, &wall, NULL);
    *hit = entry != NULL;
    if (entry != NULL) {
        return entry;
    }
    if (PyErr_Occurred()) {
        Py_XDECREF(epoch);
        PyObject *none = miss_after_error(); /* an Exception is cleared: the slow path copes */
        Py_XDECREF(none);
        return NULL;
    }
    if (epoch == NULL) {
        return NULL;
    }
    if (engine_off(engine) != 0) {
        Py_DECREF(epoch);
        return NULL; /* "off", or an error (set only when it must propagate) */
    }
    return miss_entry(engine, request, epoch, wall);
}

/* What decide(request) gives for the engine that owns this probe: a quiet hit's decision, or
 * the decision of a plain miss's entry (entry_for); None for everything else (the slow path
 * decides). */
static PyObject *
Probe_decide(ProbeObject *self, PyObject *engine, PyObject *request)
{
    int hit;
    PyObject *entry = entry_for(self, engine, request, &hit);
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    if (hit) {
        return quiet_member(entry, 1);
    }
    PyObject *decision = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    Py_DECREF(entry);
    return decision;
}

static PyObject *name__answer_of;

/* What answer(request) gives, as Engine._answer_probed: a quiet hit's answer, or the answer
 * of a plain miss's entry (entry_for); for an enforced block, whose entry holds none (the
 * response depends on the request), engine._answer_of(decision, request); None for
 * everything else (the slow path answers). */
static PyObject *
Probe_answer_request(ProbeObject *self, PyObject *engine, PyObject *request)
{
    int hit;
    PyObject *entry = entry_for(self, engine, request, &hit);
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    if (hit && !quiet(entry)) {
        /* attention True (observed in Python), or a counter that failed */
        Py_DECREF(entry);
        return PyErr_Occurred() ? miss_after_error() : Py_NewRef(Py_None);
    }
    PyObject *answer = PyTuple_GET_ITEM(entry, 3);
    if (answer != Py_None) {
        Py_INCREF(answer);
        Py_DECREF(entry);
        return answer;
    }
    PyObject *call[3] = {engine, PyTuple_GET_ITEM(entry, 1), request};
    answer = PyObject_VectorcallMethod(name__answer_of, call, 3, NULL);
    Py_DECREF(entry);
    return answer;
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

/* What quick(peer, method, path) gives (Engine.quick): a quiet hit's answer, as cached();
 * on a miss inside the window, the compiled new-client step's entry for these three alone
 * (no request): its answer when it needs no observing (an allow that is not reported), else
 * None, the entry stored for answer(request) to observe and answer. None too when there is
 * no step or it declines: answer(request) decides. */
static PyObject *
Probe_quick(ProbeObject *self, PyObject *engine, PyObject *step, PyObject *const *parts)
{
    PyObject *epoch = NULL;
    double wall = 0.0;
    int absent = 0;
    PyObject *entry = find_ex(self, NULL, parts, &epoch, &wall, &absent);
    if (entry != NULL) {
        return quiet_member(entry, 3);
    }
    if (epoch == NULL) {
        return PyErr_Occurred() ? miss_after_error() : Py_NewRef(Py_None);
    }
    /* Vouched for to the step only well inside the window (Engine._EXACT from its edges),
     * and for the epoch the engine holds: then it need not check either, nor the cache. */
    absent = absent && epoch == self->epoch && self->start + EXACT <= wall
             && wall < self->end - EXACT;
    PyObject *seconds = PyFloat_FromDouble(wall);
    PyObject *made =
        seconds == NULL ? NULL : step_entry(engine, step, NULL, parts, absent, epoch, seconds);
    Py_XDECREF(seconds);
    Py_DECREF(epoch);
    if (made == NULL) {
        return miss_after_error();
    }
    if (!(PyTuple_Check(made) && PyTuple_GET_SIZE(made) == 4)
        || PyTuple_GET_ITEM(made, 2) == Py_True) {
        Py_DECREF(made); /* None (declined), or stored to be observed by answer() */
        Py_RETURN_NONE;
    }
    /* Its counter, if any, was advanced when it was stored. */
    PyObject *answer = Py_NewRef(PyTuple_GET_ITEM(made, 3));
    Py_DECREF(made);
    return answer;
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
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geofence.hotpath._hotpath.Probe",
    .tp_basicsize = sizeof(ProbeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Probe(cache, clock): the engine's decision-cache hit path.",
    .tp_new = Probe_new,
    .tp_dealloc = (destructor)Probe_dealloc,
    .tp_traverse = (traverseproc)Probe_traverse,
    .tp_clear = (inquiry)Probe_clear,
    .tp_methods = Probe_methods,
};

/* ---- Front: decide() and cached() without a Python frame ---------------------------------
 *
 * A repeated request spends about as much in the Python frame of Engine.decide() (binding the
 * method, the defaults, two comparisons, the call into the probe) as in the probe itself. A
 * Front is the class attribute in that frame's place: a descriptor, like a Python function, so
 * engine.decide is bound per access, subclasses override it and patching the class works as
 * before; nothing is stored on the engine (no cycle: an engine is freed when its last reference
 * goes). Its common call (decide(request); cached(peer, method, path) on an engine not "off")
 * asks the engine's probe directly; everything else, and every miss, calls the Python method
 * ("slow": Engine._decide_inline or Engine._cached_inline) with the same arguments, as the
 * Python fronts did.
 */
enum { FRONT_DECIDE = 0, FRONT_CACHED = 1, FRONT_ANSWER = 2, FRONT_QUICK = 3 };

static PyObject *name__probe;

typedef struct {
    PyObject_HEAD
    int kind;
    PyObject *slow; /* the Python function: (engine, *args, **kwargs) */
    vectorcallfunc vectorcall;
} FrontObject;

typedef struct {
    PyObject_HEAD
    FrontObject *front;
    PyObject *engine;
    vectorcallfunc vectorcall;
    /* The engine's probe when, at binding, the engine was built, not "off" and had a C
     * probe: both are fixed for an engine's life (Engine.__init__), so a bound front stored
     * by an adapter skips two attribute lookups per request. NULL: ask the engine per call. */
    PyObject *probe;
    /* With that probe, for quick() only: the engine's compiled new-client step (or None),
     * also fixed for its life, read at binding rather than per new client; else NULL. */
    PyObject *step;
} BoundFrontObject;

static PyTypeObject FrontType;
static PyTypeObject BoundFrontType;

/* The probe's answer for the common call, or None to take the slow path (new references);
 * NULL only for an error that must propagate (not an Exception). */
static PyObject *
front_fast(FrontObject *front, PyObject *engine, PyObject *bound_probe, PyObject *bound_step,
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        Py_RETURN_NONE;
    }
    int by_parts = front->kind == FRONT_CACHED || front->kind == FRONT_QUICK;
    /* (peer, method, path), and the same with account=None passed on (a subclass's wrapper) */
    if (by_parts ? !(nargs == 3 || (nargs == 4 && args[3] == Py_None)) : nargs != 1) {
        Py_RETURN_NONE;
    }
    if (bound_probe != NULL) {
        /* Checked at binding: a C probe of an engine that is not "off". */
        if (front->kind == FRONT_DECIDE) {
            return Probe_decide((ProbeObject *)bound_probe, engine, args[0]);
        }
        if (front->kind == FRONT_ANSWER) {
            return Probe_answer_request((ProbeObject *)bound_probe, engine, args[0]);
        }
        PyObject *answer = front->kind == FRONT_QUICK
                               ? Probe_quick((ProbeObject *)bound_probe, engine, bound_step, args)
                               : Probe_answer((ProbeObject *)bound_probe, args, 3);
        return answer == Py_None ? Py_NewRef(Py_Ellipsis) : answer; /* Ellipsis: see below */
    }
    if (by_parts) {
        PyObject *off = PyObject_GetAttr(engine, name__off);
        if (off == NULL) {
            return miss_after_error();
        }
        Py_DECREF(off); /* True and False are never freed */
        if (off != Py_False) {
            Py_RETURN_NONE;
        }
    }
    PyObject *probe = PyObject_GetAttr(engine, name__probe);
    if (probe == NULL) {
        return miss_after_error();
    }
    PyObject *result;
    if (!Py_IS_TYPE(probe, &ProbeType)) {
        result = Py_None; /* the Python twin: the slow path asks it */
        Py_INCREF(result);
    }
    else if (front->kind == FRONT_DECIDE) {
        result = Probe_decide((ProbeObject *)probe, engine, args[0]);
    }
    else if (front->kind == FRONT_ANSWER) {
        result = Probe_answer_request((ProbeObject *)probe, engine, args[0]);
    }
    else {
        result = front->kind == FRONT_QUICK ? Probe_quick((ProbeObject *)probe, engine, NULL, args)
                                            : Probe_answer((ProbeObject *)probe, args, 3);
        if (result == Py_None) {
            /* cached(): a miss is the answer (None), as Engine._cached_inline gives it */
            Py_DECREF(probe);
            return Py_NewRef(Py_Ellipsis);
        }
    }
    Py_DECREF(probe);
    return result;
}

/* slow(engine, *args, **kwargs), args given without the engine. */
static PyObject *
front_slow(FrontObject *front, PyObject *engine, PyObject *const *args, size_t nargsf,
           PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    if (nargsf & PY_VECTORCALL_ARGUMENTS_OFFSET) {
        /* The caller lets us use args[-1]: put the engine there, as bound methods do. */
        PyObject **slots = (PyObject **)args - 1;
        PyObject *saved = slots[0];
        slots[0] = engine;
        PyObject *result = PyObject_Vectorcall(front->slow, slots, nargs + 1, kwnames);
        slots[0] = saved;
        return result;
    }
    PyObject *small[8];
    PyObject **slots = small;
    if (total + 1 > 8) {
        slots = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (slots == NULL) {
            return PyErr_NoMemory();
        }
    }
    slots[0] = engine;
    for (Py_ssize_t i = 0; i < total; i++) {
        slots[i + 1] = args[i];
    }
    PyObject *result = PyObject_Vectorcall(front->slow, slots, nargs + 1, kwnames);
    if (slots != small) {
        PyMem_Free(slots);
    }
    return result;
}

/* What front_fast's answer means: the result to return, or NULL with *slow set when the slow
 * path must run (NULL with *slow unset: an error). Steals ``fast``. */
static PyObject *
front_outcome(PyObject *fast, int *slow)
{
    *slow = 0;
    if (fast == NULL) {
        return NULL;
    }
    if (fast == Py_Ellipsis) {
        Py_DECREF(fast);
        Py_RETURN_NONE; /* cached(): a miss is the answer */
    }
    if (fast != Py_None) {
        return fast;
    }
    Py_DECREF(fast);
    *slow = 1;
    return NULL;
}

static PyObject *
BoundFront_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    BoundFrontObject *self = (BoundFrontObject *)callable;
    FrontObject *front = self->front;
    PyObject *engine = self->engine;
    if (front == NULL || engine == NULL) {
        PyErr_SetString(PyExc_ReferenceError, "a geofence front cleared by the collector");
        return NULL;
    }
    int slow;
    PyObject *result = front_outcome(
        front_fast(front, engine, self->probe, self->step, args, PyVectorcall_NARGS(nargsf),
                   kwnames),
        &slow);
    return slow ? front_slow(front, engine, args, nargsf, kwnames) : result;
}

/* Engine.decide(engine, request, ...): called on the class, the engine comes first. */
static PyObject *
Front_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FrontObject *self = (FrontObject *)callable;
    if (PyVectorcall_NARGS(nargsf) < 1) {
        /* the Python method's own error message */
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    int slow;
    PyObject *result = front_outcome(
        front_fast(self, args[0], NULL, NULL, args + 1, PyVectorcall_NARGS(nargsf) - 1, kwnames),
        &slow);
    return slow ? PyObject_Vectorcall(self->slow, args, nargsf, kwnames) : result;
}

/* The probe a front bound to ``engine`` may keep (a new reference), or NULL: when the engine
 * is not built yet (a front bound inside __init__), is "off", or has the Python twin, every
 * call asks the engine, as an unbound front does. NULL with an error set only for an error
 * that is not an Exception. */
static PyObject *
bound_probe(PyObject *engine)
{
    PyObject *off = PyObject_GetAttr(engine, name__off);
    if (off == NULL) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
        }
        return NULL;
    }
    Py_DECREF(off); /* True and False are never freed */
    if (off != Py_False) {
        return NULL;
    }
    PyObject *probe = PyObject_GetAttr(engine, name__probe);
    if (probe == NULL) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
        }
        return NULL;
    }
    if (!Py_IS_TYPE(probe, &ProbeType)) {
        Py_DECREF(probe);
        return NULL;
    }
    return probe;
}

static PyObject *
Front_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    BoundFrontObject *bound = PyObject_GC_New(BoundFrontObject, &BoundFrontType);
    if (bound == NULL) {
        return NULL;
    }
    Py_INCREF(self);
    bound->front = (FrontObject *)self;
    Py_INCREF(obj);
    bound->engine = obj;
    bound->vectorcall = BoundFront_vectorcall;
    bound->step = NULL;
    bound->probe = bound_probe(obj);
    if (bound->probe == NULL && PyErr_Occurred()) {
        Py_DECREF(bound); /* not an Exception (KeyboardInterrupt): it propagates */
        return NULL;
    }
    if (bound->probe != NULL && ((FrontObject *)self)->kind == FRONT_QUICK) {
        bound->step = PyObject_GetAttr(obj, name__miss);
        if (bound->step == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                Py_DECREF(bound);
                return NULL;
            }
            PyErr_Clear(); /* asked per call, which reports it the same way */
        }
    }
    PyObject_GC_Track(bound);
    return (PyObject *)bound;
}

static PyObject *
Front_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"kind", "slow", NULL};
    int kind;
    PyObject *slow;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iO:Front", keywords, &kind, &slow)) {
        return NULL;
    }
    if (kind != FRONT_DECIDE && kind != FRONT_CACHED && kind != FRONT_ANSWER
        && kind != FRONT_QUICK) {
        PyErr_Format(PyExc_ValueError,
                     "Front(): kind must be 0 (decide), 1 (cached), 2 (answer) or 3 (quick)");
        return NULL;
    }
    if (!PyCallable_Check(slow)) {
        PyErr_Format(PyExc_TypeError, "Front(): slow must be callable");
        return NULL;
    }
    FrontObject *self = PyObject_GC_New(FrontObject, type);
    if (self == NULL) {
        return NULL;
    }
    self->kind = kind;
    Py_INCREF(slow);
    self->slow = slow;
    self->vectorcall = Front_vectorcall;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
Front_traverse(FrontObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    return 0;
}

static int
Front_clear(FrontObject *self)
{
    Py_CLEAR(self->slow);
    return 0;
}

static void
Front_dealloc(FrontObject *self)
{
    PyObject_GC_UnTrack(self);
    Front_clear(self);
    PyObject_GC_Del(self);
}

/* What introspection finds on the method it replaces: its name, documentation and the
 * function itself (inspect.signature follows __wrapped__). */
static PyObject *
Front_getattro(PyObject *self, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr(self, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return found;
    }
    PyErr_Clear();
    return PyObject_GetAttr(((FrontObject *)self)->slow, name);
}

static PyObject *
Front_wrapped(PyObject *self, void *closure)
{
    return Py_NewRef(((FrontObject *)self)->slow);
}

static PyObject *
Front_doc(PyObject *self, void *closure)
{
    return PyObject_GetAttrString(((FrontObject *)self)->slow, "__doc__");
}

static PyGetSetDef Front_getset[] = {
    {"__doc__", Front_doc, NULL, NULL, NULL},
    {"__wrapped__", Front_wrapped, NULL, "The Python method for every call but the common one.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
Front_repr(FrontObject *self)
{
    return PyUnicode_FromFormat("<geofence front of %R>", self->slow);
}

static PyTypeObject FrontType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geofence.hotpath._hotpath.Front",
    .tp_basicsize = sizeof(FrontObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "Front(kind, slow): Engine.decide (kind 0) or Engine.cached (kind 1) in C.",
    .tp_new = Front_new,
    .tp_dealloc = (destructor)Front_dealloc,
    .tp_traverse = (traverseproc)Front_traverse,
    .tp_clear = (inquiry)Front_clear,
    .tp_vectorcall_offset = offsetof(FrontObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = Front_get,
    .tp_getattro = Front_getattro,
    .tp_getset = Front_getset,
    .tp_repr = (reprfunc)Front_repr,
};

static int
BoundFront_traverse(BoundFrontObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->front);
    Py_VISIT(self->engine);
    Py_VISIT(self->probe);
    Py_VISIT(self->step);
    return 0;
}

static int
BoundFront_clear(BoundFrontObject *self)
{
    Py_CLEAR(self->front);
    Py_CLEAR(self->engine);
    Py_CLEAR(self->probe);
    Py_CLEAR(self->step);
    return 0;
}

static void
BoundFront_dealloc(BoundFrontObject *self)
{
    PyObject_GC_UnTrack(self);
    BoundFront_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
BoundFront_getattro(PyObject *self, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr(self, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return found;
    }
    PyErr_Clear();
    BoundFrontObject *bound = (BoundFrontObject *)self;
    if (bound->front == NULL) {
        PyErr_SetObject(PyExc_AttributeError, name);
        return NULL;
    }
    return PyObject_GetAttr(bound->front->slow, name);
}

static PyObject *
BoundFront_self(PyObject *self, void *closure)
{
    PyObject *engine = ((BoundFrontObject *)self)->engine;
    return Py_NewRef(engine != NULL ? engine : Py_None);
}

static PyObject *
BoundFront_func(PyObject *self, void *closure)
{
    FrontObject *front = ((BoundFrontObject *)self)->front;
    return Py_NewRef(front != NULL ? (PyObject *)front : Py_None);
}

static PyObject *
BoundFront_doc(PyObject *self, void *closure)
{
    FrontObject *front = ((BoundFrontObject *)self)->front;
    if (front == NULL) {
        Py_RETURN_NONE;
    }
    return PyObject_GetAttrString(front->slow, "__doc__");
}

static PyGetSetDef BoundFront_getset[] = {
    {"__doc__", BoundFront_doc, NULL, NULL, NULL},
    {"__self__", BoundFront_self, NULL, "The engine.", NULL},
    {"__func__", BoundFront_func, NULL, "The class attribute (a Front).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
BoundFront_richcompare(PyObject *a, PyObject *b, int op)
{
    /* As bound methods: equal when bound to the same engine by the same front. */
    if ((op != Py_EQ && op != Py_NE) || !Py_IS_TYPE(b, &BoundFrontType)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    BoundFrontObject *x = (BoundFrontObject *)a, *y = (BoundFrontObject *)b;
    int equal = x->front == y->front && x->engine == y->engine;
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static Py_hash_t
BoundFront_hash(BoundFrontObject *self)
{
    Py_hash_t a = PyObject_Hash((PyObject *)self->front);
    if (a == -1) {
        return -1;
    }
    Py_hash_t h = a ^ (Py_hash_t)((uintptr_t)self->engine >> 4);
    return h == -1 ? -2 : h;
}

static PyObject *
BoundFront_repr(BoundFrontObject *self)
{
    return PyUnicode_FromFormat("<bound geofence front of %R>", self->front);
}

static PyTypeObject BoundFrontType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geofence.hotpath._hotpath.BoundFront",
    .tp_basicsize = sizeof(BoundFrontObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "engine.decide or engine.cached: a Front bound to an engine.",
    .tp_dealloc = (destructor)BoundFront_dealloc,
    .tp_traverse = (traverseproc)BoundFront_traverse,
    .tp_clear = (inquiry)BoundFront_clear,
    .tp_vectorcall_offset = offsetof(BoundFrontObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_getattro = BoundFront_getattro,
    .tp_getset = BoundFront_getset,
    .tp_richcompare = BoundFront_richcompare,
    .tp_hash = (hashfunc)BoundFront_hash,
    .tp_repr = (reprfunc)BoundFront_repr,
};

/* ---- the cache's key type ----------------------------------------------------------------
 *
 * A hit compares the stored key with the probe's (peer, method, path) item by item. Through
 * tuple's comparison each item goes through PyObject_RichCompare and str's comparison, about
 * 180 instructions an item; two exact strings are equal exactly when their lengths, kinds and
 * bytes are (CPython keeps every string in its narrowest kind), a few dozen. key_type(base)
 * makes a subclass of the engine's key type (a NamedTuple) whose == and != do that for exact
 * strings and leave every other item, and every other comparison, to tuple's: the same
 * results, sooner. Its hash is tuple's, so that a plain tuple finds it in a dict.
 */
static int
same_text(PyObject *a, PyObject *b)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(a);
    if (length != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b)) {
        return 0;
    }
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)length * PyUnicode_KIND(a))
           == 0;
}

static PyObject *
Key_richcompare(PyObject *v, PyObject *w, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyTuple_Check(w)) {
        return PyTuple_Type.tp_richcompare(v, w, op);
    }
    /* As tuple's: the items first (an item's __eq__ may raise), then the lengths. */
    Py_ssize_t size = PyTuple_GET_SIZE(v), other = PyTuple_GET_SIZE(w);
    for (Py_ssize_t i = 0; i < size && i < other; i++) {
        PyObject *a = PyTuple_GET_ITEM(v, i), *b = PyTuple_GET_ITEM(w, i);
        if (a == b) {
            continue;
        }
        int equal;
        if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
            equal = same_text(a, b);
        }
        else {
            equal = PyObject_RichCompareBool(a, b, Py_EQ);
            if (equal < 0) {
                return NULL;
            }
        }
        if (!equal) {
            return Py_NewRef(op == Py_EQ ? Py_False : Py_True);
        }
    }
    return Py_NewRef((size == other) == (op == Py_EQ) ? Py_True : Py_False);
}

static Py_hash_t
Key_hash(PyObject *self)
{
    return PyTuple_Type.tp_hash(self);
}

static PyObject *
key_type(PyObject *module, PyObject *base)
{
    if (!PyType_Check(base) || !PyType_IsSubtype((PyTypeObject *)base, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "key_type(): base must be a subclass of tuple");
        return NULL;
    }
    PyObject *name = PyObject_GetAttrString(base, "__name__");
    if (name == NULL) {
        return NULL;
    }
    /* The base's name, so that repr() reads as before. Some versions keep the spec's pointer
     * as the type's name: the text is never freed (one key type per process). */
    PyObject *qualified = PyUnicode_FromFormat("geofence.hotpath._hotpath.%U", name);
    Py_DECREF(name);
    if (qualified == NULL) {
        return NULL;
    }
    const char *text = PyUnicode_AsUTF8(qualified);
    char *kept = text == NULL ? NULL : PyMem_RawMalloc(strlen(text) + 1);
    if (kept == NULL) {
        Py_DECREF(qualified);
        return text == NULL ? NULL : PyErr_NoMemory();
    }
    strcpy(kept, text);
    Py_DECREF(qualified);
    PyType_Slot slots[] = {
        {Py_tp_richcompare, (void *)Key_richcompare},
        {Py_tp_hash, (void *)Key_hash},
        {Py_tp_doc, (void *)"The decision cache's key, compared faster (geofence/hotpath/_hotpath.c)."},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = kept,
        .basicsize = 0, /* the base's: no __dict__, no new fields */
        .itemsize = 0,
        .flags = Py_TPFLAGS_DEFAULT,
        .slots = slots,
    };
    PyObject *bases = PyTuple_Pack(1, base);
    if (bases == NULL) {
        PyMem_RawFree(kept);
        return NULL;
    }
    PyObject *made = PyType_FromSpecWithBases(&spec, bases);
    Py_DECREF(bases);
    if (made == NULL) {
        PyMem_RawFree(kept);
        return NULL;
    }
    return made;
}

/* ---- Maker: a per-request object without its __init__ frame ------------------------------
 *
 * Adapters build a RequestInfo and a lazy header view for every request the cache cannot
 * answer. Calling a Python class runs its __init__ in a Python frame: about 2,000
 * instructions for RequestInfo's five stores, 1,700 for a view's two. A Maker stores the
 * arguments in the instance's slots itself. It is made for a class whose __init__ does
 * nothing but store its parameters, in order (the last ones with defaults), and fixed values
 * in other slots; geofence/hotpath/_makers.py says which classes, and the tests hold each to it.
 * While the class is what it was when the Maker was made (the same __init__, plain
 * object.__new__ and __setattr__, member descriptors for every slot: checked again whenever
 * the class's version tag changes, i.e. when it or a base is assigned to) a call with
 * positional arguments only is made here; anything else calls the class.
 */
typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    PyObject *names;    /* tuple of str: the parameters' slots, then the fixed ones */
    Py_ssize_t params;  /* how many of names are parameters */
    PyObject *values;   /* tuple: the defaults of the last parameters, then the fixed values */
    PyObject *init;     /* the class's __init__ when made, compared by identity */
    Py_ssize_t *offsets;
    unsigned int tag;   /* the class's version tag when last checked; 0: check again */
    int usable;         /* the outcome of that check */
    vectorcallfunc vectorcall;
} MakerObject;

static PyObject *name___init__;

static void
maker_check(MakerObject *self)
{
    PyTypeObject *cls = self->cls;
    int usable = cls->tp_new == PyBaseObject_Type.tp_new
                 && cls->tp_setattro == PyObject_GenericSetAttr
                 && !PyType_HasFeature(cls, Py_TPFLAGS_IS_ABSTRACT)
                 && _PyType_Lookup(cls, name___init__) == self->init;
    Py_ssize_t count = PyTuple_GET_SIZE(self->names);
    for (Py_ssize_t i = 0; usable && i < count; i++) {
        self->offsets[i] = slot_offset(cls, PyTuple_GET_ITEM(self->names, i));
        usable = self->offsets[i] >= 0;
    }
    /* Read after the lookups, which assign it. Nothing ran Python code in between. */
    self->tag = CURRENT_TAG(cls);
    self->usable = usable;
}

static PyObject *
Maker_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    MakerObject *self = (MakerObject *)callable;
    PyTypeObject *cls = self->cls;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t params = self->params;
    Py_ssize_t optional = PyTuple_GET_SIZE(self->values) - (PyTuple_GET_SIZE(self->names) - params);
    if ((kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) && nargs <= params
        && nargs >= params - optional) {
        unsigned int tag = CURRENT_TAG(cls);
        if (tag == 0 || tag != self->tag) {
            maker_check(self);
        }
        if (self->usable) {
            PyObject *made = cls->tp_alloc(cls, 0);
            if (made == NULL) {
                return NULL;
            }
            Py_ssize_t count = PyTuple_GET_SIZE(self->names);
            Py_ssize_t first_value = params - optional; /* the name values[0] belongs to */
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *value = i < nargs ? args[i]
                                            : PyTuple_GET_ITEM(self->values, i - first_value);
                SLOT(made, self->offsets[i]) = Py_NewRef(value);
            }
            return made;
        }
    }
    return PyObject_Vectorcall((PyObject *)cls, args, nargsf, kwnames);
}

static PyObject *
Maker_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *cls, *params, *defaults, *fixed;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Maker() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!O!O!:Maker", &PyType_Type, &cls, &PyTuple_Type,
                             &params, &PyTuple_Type, &defaults, &PyTuple_Type, &fixed)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(params) + PyTuple_GET_SIZE(fixed);
    if (PyTuple_GET_SIZE(defaults) > PyTuple_GET_SIZE(params)) {
        PyErr_SetString(PyExc_TypeError, "Maker(): more defaults than parameters");
        return NULL;
    }
    PyObject *names = PyTuple_New(count);
    PyObject *values = PyTuple_New(PyTuple_GET_SIZE(defaults) + PyTuple_GET_SIZE(fixed));
    if (names == NULL || values == NULL) {
        Py_XDECREF(names);
        Py_XDECREF(values);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(params); i++) {
        PyTuple_SET_ITEM(names, i, Py_NewRef(PyTuple_GET_ITEM(params, i)));
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(defaults); i++) {
        PyTuple_SET_ITEM(values, i, Py_NewRef(PyTuple_GET_ITEM(defaults, i)));
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fixed); i++) {
        PyObject *pair = PyTuple_GET_ITEM(fixed, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "Maker(): fixed must hold (name, value) pairs");
            Py_DECREF(names);
            Py_DECREF(values);
            return NULL;
        }
        PyTuple_SET_ITEM(names, PyTuple_GET_SIZE(params) + i,
                         Py_NewRef(PyTuple_GET_ITEM(pair, 0)));
        PyTuple_SET_ITEM(values, PyTuple_GET_SIZE(defaults) + i,
                         Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "Maker(): slot names must be str");
            Py_DECREF(names);
            Py_DECREF(values);
            return NULL;
        }
    }
    MakerObject *self = PyObject_GC_New(MakerObject, type);
    if (self == NULL) {
        Py_DECREF(names);
        Py_DECREF(values);
        return NULL;
    }
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    self->names = names;
    self->params = PyTuple_GET_SIZE(params);
    self->values = values;
    self->init = Py_XNewRef(_PyType_Lookup((PyTypeObject *)cls, name___init__));
    self->offsets = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Py_ssize_t));
    self->tag = 0;
    self->usable = 0;
    self->vectorcall = Maker_vectorcall;
    PyObject_GC_Track(self);
    if (self->offsets == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static PyObject *
Maker_call_cleared(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    (void)callable;
    (void)args;
    (void)nargsf;
    (void)kwnames;
    PyErr_SetString(PyExc_ReferenceError, "a geofence Maker cleared by the collector");
    return NULL;
}

static int
Maker_traverse(MakerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cls);
    Py_VISIT(self->names);
    Py_VISIT(self->values);
    Py_VISIT(self->init);
    return 0;
}

static int
Maker_clear(MakerObject *self)
{
    Py_CLEAR(self->cls);
    Py_CLEAR(self->names);
    Py_CLEAR(self->values);
    Py_CLEAR(self->init);
    self->tag = 0;
    self->usable = 0;
    self->vectorcall = Maker_call_cleared;
    return 0;
}

static void
Maker_dealloc(MakerObject *self)
{
    PyObject_GC_UnTrack(self);
    Maker_clear(self);
    PyMem_Free(self->offsets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Maker_repr(MakerObject *self)
{
    if (self->cls == NULL) {
        return PyUnicode_FromString("<geofence.hotpath._hotpath.Maker (cleared)>");
    }
    return PyUnicode_FromFormat("<geofence.hotpath._hotpath.Maker of %s>", self->cls->tp_name);
}

static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geofence.hotpath._hotpath.Maker",
    .tp_basicsize = sizeof(MakerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Maker(cls, params, defaults, fixed): cls(*args) without cls.__init__'s frame "
              "(see geofence/hotpath/_makers.py).",
    .tp_new = Maker_new,
    .tp_dealloc = (destructor)Maker_dealloc,
    .tp_traverse = (traverseproc)Maker_traverse,
    .tp_clear = (inquiry)Maker_clear,
    .tp_vectorcall_offset = offsetof(MakerObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)Maker_repr,
};

static PyMethodDef hotpath_functions[] = {
    {"key_type", (PyCFunction)key_type, METH_O,
     "key_type(base, /): a subclass of the tuple type base whose == compares strings sooner."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hotpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geofence.hotpath._hotpath",
    .m_doc = "The engine's decision-cache hit path in C (see geofence/hotpath/_probe.py).",
    .m_size = -1, /* the interned names and the learnt request layout are process-wide */
    .m_methods = hotpath_functions,
};

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    if (name_peer == NULL) {
        name_peer = PyUnicode_InternFromString("peer");
        name_method = PyUnicode_InternFromString("method");
        name_path = PyUnicode_InternFromString("path");
        name__probe = PyUnicode_InternFromString("_probe");
        name__off = PyUnicode_InternFromString("_off");
        name__entry = PyUnicode_InternFromString("_entry");
        name___init__ = PyUnicode_InternFromString("__init__");
        name__miss = PyUnicode_InternFromString("_miss");
        name__answer_of = PyUnicode_InternFromString("_answer_of");
        PyObject *wall = PyUnicode_InternFromString("wall");
        PyObject *stepped = PyUnicode_InternFromString("stepped");
        kwnames_wall_stepped = wall == NULL || stepped == NULL ? NULL
                                                               : PyTuple_Pack(2, wall, stepped);
        Py_XDECREF(wall);
        Py_XDECREF(stepped);
        if (name_peer == NULL || name_method == NULL || name_path == NULL
            || name__probe == NULL || name__off == NULL || name__entry == NULL
            || name__miss == NULL || name__answer_of == NULL || kwnames_wall_stepped == NULL || name___init__ == NULL) {
            return NULL;
        }
    }
    if (PyType_Ready(&ProbeType) < 0 || PyType_Ready(&FrontType) < 0
        || PyType_Ready(&BoundFrontType) < 0 || PyType_Ready(&MakerType) < 0) {
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
    Py_INCREF(&FrontType);
    if (PyModule_AddObject(module, "Front", (PyObject *)&FrontType) < 0) {
        Py_DECREF(&FrontType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&MakerType);
    if (PyModule_AddObject(module, "Maker", (PyObject *)&MakerType) < 0) {
        Py_DECREF(&MakerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
