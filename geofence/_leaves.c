/* geofence._leaves: every record a MaxMind DB search tree leads to, with the first network
 * that leads there.
 *
 * A Country database has a few thousand distinct records for hundreds of thousands of
 * networks. geofence decodes each record once (geofence/geoip/_mmdb.py); knowing them all
 * when the file is opened lets it decode them then, rather than on the first request from a
 * network that leads to one (a raw reader.get, ~80,000 instructions, in that request). A
 * depth-first walk of ~1 million nodes takes ~0.7 s in Python, milliseconds here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* first(left, right, node_count, start, bits, limit) -> dict | None
 *
 * left and right: array('I') of each node's left and right records (geofence/geoip/_tree.py).
 * Walks from node ``start`` down at most ``bits`` levels. Returns {record: (value, length)}
 * for every record >= node_count met (node_count itself, "not found", included), value being
 * the first ``length`` address bits that lead to it, left-aligned in ``bits`` bits. None when
 * there are more than ``limit`` distinct records (the caller then decodes on demand), or when
 * the tree is damaged (a node index past the arrays, a walk deeper than ``bits``): the
 * lookups that reach the damage report it, as before. */

typedef struct {
    uint32_t node;
    uint8_t depth;
    uint8_t high[16]; /* the address bits walked so far, most significant first */
} Step;

static PyObject *
leaves_first(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "first(left, right, node_count, start, bits, limit) takes 6 arguments");
        return NULL;
    }
    Py_buffer left, right;
    if (PyObject_GetBuffer(args[0], &left, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &right, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&left);
        return NULL;
    }
    PyObject *result = NULL;
    Step *stack = NULL;
    PyObject *found = NULL;
    Py_ssize_t node_count = PyLong_AsSsize_t(args[2]);
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    long bits = PyLong_AsLong(args[4]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) {
        goto done;
    }
    Py_ssize_t nodes = left.len / 4;
    if (left.len != right.len || left.len % 4 || node_count < 0 || node_count > nodes ||
        (bits != 32 && bits != 128) || start < 0 || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "first(): arrays, node count, start or bits do not fit");
        goto done;
    }
    const uint32_t *lefts = (const uint32_t *)left.buf;
    const uint32_t *rights = (const uint32_t *)right.buf;
    /* Depth first: at most one pending right child per level, plus the current step. */
    stack = PyMem_Malloc(sizeof(Step) * (size_t)(bits + 2));
    found = PyDict_New();
    if (stack == NULL || found == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* A tree visits each node once (aliased subtrees, such as ::ffff:0:0/96 and 2002::/16
     * leading to the IPv4 tree, a few times); a damaged one could loop back and branch
     * without end: the number of steps is bounded. */
    Py_ssize_t budget = 8 * node_count + 1024;
    Py_ssize_t top = 0;
    memset(&stack[0], 0, sizeof(Step));
    stack[0].node = (uint32_t)start;
    top = 1;
    while (top > 0) {
        if (--budget < 0) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        Step step = stack[--top];
        if ((Py_ssize_t)step.node >= node_count) {
            /* A record: keep the first network that leads to it. */
            PyObject *record = PyLong_FromUnsignedLong(step.node);
            if (record == NULL) {
                goto done;
            }
            int known = PyDict_Contains(found, record);
            if (known == 0) {
                if (PyDict_GET_SIZE(found) >= limit) {
                    Py_DECREF(record);
                    result = Py_None;
                    Py_INCREF(result);
                    goto done;
                }
                PyObject *value = _PyLong_FromByteArray(step.high, (size_t)bits / 8, 0, 0);
                PyObject *pair = value == NULL ? NULL : Py_BuildValue("(Ni)", value, step.depth);
                if (pair == NULL || PyDict_SetItem(found, record, pair) < 0) {
                    Py_XDECREF(pair);
                    Py_DECREF(record);
                    goto done;
                }
                Py_DECREF(pair);
            }
            Py_DECREF(record);
            if (known < 0) {
                goto done;
            }
            continue;
        }
        if (step.depth >= bits || (Py_ssize_t)step.node >= nodes) {
            result = Py_None; /* a damaged tree: no preloading */
            Py_INCREF(result);
            goto done;
        }
        Step zero = step, one = step;
        zero.node = lefts[step.node];
        one.node = rights[step.node];
        zero.depth = one.depth = (uint8_t)(step.depth + 1);
        one.high[step.depth / 8] |= (uint8_t)(0x80 >> (step.depth % 8));
        /* The right child waits, the left one is walked first: addresses come in order. */
        stack[top++] = one;
        stack[top++] = zero;
        if (top > bits + 1) {
            result = Py_None; /* cannot happen in a tree: every pop descends one level */
            Py_INCREF(result);
            goto done;
        }
    }
    result = found;
    found = NULL;
done:
    PyMem_Free(stack);
    Py_XDECREF(found);
    PyBuffer_Release(&left);
    PyBuffer_Release(&right);
    return result;
}

static PyMethodDef leaves_methods[] = {
    {"first", (PyCFunction)(void (*)(void))leaves_first, METH_FASTCALL,
     "first(left, right, node_count, start, bits, limit, /): {record: (value, length)} for "
     "every record the tree leads to, or None (more than limit, or a damaged tree)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef leaves_module = {
    PyModuleDef_HEAD_INIT, "geofence._leaves",
    "Every record a search tree leads to (see geofence/geoip/_mmdb.py).", -1, leaves_methods,
};

PyMODINIT_FUNC
PyInit__leaves(void)
{
    return PyModule_Create(&leaves_module);
}
