/* geofence.hotpath._miss: a new client's whole decision in C, for the common case.
 *
 * Engine._entry (geofence/_engine.py) decides a request the cache does not hold: it finds
 * the client, asks the databases, builds the facts, looks up or computes the verdict, makes
 * the decision, its answer and its cache entry, and observes it. For a new client that is
 * about 40,000 instructions of Python around a few C calls. ``Miss`` does the same steps in
 * one C call for the case nearly every new client is:
 *
 *   - the client is the socket peer: a usable address that is no trusted proxy;
 *   - no exempt address or path, no testing overlay, no host in the rules, no account;
 *   - the request is well inside the wall clock's current window;
 *   - the databases answer without an error (the policy's verdict on new facts is still
 *     Engine._verdict's, called from here and memoised).
 *
 * It answers None for anything else, before it has changed anything the Python path would
 * not change in the same way (the per-network memo and the decision cache, written exactly
 * as Python writes them): Engine._entry then decides as it always does. So Python stays the
 * authority, and the twin of every step here is the Python line it mirrors (named in the
 * comments); tests/native/test_miss.py compares the two on seeded random clients.
 *
 * Plain C99 and the CPython C API only, for CPython 3.10 to 3.13, on gcc and clang.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <structmember.h> /* T_OBJECT_EX before 3.12 */

#include "_cutil.h"

static PyObject *name__verdict, *name_state, *name_finds, *name_active, *name_peer, *name_method, *name_path,
    *name_found, *name_country, *name_subdivisions, *name_refs, *name_make, *name_tally,
    *name_iterator, *name_seen;
/* geofence.hotpath._native's Peers and Finder as C functions, or NULL without it. */
static const NativeAPI *native;

static PyObject *str_allow, *str_warn, *str_not_found, *str_no_country, *str_default;

/* Engine._entry's _EXACT: how far inside its window the float clock must be. */
#define EXACT 0.001
/* Engine._entry stores no entry for a longer path or method. */
#define MAX_PATH 1024
#define MAX_METHOD 32

typedef struct {
    PyObject_HEAD
    PyObject *peers;        /* parse_peer: text -> IP (text, version, value) or None */
    PyObject *trusted;      /* the trusted proxies as (heads4, heads6, holds), or None */
    PyObject *private_;     /* the private ranges, the same way */
    PyObject *exempt_ips;   /* the same, or None */
    PyObject *exempt_match; /* exempt_paths.match, or None */
    PyObject *paths_seen;   /* path -> whether exempt_match matches it */
    PyObject *proxy_peers;  /* peer text found to be a trusted proxy -> True */
    PyObject *overlay;      /* geofence._overlay: its ACTIVE must be None */
    PyObject *detail;       /* the detail of a client that is its socket peer */
    PyObject *cache;        /* the decision cache (an exact dict) */
    PyObject *verdicts;     /* (segment, facts) -> verdict (an exact dict) */
    PyTypeObject *key_type, *facts_type, *decision_type;
    PyObject *no_anonymizers;
    PyObject *observer; /* read per call: refs.make, tally, seen */
    PyObject *new_answer, *responder;
    Py_ssize_t cache_size, network_size, verdict_size;
    Py_ssize_t at_action, at_enforced, at_reason, at_rule, at_report, fields;
    /* The records' class (GeoRecord, a class with slots) and where in an instance its
     * found, country and subdivisions are, learnt from the first record (see record_field);
     * NULL before, or Py_None when that class is read by attribute. */
    PyObject *record_type;
    Py_ssize_t record_at[3];
    vectorcallfunc vectorcall;
} MissObject;

/* An error of a call whose failure Python would handle (or repeat and report): cleared, and
 * None for the caller's fallback. Anything that is not an Exception (KeyboardInterrupt,
 * SystemExit) propagates. */
static PyObject *
fallback_after_error(void)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* The client's IP named tuple, made now if only its halves were known (borrowed from
 * ``address``; NULL with an error). Without _native every address arrives with its IP. */
static PyObject *
client_ip(Address *address)
{
    return address->ip != NULL ? address->ip : native->address_ip(address);
}

/* Whether ``address`` may be in ``set`` ((heads4, heads6, holds), as
 * NetworkSet.heads_and_holds() gives it): 0 no, 1 yes, -1 an error. One index into the heads
 * table answers "no" for nearly every address; the rest ask the set's own holds(). */
static int
in_set(PyObject *set, Address *address)
{
    long version = address->version;
    uint64_t hi = address->hi;
    if (set == Py_None) {
        return 0;
    }
    PyObject *heads = PyTuple_GET_ITEM(set, version == 4 ? 0 : 1);
    if (heads == Py_None) {
        return 0;
    }
    Py_ssize_t head = (Py_ssize_t)(version == 4 ? hi >> 56 : hi >> 48);
    if (head >= PyBytes_GET_SIZE(heads) || PyBytes_AS_STRING(heads)[head] == 0) {
        return 0;
    }
    PyObject *ip = client_ip(address);
    PyObject *held = ip == NULL ? NULL : PyObject_CallOneArg(PyTuple_GET_ITEM(set, 2), ip);
    if (held == NULL) {
        return -1;
    }
    int yes = PyObject_IsTrue(held);
    Py_DECREF(held);
    return yes;
}

/* A new instance of the tuple subclass ``type`` with these items (new references are
 * taken from ``items``: stolen), untracked when nothing in it can form a cycle. */
static PyObject *
new_named(PyTypeObject *type, PyObject **items, Py_ssize_t size)
{
    PyObject *made = type->tp_alloc(type, size);
    if (made == NULL) {
        for (Py_ssize_t i = 0; i < size; i++) {
            Py_DECREF(items[i]);
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyTuple_SET_ITEM(made, i, items[i]);
    }
    return untracked_if_frozen(made);
}

/* geofence._cache.bounded_put on an exact dict; -1 on an error. */
static int
put_bounded(PyObject *cache, Py_ssize_t limit, PyObject *key, PyObject *value)
{
    if (PyDict_GET_SIZE(cache) >= limit) {
        PyDict_Clear(cache);
    }
    return PyDict_SetItem(cache, key, value);
}

/* dict.get() as a new reference (NULL and no error: absent). */
static PyObject *
dict_get(PyObject *dict, PyObject *key)
{
    PyObject *value;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyDict_GetItemRef(dict, key, &value) < 0) {
        return NULL;
    }
#else
    value = PyDict_GetItemWithError(dict, key);
    Py_XINCREF(value);
#endif
    return value;
}

/* The network memo (Engine._finds[3]) read and written with the key's hash given: the hash
 * of an int below 2**61 in size is the int itself (-1 excepted), as the language reference
 * defines it for numeric types, and a 48-bit IPv6 key would otherwise be hashed twice
 * through long_hash's loop. The calls are CPython's own, private, before 3.14; 3.13 keeps
 * only the read. */
static Py_hash_t
network_hash(long long network)
{
    return network == -1 ? -2 : (Py_hash_t)network;
}

static PyObject *
network_get(PyObject *networks, PyObject *key, long long network)
{
#if PY_VERSION_HEX < 0x030E0000
    PyObject *value = _PyDict_GetItem_KnownHash(networks, key, network_hash(network));
    Py_XINCREF(value);
    return value;
#else
    (void)network;
    return dict_get(networks, key);
#endif
}

static int
network_put(MissObject *self, PyObject *networks, PyObject *key, long long network,
            PyObject *found)
{
#if PY_VERSION_HEX < 0x030D0000
    if (PyDict_GET_SIZE(networks) >= self->network_size) {
        PyDict_Clear(networks);
    }
    return _PyDict_SetItem_KnownHash(networks, key, found, network_hash(network));
#else
    (void)network;
    return put_bounded(networks, self->network_size, key, found);
#endif
}

/* Whether ``path`` matches exempt.paths: 1 yes (Python then decides, dot segments and all),
 * 0 no, -1 an error. The regex runs once per path: an app has few, and a match costs more
 * than a third of this whole step; the answers are kept per path (at most PATHS_SEEN). */
#define PATHS_SEEN 1024
/* The trusted proxies' addresses kept as text (Miss.proxy_peers): a deployment has a few. */
#define PROXY_PEERS 256

static int
exempt_path(MissObject *self, PyObject *path)
{
    PyObject *seen = dict_get(self->paths_seen, path);
    if (seen == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        PyObject *match = PyObject_CallOneArg(self->exempt_match, path);
        if (match == NULL) {
            return -1;
        }
        seen = Py_NewRef(match == Py_None ? Py_False : Py_True);
        Py_DECREF(match);
        if (put_bounded(self->paths_seen, PATHS_SEEN, path, seen) < 0) {
            Py_DECREF(seen);
            return -1;
        }
    }
    Py_DECREF(seen); /* True or False: never freed */
    return seen == Py_True;
}

/* Whether the method is what Facts holds as is: ASCII, no lower-case letter (the Python
 * path upper-cases it), at most MAX_METHOD characters. */
static int
plain_method(PyObject *method)
{
    if (!PyUnicode_CheckExact(method) || !PyUnicode_IS_ASCII(method)
        || PyUnicode_GET_LENGTH(method) > MAX_METHOD) {
        return 0;
    }
    const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(method);
    for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(method); i < n; i++) {
        if (chars[i] >= 'a' && chars[i] <= 'z') {
            return 0;
        }
    }
    return 1;
}

/* The window check of Engine._entry for moment=None: 1 when ``wall`` lies well inside the
 * current window and that window's segment is ``epoch``'s (so the entry is stored). */
static int
inside_window(PyObject *engine, PyObject *epoch, double wall)
{
    PyObject *state = PyObject_GetAttr(engine, name_state);
    if (state == NULL) {
        return -1;
    }
    int inside = 0;
    if (PyTuple_CheckExact(state) && PyTuple_GET_SIZE(state) == 3
        && PyTuple_CheckExact(PyTuple_GET_ITEM(state, 2))
        && PyTuple_GET_SIZE(PyTuple_GET_ITEM(state, 2)) == 2) {
        double start = PyFloat_AsDouble(PyTuple_GET_ITEM(state, 0));
        double end = PyFloat_AsDouble(PyTuple_GET_ITEM(state, 1));
        if (PyErr_Occurred()) {
            Py_DECREF(state);
            return -1;
        }
        PyObject *current = PyTuple_GET_ITEM(PyTuple_GET_ITEM(state, 2), 0);
        PyObject *segment = PyTuple_GET_ITEM(epoch, 0);
        if (start + EXACT <= wall && wall < end - EXACT) {
            inside = current == segment ? 1 : PyObject_RichCompareBool(current, segment, Py_EQ);
        }
    }
    Py_DECREF(state);
    return inside;
}

/* What the databases say about the address: Engine._lookup's (record, anonymizers, asn), from the
 * per-network memo or the finders (the memo written as _lookup writes it). A new reference;
 * NULL with an error set when a finder failed (the fallback repeats it and reports it). */
static PyObject *
lookup(MissObject *self, PyObject *engine, Address *address)
{
    long version = address->version;
    uint64_t hi = address->hi;
    PyObject *finds = PyObject_GetAttr(engine, name_finds);
    if (finds == NULL) {
        return NULL;
    }
    if (!PyTuple_CheckExact(finds) || PyTuple_GET_SIZE(finds) != 4
        || !PyDict_CheckExact(PyTuple_GET_ITEM(finds, 3))) {
        Py_DECREF(finds);
        PyErr_SetString(PyExc_TypeError, "Miss: Engine._finds is not (country, anon, asn, {})");
        return NULL;
    }
    PyObject *networks = PyTuple_GET_ITEM(finds, 3);
    /* _lookup: ip.value >> 8 for IPv4, ip.value >> 80 | 1 << 48 for IPv6 (never equal). */
    long long network = (long long)(version == 4 ? hi >> 40 : hi >> 16 | (uint64_t)1 << 48);
    long long widest = version == 4 ? 24 : 48;
    PyObject *key = long_from_u60((uint64_t)network);
    PyObject *found = key == NULL ? NULL : network_get(networks, key, network);
    if (found != NULL || key == NULL || PyErr_Occurred()) {
        Py_XDECREF(key);
        Py_DECREF(finds);
        return found;
    }
    PyObject *record = NULL, *anonymizers = NULL, *asn = NULL;
    long long prefix = 0;
    for (int i = 0; i < 3; i++) {
        PyObject *find = PyTuple_GET_ITEM(finds, i);
        if (find == Py_None) {
            continue;
        }
        PyObject *said;
        if (native != NULL && Py_TYPE(find) == native->finder_type) {
            said = native->finder_find(find, address);
        }
        else {
            PyObject *ip = client_ip(address);
            said = ip == NULL ? NULL : PyObject_CallOneArg(find, ip);
        }
        if (said == NULL) {
            goto failed;
        }
        if (!PyTuple_Check(said) || PyTuple_GET_SIZE(said) != 2) {
            Py_DECREF(said);
            PyErr_SetString(PyExc_TypeError, "Miss: a finder must give (answer, prefix)");
            goto failed;
        }
        long long length = PyLong_AsLongLong(PyTuple_GET_ITEM(said, 1));
        if (length == -1 && PyErr_Occurred()) {
            Py_DECREF(said);
            goto failed;
        }
        prefix = i == 0 || length > prefix ? length : prefix; /* max() after the first */
        PyObject *answer = Py_NewRef(PyTuple_GET_ITEM(said, 0));
        Py_DECREF(said);
        if (i == 0) {
            record = answer;
        }
        else if (i == 1) {
            anonymizers = answer;
        }
        else {
            int number = PyObject_IsTrue(answer); /* 0: no number for this address */
            if (number < 0) {
                Py_DECREF(answer);
                goto failed;
            }
            asn = number ? answer : Py_NewRef(Py_None);
            if (!number) {
                Py_DECREF(answer);
            }
        }
    }
    if (record == NULL) {
        PyErr_SetString(PyExc_TypeError, "Miss: no country finder");
        goto failed;
    }
    PyObject *items[3] = {record, anonymizers != NULL ? anonymizers
                                                      : Py_NewRef(self->no_anonymizers),
                          asn != NULL ? asn : Py_NewRef(Py_None)};
    found = PyTuple_New(3);
    if (found == NULL) {
        record = items[0], anonymizers = items[1], asn = items[2];
        goto failed;
    }
    for (int i = 0; i < 3; i++) {
        PyTuple_SET_ITEM(found, i, items[i]);
    }
    if (prefix <= widest && network_put(self, networks, key, network, found) < 0) {
        Py_CLEAR(found);
    }
    Py_DECREF(key);
    Py_DECREF(finds);
    return found;
failed:
    Py_XDECREF(record);
    Py_XDECREF(anonymizers);
    Py_XDECREF(asn);
    Py_DECREF(key);
    Py_DECREF(finds);
    return NULL;
}

/* Where ``type``'s instances hold the members found, country and subdivisions: 1 when it
 * is a class with those slots and the plain attribute lookup (so that reading the slot is
 * what getattr would do), else 0. */
static int
learn_record(MissObject *self, PyTypeObject *type)
{
    PyObject *names[3] = {name_found, name_country, name_subdivisions};
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        PyObject *found = _PyType_Lookup(type, names[i]); /* borrowed; no error set */
        if (found == NULL || !Py_IS_TYPE(found, &PyMemberDescr_Type)) {
            return 0;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)found)->d_member;
        if (member->type != T_OBJECT_EX) {
            return 0;
        }
        self->record_at[i] = member->offset;
    }
    return 1;
}

/* The record's field ``i`` (0 found, 1 country, 2 subdivisions) as a new reference: read
 * from its slot, three attribute lookups fewer per new client; by getattr for another
 * class, or a slot never set (which raises as getattr does). */
static PyObject *
record_field(MissObject *self, PyObject *record, int i)
{
    static PyObject **names[3] = {&name_found, &name_country, &name_subdivisions};
    if ((PyObject *)Py_TYPE(record) != self->record_type) {
        if (self->record_type != NULL) {
            return PyObject_GetAttr(record, *names[i]);
        }
        self->record_type = learn_record(self, Py_TYPE(record))
                                ? Py_NewRef((PyObject *)Py_TYPE(record))
                                : Py_NewRef(Py_None);
        return record_field(self, record, i);
    }
    PyObject *value = *(PyObject **)((char *)record + self->record_at[i]);
    return value != NULL ? Py_NewRef(value) : PyObject_GetAttr(record, *names[i]);
}

/* Engine._evaluate's facts for a looked-up client: Facts(method, path, country,
 * subdivisions, anonymizers, fallback, home=None, host=None, asn). */
static PyObject *
make_facts(MissObject *self, PyObject *method, PyObject *path, PyObject *found)
{
    PyObject *record = PyTuple_GET_ITEM(found, 0);
    PyObject *in_db = record_field(self, record, 0);
    if (in_db == NULL) {
        return NULL;
    }
    int is_found = PyObject_IsTrue(in_db);
    Py_DECREF(in_db);
    if (is_found < 0) {
        return NULL;
    }
    PyObject *country = record_field(self, record, 1);
    if (country == NULL) {
        return NULL;
    }
    PyObject *subdivisions = record_field(self, record, 2);
    if (subdivisions == NULL) {
        Py_DECREF(country);
        return NULL;
    }
    PyObject *fallback = !is_found ? str_not_found
                         : country == Py_None ? str_no_country
                                              : str_default;
    PyObject *items[9] = {
        Py_NewRef(method),   Py_NewRef(path),
        country,             subdivisions,
        Py_NewRef(PyTuple_GET_ITEM(found, 1)),
        Py_NewRef(fallback), Py_NewRef(Py_None),
        Py_NewRef(Py_None),  Py_NewRef(PyTuple_GET_ITEM(found, 2)),
    };
    return new_named(self->facts_type, items, 9);
}

/* engine._verdict(facts, now) for ``wall`` (now in microseconds, as _entry has it inside a
 * window), stored under ``pair`` in the verdict memo; a new reference, or NULL with an error
 * (which propagates, as from _evaluate). */
static PyObject *
new_verdict(MissObject *self, PyObject *engine, PyObject *pair, PyObject *facts, double wall)
{
    PyObject *now = PyLong_FromLongLong((long long)(wall * 1000000.0));
    if (now == NULL) {
        return NULL;
    }
    PyObject *call[3] = {engine, facts, now};
    PyObject *verdict = PyObject_VectorcallMethod(name__verdict, call, 3, NULL);
    Py_DECREF(now);
    if (verdict != NULL && put_bounded(self->verdicts, self->verdict_size, pair, verdict) < 0) {
        Py_CLEAR(verdict);
    }
    return verdict;
}

/* The decision for this client from the verdict (geofence._model.with_client): the
 * verdict's items but the last three, then the client's address, detail and reference. */
static PyObject *
with_client(MissObject *self, PyObject *verdict, PyObject *text, PyObject *ref)
{
    Py_ssize_t size = self->fields;
    PyObject *made = self->decision_type->tp_alloc(self->decision_type, size);
    if (made == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size - 3; i++) {
        PyTuple_SET_ITEM(made, i, Py_NewRef(PyTuple_GET_ITEM(verdict, i)));
    }
    PyTuple_SET_ITEM(made, size - 3, Py_NewRef(text));
    PyTuple_SET_ITEM(made, size - 2, Py_NewRef(self->detail));
    PyTuple_SET_ITEM(made, size - 1, Py_NewRef(ref));
    return untracked_if_frozen(made);
}

/* The entry (epoch, decision, attention, answer) of Engine._entry for this decision, stored
 * under ``key`` and observed; NULL with an error that must propagate (as from _entry). */
static PyObject *
settle(MissObject *self, PyObject *request, PyObject *epoch, PyObject *key, PyObject *decision)
{
    PyObject *action = PyTuple_GET_ITEM(decision, self->at_action);
    int allow = PyUnicode_Compare(action, str_allow) == 0;
    int enforced = PyObject_IsTrue(PyTuple_GET_ITEM(decision, self->at_enforced));
    int reported = PyObject_IsTrue(PyTuple_GET_ITEM(decision, self->at_report));
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *answer;
    if (allow || !enforced) {
        PyObject *args[3] = {decision, Py_None, Py_None};
        answer = PyObject_Vectorcall(self->new_answer, args, 3, NULL);
    }
    else if (PyUnicode_Compare(action, str_warn) == 0) {
        PyObject *args[3] = {decision, Py_None, self->responder};
        answer = PyObject_Vectorcall(self->new_answer, args, 3, NULL);
    }
    else {
        answer = Py_NewRef(Py_None); /* an enforced block: its response depends on Accept */
    }
    if (answer == NULL) {
        return NULL;
    }
    PyObject *attention;
    if (!allow || reported) {
        attention = Py_NewRef(Py_True);
    }
    else {
        PyObject *tally = PyObject_GetAttr(self->observer, name_tally);
        if (tally == NULL) {
            Py_DECREF(answer);
            return NULL;
        }
        attention = tally == Py_None ? Py_NewRef(Py_False)
                                     : PyObject_CallMethodOneArg(tally, name_iterator, decision);
        Py_DECREF(tally);
        if (attention == NULL) {
            Py_DECREF(answer);
            return NULL;
        }
    }
    PyObject *entry = PyTuple_New(4);
    if (entry == NULL) {
        Py_DECREF(answer);
        Py_DECREF(attention);
        return NULL;
    }
    PyTuple_SET_ITEM(entry, 0, Py_NewRef(epoch));
    PyTuple_SET_ITEM(entry, 1, Py_NewRef(decision));
    PyTuple_SET_ITEM(entry, 2, attention);
    PyTuple_SET_ITEM(entry, 3, answer);
    /* Nothing in it can lead back to a container (an untracked answer holds only frozen
     * values, see geofence/hotpath/_tuples.c): the collector need never visit it, as it would every
     * entry of a full cache. */
    if (frozen(epoch) && frozen(decision) && !PyType_IS_GC(Py_TYPE(attention))
        && (answer == Py_None || !PyObject_GC_IsTracked(answer))) {
        PyObject_GC_UnTrack(entry);
    }
    if (put_bounded(self->cache, self->cache_size, key, entry) < 0) {
        Py_DECREF(entry);
        return NULL;
    }
    if (attention == Py_True) {
        if (request == NULL) {
            /* Engine.quick: its caller sees attention True and asks answer(request), whose
             * hit observes the decision as a repeated request's would be. */
            return entry;
        }
        PyObject *args[4] = {self->observer, decision, request, Py_None};
        PyObject *done = PyObject_VectorcallMethod(name_seen, args, 4, NULL);
        if (done == NULL) {
            Py_DECREF(entry);
            return NULL;
        }
        Py_DECREF(done);
    }
    else if (attention != Py_False) {
        PyObject *counted = PyIter_Next(attention);
        if (counted == NULL && PyErr_Occurred()) {
            Py_DECREF(entry);
            return NULL;
        }
        Py_XDECREF(counted);
    }
    return entry;
}

/* miss(engine, request, epoch, wall) -> entry or None; see the top of this file. The engine
 * is an argument rather than held: no cycle keeps an engine alive.
 *
 * miss(engine, None, epoch, wall, peer, method, path[, absent]): the same for a request known
 * only by these three (Engine.quick): an entry whose attention is True is stored but not
 * observed (there is no request to log), which the caller must then have done by
 * answer(request). ``absent`` True: the caller's probe of the cache just found no entry for
 * the three (none stale either), with ``wall`` well inside its window and ``epoch`` the one
 * it holds (Engine._state and the probe are set together), and no Python code has run since:
 * the step checks neither the cache nor the window again. */
static PyObject *
Miss_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    MissObject *self = (MissObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (!(nargs == 4 || ((nargs == 7 || nargs == 8) && args[1] == Py_None))
        || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Miss() takes (engine, request, epoch, wall) or "
                                         "(engine, None, epoch, wall, peer, method, path"
                                         "[, absent])");
        return NULL;
    }
    /* Vouched for by the caller's probe (see above). */
    int absent = nargs == 8 && args[7] == Py_True;
    PyObject *engine = args[0], *request = nargs == 4 ? args[1] : NULL, *epoch = args[2];
    if (request == NULL && PyDict_GET_SIZE(self->proxy_peers) != 0
        && PyUnicode_CheckExact(args[4])) {
        /* Behind a proxy most requests come from it: Engine.quick asks for each of them, and
         * the answer (a trusted proxy: Python's) is known without parsing it again. */
        int proxy = PyDict_Contains(self->proxy_peers, args[4]);
        if (proxy != 0) {
            return proxy < 0 ? fallback_after_error() : Py_NewRef(Py_None);
        }
    }
    if (!PyTuple_CheckExact(epoch) || PyTuple_GET_SIZE(epoch) != 2 || !PyFloat_Check(args[3])) {
        Py_RETURN_NONE;
    }
    Address address = {.ip = NULL}; /* the client; its ip, when made, is released below */
    PyObject *peer = NULL, *method = NULL, *path = NULL, *key = NULL,
             *found = NULL, *facts = NULL, *verdict = NULL, *ref = NULL, *decision = NULL,
             *result = NULL;
    int inside = absent ? 1 : inside_window(engine, epoch, PyFloat_AS_DOUBLE(args[3]));
    if (inside <= 0) {
        return inside < 0 ? fallback_after_error() : Py_NewRef(Py_None);
    }
    /* A test overlay (geofence.testing) says what clients are: Python asks it. The module's
     * dict read directly (what its getattr finds first) saves the module getattr's steps. */
    PyObject *active = PyModule_CheckExact(self->overlay)
                           ? PyDict_GetItemWithError(PyModule_GetDict(self->overlay), name_active)
                           : NULL;
    if (active == NULL && !PyErr_Occurred()) {
        active = PyObject_GetAttr(self->overlay, name_active); /* a new reference */
        if (active == NULL) {
            return fallback_after_error();
        }
        Py_DECREF(active); /* None when it is, and the module holds whatever else it is */
    }
    if (active == NULL) {
        return fallback_after_error();
    }
    if (active != Py_None) {
        Py_RETURN_NONE;
    }
    if (request == NULL) {
        peer = Py_NewRef(args[4]);
        method = Py_NewRef(args[5]);
        path = Py_NewRef(args[6]);
    }
    else {
        peer = PyObject_GetAttr(request, name_peer);
        method = peer == NULL ? NULL : PyObject_GetAttr(request, name_method);
        path = method == NULL ? NULL : PyObject_GetAttr(request, name_path);
        if (path == NULL) {
            goto error;
        }
    }
    if (!PyUnicode_CheckExact(peer) || !plain_method(method) || !PyUnicode_CheckExact(path)
        || PyUnicode_GET_LENGTH(path) > MAX_PATH) {
        goto fallback;
    }
    /* The resolver: the peer parsed (parse_peer); a trusted proxy, or an address that cannot
     * be a client (the inline check of peer_client), is Python's. */
    if (native != NULL && Py_TYPE(self->peers) == native->peers_type) {
        if (native->peers_address(self->peers, peer, &address) < 0) {
            goto error;
        }
    }
    else {
        address.ip = PyObject_CallOneArg(self->peers, peer);
        if (address.ip == NULL) {
            goto error;
        }
    }
    if (address.ip != NULL) {
        /* Not read by _native's parse: the text, version and value from the slow parser's
         * IP (or None: not an address). */
        PyObject *ip = address.ip;
        if (!PyTuple_Check(ip) || PyTuple_GET_SIZE(ip) < 3
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(ip, 0))) {
            goto fallback;
        }
        address.text = PyTuple_GET_ITEM(ip, 0);
        address.version = PyLong_AsLong(PyTuple_GET_ITEM(ip, 1));
        if (address.version != 4 && address.version != 6) {
            if (PyErr_Occurred()) {
                goto error;
            }
            goto fallback;
        }
        if (address_halves(PyTuple_GET_ITEM(ip, 2), address.version == 4 ? 32 : 128,
                           &address.hi, &address.lo) < 0) {
            goto error;
        }
    }
    uint64_t hi = address.hi, lo = address.lo;
    if (address.version == 4 ? !(hi != 0 && hi < (uint64_t)0xE0000000 << 32)
                             : !((hi != 0 || lo >> 32 != 0) && hi >> 56 != 0xFF)) {
        goto fallback;
    }
    int held = in_set(self->trusted, &address);
    if (held > 0 && PyDict_GET_SIZE(self->proxy_peers) < PROXY_PEERS
        && PyDict_SetItem(self->proxy_peers, peer, Py_True) < 0) {
        held = -1;
    }
    if (held != 0) {
        goto held_or_error;
    }
    /* _entry: the key (peer, method, path); a request it already holds is Python's. */
    PyObject *parts[3] = {Py_NewRef(peer), Py_NewRef(method), Py_NewRef(path)};
    key = new_named(self->key_type, parts, 3);
    if (key == NULL) {
        goto error;
    }
    int cached = absent ? 0 : PyDict_Contains(self->cache, key);
    if (cached != 0) {
        held = cached;
        goto held_or_error;
    }
    /* _evaluate: exemptions, then a private address, are Python's. */
    held = in_set(self->exempt_ips, &address);
    if (held != 0) {
        goto held_or_error;
    }
    if (self->exempt_match != Py_None) {
        held = exempt_path(self, path);
        if (held != 0) {
            goto held_or_error;
        }
    }
    held = in_set(self->private_, &address);
    if (held != 0) {
        goto held_or_error;
    }
    found = lookup(self, engine, &address);
    if (found == NULL) {
        goto error; /* a database error, or the memo broken: Python repeats and reports it */
    }
    if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 3) {
        goto fallback;
    }
    facts = make_facts(self, method, path, found);
    if (facts == NULL) {
        goto error;
    }
    PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(epoch, 0), facts);
    if (pair == NULL) {
        goto error;
    }
    verdict = dict_get(self->verdicts, pair);
    if (verdict == NULL && !PyErr_Occurred()) {
        /* The first client with these facts: the policy's verdict, from Python (_verdict),
         * at this instant, memoised as _evaluate memoises it. An error propagates. */
        verdict = new_verdict(self, engine, pair, facts, PyFloat_AS_DOUBLE(args[3]));
        if (verdict == NULL) {
            Py_DECREF(pair);
            goto done;
        }
    }
    Py_DECREF(pair);
    if (verdict == NULL) {
        goto error;
    }
    if (Py_TYPE(verdict) != self->decision_type || PyTuple_GET_SIZE(verdict) != self->fields
        || !PyUnicode_CheckExact(PyTuple_GET_ITEM(verdict, self->at_action))) {
        goto fallback; /* not what _verdict makes: Python sorts it out */
    }
    PyObject *text = address.text;
    if (PyUnicode_Compare(PyTuple_GET_ITEM(verdict, self->at_action), str_allow) == 0) {
        ref = Py_NewRef(Py_None);
    }
    else {
        /* A reference for a warned or blocked client: refs.make(ip, rule, reason). An error
         * propagates, as it would from _evaluate. */
        PyObject *refs = PyObject_GetAttr(self->observer, name_refs);
        PyObject *make = refs == NULL ? NULL : PyObject_GetAttr(refs, name_make);
        Py_XDECREF(refs);
        if (make == NULL) {
            goto done;
        }
        PyObject *call[3] = {text, PyTuple_GET_ITEM(verdict, self->at_rule),
                             PyTuple_GET_ITEM(verdict, self->at_reason)};
        ref = PyObject_Vectorcall(make, call, 3, NULL);
        Py_DECREF(make);
        if (ref == NULL) {
            goto done;
        }
    }
    decision = with_client(self, verdict, text, ref);
    if (decision == NULL) {
        goto done;
    }
    result = settle(self, request, epoch, key, decision);
    goto done;

held_or_error:
    if (held > 0) {
        goto fallback;
    }
error:
    result = fallback_after_error();
    goto done;
fallback:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(peer);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(address.ip);
    Py_XDECREF(key);
    Py_XDECREF(found);
    Py_XDECREF(facts);
    Py_XDECREF(verdict);
    Py_XDECREF(ref);
    Py_XDECREF(decision);
    return result;
}

static int
Miss_traverse(MissObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->peers);
    Py_VISIT(self->trusted);
    Py_VISIT(self->private_);
    Py_VISIT(self->exempt_ips);
    Py_VISIT(self->exempt_match);
    Py_VISIT(self->paths_seen);
    Py_VISIT(self->proxy_peers);
    Py_VISIT(self->overlay);
    Py_VISIT(self->detail);
    Py_VISIT(self->cache);
    Py_VISIT(self->verdicts);
    Py_VISIT(self->key_type);
    Py_VISIT(self->facts_type);
    Py_VISIT(self->decision_type);
    Py_VISIT(self->no_anonymizers);
    Py_VISIT(self->observer);
    Py_VISIT(self->new_answer);
    Py_VISIT(self->responder);
    Py_VISIT(self->record_type);
    return 0;
}

static int
Miss_clear(MissObject *self)
{
    Py_CLEAR(self->peers);
    Py_CLEAR(self->trusted);
    Py_CLEAR(self->private_);
    Py_CLEAR(self->exempt_ips);
    Py_CLEAR(self->exempt_match);
    Py_CLEAR(self->paths_seen);
    Py_CLEAR(self->proxy_peers);
    Py_CLEAR(self->overlay);
    Py_CLEAR(self->detail);
    Py_CLEAR(self->cache);
    Py_CLEAR(self->verdicts);
    Py_CLEAR(self->key_type);
    Py_CLEAR(self->facts_type);
    Py_CLEAR(self->decision_type);
    Py_CLEAR(self->no_anonymizers);
    Py_CLEAR(self->observer);
    Py_CLEAR(self->new_answer);
    Py_CLEAR(self->responder);
    Py_CLEAR(self->record_type);
    return 0;
}

static void
Miss_dealloc(MissObject *self)
{
    PyObject_GC_UnTrack(self);
    Miss_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A set argument: None, or (heads4, heads6, holds) with bytes or None heads. */
static int
valid_set(PyObject *set, const char *what)
{
    if (set == Py_None) {
        return 1;
    }
    if (PyTuple_CheckExact(set) && PyTuple_GET_SIZE(set) == 3
        && (PyTuple_GET_ITEM(set, 0) == Py_None || PyBytes_CheckExact(PyTuple_GET_ITEM(set, 0)))
        && (PyTuple_GET_ITEM(set, 1) == Py_None || PyBytes_CheckExact(PyTuple_GET_ITEM(set, 1)))
        && PyCallable_Check(PyTuple_GET_ITEM(set, 2))) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "Miss(): %s must be None or (heads4, heads6, holds)", what);
    return 0;
}

static PyObject *
Miss_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *peers, *trusted, *private_, *exempt_ips, *exempt_match, *overlay,
        *detail, *cache, *verdicts, *key_type, *facts_type, *decision_type, *no_anonymizers,
        *observer, *new_answer, *responder;
    Py_ssize_t cache_size, network_size, verdict_size, at[5];
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Miss() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOOOUO!O!O!O!O!OOOOnnn(nnnnn):Miss", &peers,
                          &trusted, &private_, &exempt_ips, &exempt_match, &overlay, &detail,
                          &PyDict_Type, &cache, &PyDict_Type, &verdicts, &PyType_Type,
                          &key_type, &PyType_Type, &facts_type, &PyType_Type, &decision_type,
                          &no_anonymizers, &observer, &new_answer, &responder, &cache_size,
                          &network_size, &verdict_size, &at[0], &at[1], &at[2], &at[3], &at[4])) {
        return NULL;
    }
    if (!PyDict_CheckExact(cache) || !PyDict_CheckExact(verdicts)) {
        PyErr_SetString(PyExc_TypeError, "Miss(): the caches must be exact dicts");
        return NULL;
    }
    PyTypeObject *tuple_types[3] = {(PyTypeObject *)key_type, (PyTypeObject *)facts_type,
                                    (PyTypeObject *)decision_type};
    for (int i = 0; i < 3; i++) {
        if (!PyType_IsSubtype(tuple_types[i], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError, "Miss(): the key, facts and decision types must "
                                             "be tuple subclasses");
            return NULL;
        }
    }
    PyObject *fields = PyObject_GetAttrString(decision_type, "_fields");
    if (fields == NULL) {
        return NULL;
    }
    Py_ssize_t size = PyObject_Size(fields);
    Py_DECREF(fields);
    if (size < 0) {
        return NULL;
    }
    for (int i = 0; i < 5; i++) {
        if (at[i] < 0 || at[i] >= size - 3) {
            PyErr_SetString(PyExc_ValueError, "Miss(): a field index is out of range");
            return NULL;
        }
    }
    if (!valid_set(trusted, "trusted") || !valid_set(private_, "private")
        || !valid_set(exempt_ips, "exempt_ips") || !PyCallable_Check(peers)
        || !PyCallable_Check(new_answer)
        || (exempt_match != Py_None && !PyCallable_Check(exempt_match))) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Miss(): peers, new_answer and exempt_match "
                                             "must be callable");
        }
        return NULL;
    }
    if (cache_size < 1 || network_size < 1 || verdict_size < 1) {
        PyErr_SetString(PyExc_ValueError, "Miss(): the cache sizes must be positive");
        return NULL;
    }
    MissObject *self = (MissObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->peers = Py_NewRef(peers);
    self->trusted = Py_NewRef(trusted);
    self->private_ = Py_NewRef(private_);
    self->exempt_ips = Py_NewRef(exempt_ips);
    self->exempt_match = Py_NewRef(exempt_match);
    self->paths_seen = PyDict_New();
    self->proxy_peers = PyDict_New();
    if (self->paths_seen == NULL || self->proxy_peers == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->overlay = Py_NewRef(overlay);
    self->detail = Py_NewRef(detail);
    self->cache = Py_NewRef(cache);
    self->verdicts = Py_NewRef(verdicts);
    self->key_type = (PyTypeObject *)Py_NewRef(key_type);
    self->facts_type = (PyTypeObject *)Py_NewRef(facts_type);
    self->decision_type = (PyTypeObject *)Py_NewRef(decision_type);
    self->no_anonymizers = Py_NewRef(no_anonymizers);
    self->observer = Py_NewRef(observer);
    self->new_answer = Py_NewRef(new_answer);
    self->responder = Py_NewRef(responder);
    self->cache_size = cache_size;
    self->network_size = network_size;
    self->verdict_size = verdict_size;
    self->at_action = at[0];
    self->at_enforced = at[1];
    self->at_reason = at[2];
    self->at_rule = at[3];
    self->at_report = at[4];
    self->fields = size;
    self->vectorcall = Miss_vectorcall;
    return (PyObject *)self;
}

PyDoc_STRVAR(Miss_doc,
"Miss(peers, trusted, private, exempt_ips, exempt_match, overlay, detail, cache,\n"
"     verdicts, key_type, facts_type, decision_type, no_anonymizers, observer, new_answer,\n"
"     responder, cache_size, network_size, verdict_size,\n"
"     (action, enforced, reason, rule, report_rules))\n\n"
"``miss(engine, request, epoch, wall) -> entry | None``: Engine._entry's entry for a new client in\n"
"the common case (see geofence/hotpath/_miss.c), or None: Engine._entry decides.");

static PyTypeObject MissType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "geofence.hotpath._miss.Miss",
    .tp_basicsize = sizeof(MissObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = Miss_doc,
    .tp_new = Miss_new,
    .tp_dealloc = (destructor)Miss_dealloc,
    .tp_traverse = (traverseproc)Miss_traverse,
    .tp_clear = (inquiry)Miss_clear,
    .tp_vectorcall_offset = offsetof(MissObject, vectorcall),
    .tp_call = PyVectorcall_Call,
};

static int
miss_exec(PyObject *module)
{
    if (name_state == NULL) {
        struct {
            PyObject **slot;
            const char *text;
        } names[] = {
            {&name__verdict, "_verdict"}, {&name_state, "_state"},     {&name_finds, "_finds"},
            {&name_active, "ACTIVE"},    {&name_peer, "peer"},
            {&name_method, "method"},    {&name_path, "path"},
            {&name_found, "found"},      {&name_country, "country"},
            {&name_subdivisions, "subdivisions"}, {&name_refs, "refs"},
            {&name_make, "make"},        {&name_tally, "tally"},
            {&name_iterator, "iterator"}, {&name_seen, "seen"},
            {&str_allow, "allow"},       {&str_warn, "warn"},
            {&str_not_found, "not_found"}, {&str_no_country, "no_country"},
            {&str_default, "default"},
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            *names[i].slot = PyUnicode_InternFromString(names[i].text);
            if (*names[i].slot == NULL) {
                return -1;
            }
        }
    }
    if (native == NULL) {
        /* Optional: a build without _native calls its objects (none of which are _native's). */
        native = PyCapsule_Import(NATIVE_API_CAPSULE, 0);
        if (native == NULL) {
            PyErr_Clear();
        }
    }
    if (PyType_Ready(&MissType) < 0) {
        return -1;
    }
    Py_INCREF(&MissType);
    if (PyModule_AddObject(module, "Miss", (PyObject *)&MissType) < 0) {
        Py_DECREF(&MissType);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot miss_slots[] = {
    {Py_mod_exec, miss_exec},
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef miss_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geofence.hotpath._miss",
    .m_doc = "A new client's decision in C for the common case (see geofence/_engine.py).",
    .m_size = 0,
    .m_slots = miss_slots,
};

PyMODINIT_FUNC
PyInit__miss(void)
{
    return PyModuleDef_Init(&miss_module);
}
