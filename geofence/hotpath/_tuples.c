/* geofence.hotpath._tuples: named tuples built without tuple.__new__'s argument handling.
 *
 * A new client makes about five named tuples (its address, how it was found, the cache key,
 * the facts the rules read, its decision). ``tuple.__new__(cls, items)`` goes through the
 * slot wrapper, argument parsing and a copy of ``items``: about 1,000 instructions each, and
 * a decision made from a shared verdict (``with_client``) costs 4,000 in Python. Here each
 * is one allocation and a copy of references: a few hundred.
 *
 * Both functions give exactly what their Python twins in geofence/_model.py give; they are
 * only ever called with named-tuple classes (tuple subclasses without extra slots).
 *
 * Builder does the same for a small class with __slots__ (see below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_OBJECT_EX, READONLY */

#include <stddef.h>

#include "_cutil.h"

/* A new instance of ``cls`` (a subclass of tuple) of ``size`` items, all NULL, or NULL with
 * an error set. */
static PyObject *
alloc_instance(PyObject *cls, Py_ssize_t size)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "the class must be a subclass of tuple");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    if (type == &PyTuple_Type) {
        return PyTuple_New(size);
    }
    /* tp_alloc zero-fills, so the collector sees NULL items until they are set below, which
     * happens before anything can run Python code. */
    return type->tp_alloc(type, size);
}

/* new(cls, items): tuple.__new__(cls, items) for an exact tuple ``items``. */
static PyObject *
tuples_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "new() takes a class and a tuple");
        return NULL;
    }
    PyObject *items = args[1];
    if (!PyTuple_CheckExact(items)) {
        PyErr_SetString(PyExc_TypeError, "new() needs an exact tuple of items");
        return NULL;
    }
    if (args[0] == (PyObject *)&PyTuple_Type) {
        Py_INCREF(items);
        return items;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(items);
    PyObject *made = alloc_instance(args[0], size);
    if (made == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(made, i, item);
    }
    return untracked_if_frozen(made);
}

/* with_tail(cls, base, *tail): an instance of ``cls`` with the items of ``base`` (a tuple)
 * but its last len(tail) ones replaced by ``tail``. */
static PyObject *
tuples_with_tail(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "with_tail() takes a class, a tuple and its new tail");
        return NULL;
    }
    PyObject *base = args[1];
    Py_ssize_t size = PyTuple_GET_SIZE(base);
    Py_ssize_t tail = nargs - 2;
    if (tail > size) {
        PyErr_SetString(PyExc_ValueError, "with_tail(): the tail is longer than the tuple");
        return NULL;
    }
    PyObject *made = alloc_instance(args[0], size);
    if (made == NULL) {
        return NULL;
    }
    Py_ssize_t kept = size - tail;
    for (Py_ssize_t i = 0; i < kept; i++) {
        PyObject *item = PyTuple_GET_ITEM(base, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(made, i, item);
    }
    for (Py_ssize_t i = 0; i < tail; i++) {
        PyObject *item = args[2 + i];
        Py_INCREF(item);
        PyTuple_SET_ITEM(made, kept + i, item);
    }
    return untracked_if_frozen(made);
}

/* ---- Builder ---------------------------------------------------------------------------- */

/* Builder(cls, names): ``builder(*values)`` makes a ``cls`` with its slots ``names`` set to
 * ``values``, without calling Python: for a class with __slots__ whose __init__ only stores its
 * arguments and whose instances are never changed afterwards (geofence.http.Answer, made for
 * every new client). Calling a Python class costs ~2,500 instructions on CPython 3.12 (type
 * call, the __init__ frame); this, one allocation. An instance whose values are all frozen
 * is untracked, as tuples are above, when ``names`` are all the class has. */
#define MAX_SLOTS 8

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t count;
    Py_ssize_t offsets[MAX_SLOTS];
    int untrack; /* the class has no __dict__ and no slots but these */
    vectorcallfunc vectorcall;
} BuilderObject;

static int
Builder_traverse(BuilderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cls);
    return 0;
}

static int
Builder_clear(BuilderObject *self)
{
    Py_CLEAR(self->cls);
    return 0;
}

static void
Builder_dealloc(BuilderObject *self)
{
    PyObject_GC_UnTrack(self);
    Builder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Builder_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    BuilderObject *self = (BuilderObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != self->count || kwnames != NULL) {
        PyErr_Format(PyExc_TypeError, "a %s builder takes exactly %zd positional arguments",
                     self->cls->tp_name, self->count);
        return NULL;
    }
    /* tp_alloc zero-fills: the collector sees NULL slots until they are set just below. */
    PyObject *made = self->cls->tp_alloc(self->cls, 0);
    if (made == NULL) {
        return NULL;
    }
    int all_frozen = 1;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        *(PyObject **)((char *)made + self->offsets[i]) = args[i];
        all_frozen = all_frozen && frozen(args[i]);
    }
    if (all_frozen && self->untrack) {
        /* As untracked_if_frozen(), for a class whose instances are never changed. */
        PyObject_GC_UnTrack(made);
    }
    return made;
}

static PyObject *
Builder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *names;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Builder() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!:Builder", &PyType_Type, &cls, &PyTuple_Type, &names)) {
        return NULL;
    }
    PyTypeObject *target = (PyTypeObject *)cls;
    /* Its instances come from object.__new__ (no state of their own to set up). */
    if (target->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "Builder(): the class must use object.__new__");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (count > MAX_SLOTS) {
        PyErr_SetString(PyExc_ValueError, "Builder(): too many slots");
        return NULL;
    }
    BuilderObject *self = (BuilderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *descr = PyObject_GetAttr(cls, PyTuple_GET_ITEM(names, i));
        if (descr == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        int usable = Py_IS_TYPE(descr, &PyMemberDescr_Type);
        if (usable) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            usable = member->type == T_OBJECT_EX && !(member->flags & READONLY);
            self->offsets[i] = member->offset;
        }
        Py_DECREF(descr);
        if (!usable) {
            PyErr_Format(PyExc_TypeError, "Builder(): %R is not a writable slot of the class",
                         PyTuple_GET_ITEM(names, i));
            Py_DECREF(self);
            return NULL;
        }
    }
    Py_INCREF(cls);
    self->cls = target;
    self->count = count;
    /* Nothing but the named slots: the object's own header plus one pointer each. */
    self->untrack = target->tp_dictoffset == 0 && target->tp_weaklistoffset == 0
                    && target->tp_basicsize
                           == PyBaseObject_Type.tp_basicsize + count * (Py_ssize_t)sizeof(PyObject *);
    self->vectorcall = Builder_vectorcall;
    return (PyObject *)self;
}

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "geofence.hotpath._tuples.Builder",
    .tp_basicsize = sizeof(BuilderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Builder(cls, names): builder(*values) is a cls with slots names set to values.",
    .tp_new = Builder_new,
    .tp_dealloc = (destructor)Builder_dealloc,
    .tp_traverse = (traverseproc)Builder_traverse,
    .tp_clear = (inquiry)Builder_clear,
    .tp_vectorcall_offset = offsetof(BuilderObject, vectorcall),
    .tp_call = PyVectorcall_Call,
};

static PyMethodDef tuples_methods[] = {
    {"new", (PyCFunction)(void (*)(void))tuples_new, METH_FASTCALL,
     "new(cls, items, /): tuple.__new__(cls, items), for an exact tuple of items."},
    {"with_tail", (PyCFunction)(void (*)(void))tuples_with_tail, METH_FASTCALL,
     "with_tail(cls, base, *tail, /): base's items as a cls, the last len(tail) replaced."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tuples_module = {
    PyModuleDef_HEAD_INIT, "geofence.hotpath._tuples",
    "Named tuples built in one allocation (see geofence/_model.py).", -1, tuples_methods,
};

PyMODINIT_FUNC
PyInit__tuples(void)
{
    if (PyType_Ready(&BuilderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&tuples_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&BuilderType);
    if (PyModule_AddObject(module, "Builder", (PyObject *)&BuilderType) < 0) {
        Py_DECREF(&BuilderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
