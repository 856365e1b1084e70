/* Rows in ClickHouse's RowBinary format, packed and read in C (`storage.rowbinary`).
 *
 * The decode workers pack every run presumed new, the batcher every run it merges, and the batcher reads one back
 * whenever a later op needs the run's state: ~40 values a row. The Python reference (`storage.rowbinary`), even
 * compiled with mypyc, took 18-34 µs to pack a row of tests/bench/ingest.py's and ~38 to read one; this takes ~3
 * and ~5, a little less than the msgpack library it replaced (~4 and ~6). tests/unit/test_rowbinary.py checks
 * both agree on random rows.
 * Anything unusual (a UUID not in canonical text, text UTF-8 cannot carry, a mapping that is not a dict) is
 * handed to the same Python as the reference uses.
 */
#include "_rowbinary_put.h"

static int put_integer(Buffer *out, PyObject *value, char code) {
    if (code == 'T') {
        long long ticks = PyLong_AsLongLong(value);
        if (ticks == -1 && PyErr_Occurred()) {
            return -1;
        }
        return put_le(out, (unsigned long long)ticks, 8);
    }
    unsigned long long number = PyLong_AsUnsignedLongLong(value);
    if (number == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    int size = code == 'Q' ? 8 : (code == 'H' ? 2 : 1);
    if (size < 8 && number >> (8 * size)) {
        PyErr_Format(PyExc_OverflowError, "%llu does not fit a column of code '%c'", number, code);
        return -1;
    }
    return put_le(out, number, size);
}

static int put_map(Buffer *out, PyObject *value) {
    if (!PyDict_Check(value)) {
        PyObject *items = PyMapping_Items(value);
        if (items == NULL) {
            return -1;
        }
        int result = put_varint(out, PyList_GET_SIZE(items));
        for (Py_ssize_t i = 0; result == 0 && i < PyList_GET_SIZE(items); i++) {
            PyObject *item = PyList_GET_ITEM(items, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "a mapping's items must be pairs");
                result = -1;
            } else if (put_string(out, PyTuple_GET_ITEM(item, 0)) < 0 || put_string(out, PyTuple_GET_ITEM(item, 1)) < 0) {
                result = -1;
            }
        }
        Py_DECREF(items);
        return result;
    }
    if (put_varint(out, PyDict_GET_SIZE(value)) < 0) {
        return -1;
    }
    Py_ssize_t at = 0;
    PyObject *key, *item;
    while (PyDict_Next(value, &at, &key, &item)) {
        if (put_string(out, key) < 0 || put_string(out, item) < 0) {
            return -1;
        }
    }
    return 0;
}

static int put_value(Buffer *out, const char *code, PyObject *value);

static int put_array(Buffer *out, const char *code, PyObject *value) {
    PyObject *items = PySequence_Fast(value, "an Array column's value must be a sequence");
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    int result = put_varint(out, count);
    for (Py_ssize_t i = 0; result == 0 && i < count; i++) {
        result = put_value(out, code, PySequence_Fast_GET_ITEM(items, i));
    }
    Py_DECREF(items);
    return result;
}

/* `code` points at the column's code, after its prefix if any. */
static int put_value(Buffer *out, const char *code, PyObject *value) {
    if (value == Py_None) {
        PyErr_Format(PyExc_TypeError, "None for a column of code '%c', which is not Nullable", *code);
        return -1;
    }
    switch (*code) {
    case 'S':
    case 'Y':
        return put_string(out, value);
    case 'U':
        return put_uuid(out, value);
    case 'M':
        return put_map(out, value);
    case 'F': {
        double number = PyFloat_AsDouble(value);
        if (number == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        unsigned long long bits;
        memcpy(&bits, &number, 8);
        return put_le(out, bits, 8);
    }
    case 'b':
    case 'B':
    case 'H':
    case 'Q':
    case 'T':
        return put_integer(out, value, *code);
    default:
        PyErr_Format(PyExc_ValueError, "unknown column code '%c'", *code);
        return -1;
    }
}

static int put_row(Buffer *out, const char *schema, Py_ssize_t columns, PyObject *row) {
    PyObject *values = PySequence_Fast(row, "a row must be a sequence");
    if (values == NULL) {
        return -1;
    }
    int result = 0;
    if (PySequence_Fast_GET_SIZE(values) != columns) {
        PyErr_Format(PyExc_ValueError, "a row of %zd values for a schema of %zd columns", PySequence_Fast_GET_SIZE(values), columns);
        result = -1;
    }
    const char *code = schema;
    for (Py_ssize_t i = 0; result == 0 && i < columns; i++, code++) {
        PyObject *value = PySequence_Fast_GET_ITEM(values, i);
        if (*code == '?') {
            code++;
            if (value == Py_None) {
                result = put(out, "\x01", 1);
            } else {
                result = put(out, "\x00", 1) < 0 ? -1 : put_value(out, code, value);
            }
        } else if (*code == '[') {
            code++;
            result = put_array(out, code, value);
        } else {
            result = put_value(out, code, value);
        }
    }
    Py_DECREF(values);
    return result;
}

static PyObject *pack_rows(PyObject *module, PyObject *args) {
    PyObject *rows;
    const char *schema;
    Py_ssize_t schema_size;
    if (!PyArg_ParseTuple(args, "Os#:pack_rows", &rows, &schema, &schema_size)) {
        return NULL;
    }
    Py_ssize_t columns = 0;
    for (Py_ssize_t i = 0; i < schema_size; i++) {
        if (schema[i] == '?' || schema[i] == '[') {
            if (i + 1 == schema_size) {
                PyErr_SetString(PyExc_ValueError, "a schema must not end with a prefix");
                return NULL;
            }
            i++;
        }
        columns++;
    }
    PyObject *iterator = PyObject_GetIter(rows);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *packed = PyList_New(0);
    Buffer out = {PyMem_Malloc(4096), 0, 4096};
    if (packed == NULL || out.data == NULL) {
        if (out.data == NULL) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    PyObject *row;
    while ((row = PyIter_Next(iterator)) != NULL) {
        out.size = 0;
        int result = put_row(&out, schema, columns, row);
        Py_DECREF(row);
        if (result < 0) {
            goto fail;
        }
        PyObject *data = PyBytes_FromStringAndSize(out.data, out.size);
        if (data == NULL || PyList_Append(packed, data) < 0) {
            Py_XDECREF(data);
            goto fail;
        }
        Py_DECREF(data);
    }
    if (PyErr_Occurred()) {
        goto fail;
    }
    Py_DECREF(iterator);
    PyMem_Free(out.data);
    return packed;
fail:
    Py_DECREF(iterator);
    Py_XDECREF(packed);
    PyMem_Free(out.data);
    return NULL;
}

/* Reading a row back (`unpack_row`): a cursor over its bytes. */
typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Reader;

static int short_row(void) {
    PyErr_SetString(PyExc_ValueError, "the row ends inside a value");
    return -1;
}

/* Any number of bytes, as the Python reference reads them: beyond 64 bits, only zeros. */
static int read_varint(Reader *in, size_t *value) {
    unsigned long long result = 0;
    for (int shift = 0;; shift += 7) {
        if (in->at >= in->end) {
            return short_row();
        }
        unsigned char bits = *in->at & 0x7F;
        if (shift < 64 && (shift < 57 || bits >> (64 - shift) == 0)) {
            result |= (unsigned long long)bits << shift;
        } else if (bits) {
            PyErr_SetString(PyExc_ValueError, "a length longer than 64 bits");
            return -1;
        }
        if (*in->at++ < 0x80) {
            *value = result;
            return 0;
        }
    }
}

static unsigned long long read_le(Reader *in, int size) {
    unsigned long long value = 0;
    for (int i = 0; i < size; i++) {
        value |= (unsigned long long)in->at[i] << (8 * i);
    }
    in->at += size;
    return value;
}

/* A String's bytes, as str (`text`) or bytes. */
static PyObject *read_string(Reader *in, int text) {
    size_t size;
    if (read_varint(in, &size) < 0) {
        return NULL;
    }
    if (size > (size_t)(in->end - in->at)) {
        short_row();
        return NULL;
    }
    const char *data = (const char *)in->at;
    in->at += size;
    return text ? PyUnicode_DecodeUTF8(data, size, NULL) : PyBytes_FromStringAndSize(data, size);
}

static PyObject *read_uuid(Reader *in) {
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[16];
    char text[36];
    for (int i = 0; i < 8; i++) {
        bytes[i] = in->at[7 - i];
        bytes[8 + i] = in->at[15 - i];
    }
    in->at += 16;
    int at = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            text[at++] = '-';
        }
        text[at++] = digits[bytes[i] >> 4];
        text[at++] = digits[bytes[i] & 0xF];
    }
    return PyUnicode_FromStringAndSize(text, 36);
}

static PyObject *read_map(Reader *in) {
    size_t count;
    if (read_varint(in, &count) < 0) {
        return NULL;
    }
    PyObject *found = PyDict_New();
    for (size_t i = 0; found != NULL && i < count; i++) {
        PyObject *key = read_string(in, 1);
        PyObject *item = key == NULL ? NULL : read_string(in, 1);
        if (item == NULL || PyDict_SetItem(found, key, item) < 0) {
            Py_CLEAR(found);
        }
        Py_XDECREF(key);
        Py_XDECREF(item);
    }
    return found;
}

/* Bytes each fixed-size code takes, 0 for the others. */
static int fixed_size(char code) {
    switch (code) {
    case 'U':
        return 16;
    case 'F':
    case 'Q':
    case 'T':
        return 8;
    case 'H':
        return 2;
    case 'b':
    case 'B':
        return 1;
    default:
        return 0;
    }
}

static PyObject *read_value(Reader *in, char code) {
    int size = fixed_size(code);
    if (size > in->end - in->at) {
        short_row();
        return NULL;
    }
    switch (code) {
    case 'S':
    case 'Y':
        return read_string(in, code == 'S');
    case 'U':
        return read_uuid(in);
    case 'M':
        return read_map(in);
    case 'F': {
        unsigned long long bits = read_le(in, 8);
        double number;
        memcpy(&number, &bits, 8);
        return PyFloat_FromDouble(number);
    }
    case 'b':
        return PyBool_FromLong((long)read_le(in, 1));
    case 'T':
        return PyLong_FromLongLong((long long)read_le(in, 8));
    case 'B':
    case 'H':
    case 'Q':
        return PyLong_FromUnsignedLongLong(read_le(in, size));
    default:
        PyErr_Format(PyExc_ValueError, "unknown column code '%c'", code);
        return NULL;
    }
}

static PyObject *read_array(Reader *in, char code) {
    size_t count;
    if (read_varint(in, &count) < 0) {
        return NULL;
    }
    if (count > (size_t)(in->end - in->at)) { /* every item takes a byte at least */
        short_row();
        return NULL;
    }
    PyObject *items = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; items != NULL && i < count; i++) {
        PyObject *item = read_value(in, code);
        if (item == NULL) {
            Py_CLEAR(items);
        } else {
            PyList_SET_ITEM(items, i, item);
        }
    }
    return items;
}

static PyObject *unpack_row(PyObject *module, PyObject *args) {
    const char *data, *schema;
    Py_ssize_t data_size, schema_size;
    if (!PyArg_ParseTuple(args, "y#s#:unpack_row", &data, &data_size, &schema, &schema_size)) {
        return NULL;
    }
    Reader in = {(const unsigned char *)data, (const unsigned char *)data + data_size};
    PyObject *values = PyList_New(0);
    for (Py_ssize_t i = 0; values != NULL && i < schema_size; i++) {
        PyObject *value;
        char code = schema[i];
        if ((code == '?' || code == '[') && i + 1 == schema_size) {
            PyErr_SetString(PyExc_ValueError, "a schema must not end with a prefix");
            value = NULL;
        } else if (code == '?') {
            code = schema[++i];
            if (in.at >= in.end) {
                short_row();
                value = NULL;
            } else if (*in.at++) {
                value = Py_NewRef(Py_None);
            } else {
                value = read_value(&in, code);
            }
        } else if (code == '[') {
            value = read_array(&in, schema[++i]);
        } else {
            value = read_value(&in, code);
        }
        if (value == NULL || PyList_Append(values, value) < 0) {
            Py_CLEAR(values);
        }
        Py_XDECREF(value);
    }
    if (values != NULL && in.at != in.end) {
        PyErr_Format(PyExc_ValueError, "%zd bytes after the row's last column", (Py_ssize_t)(in.end - in.at));
        Py_CLEAR(values);
    }
    return values;
}

static PyMethodDef methods[] = {
    {"pack_rows", pack_rows, METH_VARARGS,
     "pack_rows(rows, schema) -> list of bytes: each row in RowBinary (see storage.rowbinary)."},
    {"unpack_row", unpack_row, METH_VARARGS, "unpack_row(data, schema) -> list: the values of a row pack_rows packed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "storage._rowbinary", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rowbinary(void) {
    return PyModule_Create(&definition);
}
