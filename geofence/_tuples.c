/* geofence._tuples: named tuples built without tuple.__new__'s argument handling.
 *
 * A new client makes about five named tuples (its address, how it was found, the cache key,
 * the facts the rules read, its decision). ``tuple.__new__(cls, items)`` goes through the
 * slot wrapper, argument parsing and a copy of ``items``: about 1,000 instructions each, and
 * a decision made from a shared verdict (``with_client``) costs 4,000 in Python. Here each
 * is one allocation and a copy of references: a few hundred.
 *
 * Both functions give exactly what their Python twins in geofence/_model.py give; they are
 * only ever called with named-tuple classes (tuple subclasses without extra slots).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
    return made;
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
    return made;
}

static PyMethodDef tuples_methods[] = {
    {"new", (PyCFunction)(void (*)(void))tuples_new, METH_FASTCALL,
     "new(cls, items, /): tuple.__new__(cls, items), for an exact tuple of items."},
    {"with_tail", (PyCFunction)(void (*)(void))tuples_with_tail, METH_FASTCALL,
     "with_tail(cls, base, *tail, /): base's items as a cls, the last len(tail) replaced."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tuples_module = {
    PyModuleDef_HEAD_INIT, "geofence._tuples",
    "Named tuples built in one allocation (see geofence/_model.py).", -1, tuples_methods,
};

PyMODINIT_FUNC
PyInit__tuples(void)
{
    return PyModule_Create(&tuples_module);
}
