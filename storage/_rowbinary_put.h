/* Packing values into RowBinary: the buffer and the writers of the column types more than one C module writes
 * (`storage/_rowbinary.c` packs any row, `ingest/_fresh.c` writes the rows of SDK posts presumed new). Static, so
 * each module that includes it has its own copy. */
#ifndef TRACEHOUSE_ROWBINARY_PUT_H
#define TRACEHOUSE_ROWBINARY_PUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Buffer;

static PyObject *storable; /* storage.clickhouse.storable, imported on first need */
static PyObject *uuid_class; /* uuid.UUID, imported on first need */

static int reserve(Buffer *out, Py_ssize_t more) {
    if (out->size + more <= out->capacity) {
        return 0;
    }
    Py_ssize_t capacity = out->capacity * 2;
    if (capacity < out->size + more) {
        capacity = out->size + more;
    }
    char *data = PyMem_Realloc(out->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->capacity = capacity;
    return 0;
}

static int put(Buffer *out, const void *data, Py_ssize_t size) {
    if (reserve(out, size) < 0) {
        return -1;
    }
    memcpy(out->data + out->size, data, size);
    out->size += size;
    return 0;
}

static int put_varint(Buffer *out, size_t value) {
    unsigned char bytes[10];
    int count = 0;
    while (value >= 0x80) {
        bytes[count++] = (unsigned char)(value & 0x7F) | 0x80;
        value >>= 7;
    }
    bytes[count++] = (unsigned char)value;
    return put(out, bytes, count);
}

/* Little-endian, whatever the host's order. */
static int put_le(Buffer *out, unsigned long long value, int size) {
    unsigned char bytes[8];
    for (int i = 0; i < size; i++) {
        bytes[i] = (unsigned char)(value >> (8 * i));
    }
    return put(out, bytes, size);
}

/* A String value: its length, then its bytes. */
static int put_bytes(Buffer *out, const char *data, Py_ssize_t size) {
    return put_varint(out, size) < 0 ? -1 : put(out, data, size);
}

static PyObject *import_attr(PyObject **cache, const char *module, const char *name) {
    if (*cache == NULL) {
        PyObject *imported = PyImport_ImportModule(module);
        if (imported == NULL) {
            return NULL;
        }
        *cache = PyObject_GetAttrString(imported, name);
        Py_DECREF(imported);
    }
    return *cache;
}

static int put_text(Buffer *out, PyObject *text) {
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);
    if (data == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            return -1;
        }
        PyErr_Clear();
        if (import_attr(&storable, "storage.clickhouse", "storable") == NULL) {
            return -1;
        }
        PyObject *fixed = PyObject_CallOneArg(storable, text);
        if (fixed == NULL) {
            return -1;
        }
        data = PyUnicode_AsUTF8AndSize(fixed, &size);
        int result = data == NULL ? -1 : put_bytes(out, data, size);
        Py_DECREF(fixed);
        return result;
    }
    return put_bytes(out, data, size);
}

static int put_string(Buffer *out, PyObject *value) {
    if (PyBytes_Check(value)) {
        return put_bytes(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    if (PyUnicode_Check(value)) {
        return put_text(out, value);
    }
    PyObject *text = PyObject_Str(value);
    if (text == NULL) {
        return -1;
    }
    int result = put_text(out, text);
    Py_DECREF(text);
    return result;
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The 16 bytes of a UUID's canonical text (8-4-4-4-12 hex digits), or -1 for any other text. */
static int canonical_uuid(PyObject *value, unsigned char bytes[16]) {
    if (!PyUnicode_IS_ASCII(value) || PyUnicode_GET_LENGTH(value) != 36) {
        return -1;
    }
    const char *text = (const char *)PyUnicode_DATA(value);
    int count = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') {
                return -1;
            }
            continue;
        }
        int digit = hex_digit(text[i]);
        if (digit < 0) {
            return -1;
        }
        if (count % 2 == 0) {
            bytes[count / 2] = (unsigned char)(digit << 4);
        } else {
            bytes[count / 2] |= (unsigned char)digit;
        }
        count++;
    }
    return 0;
}

/* Any other form `uuid.UUID` reads, through it. */
static int other_uuid(PyObject *value, unsigned char bytes[16]) {
    if (import_attr(&uuid_class, "uuid", "UUID") == NULL) {
        return -1;
    }
    PyObject *parsed;
    if (PyObject_TypeCheck(value, (PyTypeObject *)uuid_class)) {
        parsed = Py_NewRef(value);
    } else {
        parsed = PyObject_CallOneArg(uuid_class, value);
        if (parsed == NULL) {
            return -1;
        }
    }
    PyObject *data = PyObject_GetAttrString(parsed, "bytes");
    Py_DECREF(parsed);
    if (data == NULL) {
        return -1;
    }
    int result = 0;
    if (!PyBytes_Check(data) || PyBytes_GET_SIZE(data) != 16) {
        PyErr_SetString(PyExc_ValueError, "a UUID's bytes are not 16 bytes");
        result = -1;
    } else {
        memcpy(bytes, PyBytes_AS_STRING(data), 16);
    }
    Py_DECREF(data);
    return result;
}

/* ClickHouse's UUID is two UInt64, high half first, each little-endian: each half of the text's bytes reversed. */
static int put_uuid(Buffer *out, PyObject *value) {
    unsigned char bytes[16], reversed[16];
    if (!(PyUnicode_Check(value) && canonical_uuid(value, bytes) == 0) && other_uuid(value, bytes) < 0) {
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        reversed[i] = bytes[7 - i];
        reversed[8 + i] = bytes[15 - i];
    }
    return put(out, reversed, 16);
}

#endif
