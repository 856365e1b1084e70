/* The SDK's multipart bodies split in C (`ingest.multipart.split_parts`'s fast path).
 *
 * Splitting in Python cost ~1.3 µs per part, ~6.4 µs per SDK run, however it was written (mypyc-compiled; each
 * bytes method call parses its arguments, and a part takes a dozen); this takes ~0.3. It handles only bodies whose
 * every part carries the Python SDK's exact header (protocol §4.3), and reads them exactly as the Python code does;
 * for anything else, malformed bodies included, it returns None and the Python code splits the body (and says
 * what is wrong with it). tests/unit/test_multipart.py checks both ways agree.
 */
#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define LITERAL(s) (s), (sizeof(s) - 1)

static const char DISPOSITION[] = "Content-Disposition: form-data; name=\"";
static const char TYPE[] = "\"\r\nContent-Type: ";
static const char LENGTH[] = "\r\nContent-Length: ";
static const char JSON[] = "application/json";

static PyObject *json_type; /* "application/json", shared by the parts that have it */

static int starts_with(const char *at, const char *end, const char *literal, Py_ssize_t size) {
    return end - at >= size && memcmp(at, literal, size) == 0;
}

/* Bytes' strip() removes these (ASCII whitespace). */
static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

/* Where the first "\r\n" + delimiter in [start, end) starts, or NULL. */
static const char *next_delimiter(const char *start, const char *end, const char *delimiter, Py_ssize_t size) {
    const char *from = start;
    while (from < end) {
        const char *found = memmem(from, end - from, delimiter, size);
        if (found == NULL) {
            return NULL;
        }
        if (found - start >= 2 && found[-2] == '\r' && found[-1] == '\n') {
            return found - 2;
        }
        from = found + 1;
    }
    return NULL;
}

/* The part whose header is [head, head_end) and data [data, data_end) as `factory(name, type, data)`; NULL
 * with no exception set when the header is not the SDK's or its length is not the data's. */
static PyObject *sdk_part(const char *head, const char *head_end, const char *data, const char *data_end,
                          PyObject *factory) {
    if (!starts_with(head, head_end, LITERAL(DISPOSITION))) {
        return NULL;
    }
    const char *name = head + sizeof(DISPOSITION) - 1;
    const char *name_end = memchr(name, '"', head_end - name);
    if (name_end == NULL || name_end == name || !starts_with(name_end, head_end, LITERAL(TYPE))) {
        return NULL;
    }
    if (memchr(name, '\n', name_end - name) != NULL) {
        return NULL;
    }
    const char *type = name_end + sizeof(TYPE) - 1;
    const char *type_end = memchr(type, '\r', head_end - type);
    if (type_end == NULL || type_end == type || !starts_with(type_end, head_end, LITERAL(LENGTH))) {
        return NULL;
    }
    const char *digits = type_end + sizeof(LENGTH) - 1;
    if (digits == head_end || head_end - digits > 18) { /* more digits than any body's length can have */
        return NULL;
    }
    Py_ssize_t declared = 0;
    for (const char *d = digits; d < head_end; d++) {
        if (*d < '0' || *d > '9') {
            return NULL;
        }
        declared = declared * 10 + (*d - '0');
    }
    if (declared != data_end - data) {
        return NULL; /* the Python code raises the error that names the part */
    }
    PyObject *type_text;
    Py_ssize_t type_size = type_end - type;
    if (type_size == sizeof(JSON) - 1 && memcmp(type, JSON, type_size) == 0) {
        Py_INCREF(json_type);
        type_text = json_type;
    } else {
        if (memchr(type, ';', type_size) != NULL || is_space(type[0]) || is_space(type[type_size - 1])) {
            return NULL;
        }
        type_text = PyUnicode_DecodeLatin1(type, type_size, NULL);
        if (type_text == NULL) {
            return NULL;
        }
    }
    PyObject *name_text = PyUnicode_DecodeUTF8(name, name_end - name, "replace");
    PyObject *payload = PyBytes_FromStringAndSize(data, data_end - data);
    PyObject *part = NULL;
    if (name_text != NULL && payload != NULL) {
        PyObject *args[3] = {name_text, type_text, payload};
        part = PyObject_Vectorcall(factory, args, 3, NULL);
    }
    Py_XDECREF(name_text);
    Py_DECREF(type_text);
    Py_XDECREF(payload);
    return part;
}

static PyObject *sdk_parts(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) == 0) {
        PyErr_SetString(PyExc_TypeError, "sdk_parts(body: bytes, delimiter: bytes, factory)");
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(args[0]);
    const char *end = body + PyBytes_GET_SIZE(args[0]);
    const char *delimiter = PyBytes_AS_STRING(args[1]);
    Py_ssize_t delimiter_size = PyBytes_GET_SIZE(args[1]);
    PyObject *factory = args[2];

    const char *at = memmem(body, end - body, delimiter, delimiter_size);
    if (at == NULL) {
        Py_RETURN_NONE;
    }
    at += delimiter_size;
    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    for (;;) {
        const char *next = next_delimiter(at, end, delimiter, delimiter_size);
        if (next == NULL) {
            /* The last delimiter: the body is well formed when it is the closing one. */
            if (starts_with(at, end, LITERAL("--"))) {
                return parts;
            }
            break;
        }
        if (!starts_with(at, next, LITERAL("\r\n"))) {
            break;
        }
        const char *head = at + 2;
        const char *head_end = memmem(head, next - head, LITERAL("\r\n\r\n"));
        if (head_end == NULL) {
            break;
        }
        PyObject *part = sdk_part(head, head_end, head_end + 4, next, factory);
        if (part == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(parts);
                return NULL;
            }
            break;
        }
        int failed = PyList_Append(parts, part);
        Py_DECREF(part);
        if (failed) {
            Py_DECREF(parts);
            return NULL;
        }
        at = next + 2 + delimiter_size;
    }
    Py_DECREF(parts);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"sdk_parts", (PyCFunction)(void (*)(void))sdk_parts, METH_FASTCALL,
     "sdk_parts(body, delimiter, factory) -> list of factory(name, content_type, data), or None when a part's "
     "header is not the SDK's or the body is malformed"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_multipart", NULL, -1, methods};

PyMODINIT_FUNC PyInit__multipart(void) {
    json_type = PyUnicode_InternFromString(JSON);
    if (json_type == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
