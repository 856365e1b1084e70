/* OTLP/HTTP protobuf trace requests read from the wire straight into the Python values the mapping works on
 * (`ingest.otlp.values`: Span, Event and Link tuples, attributes as dicts).
 *
 * protobuf's upb parses a request quickly, but every field read from Python then makes a wrapper object, and
 * turning attributes into plain values (`values.attributes`) through them was about a third of a decode worker's
 * instructions per span (callgrind on tests/bench/otlp.py's spans: ~150,000 of 501,000). This reader makes only
 * the values the mapping keeps.
 *
 * It reads the messages of opentelemetry-proto's trace service as the installed package defines them
 * (tests/unit/test_otlp_wire.py checks the field numbers and types) and declines (returns None) anything it cannot
 * decide exactly as upb does: malformed wire data, a field it does not know or in another wire type (upb keeps
 * those as unknown fields), a singular field given twice (upb merges or overwrites), two members of a oneof,
 * string fields that are not UTF-8 (upb refuses the request), nesting deeper than MAX_DEPTH messages. Then the
 * request is parsed by upb, which also says what is wrong with a bad one, and converted in Python; the tests hold
 * both to the same values on random and damaged requests.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* Below upb's own limit (100), so that whatever this accepts upb would have parsed. */
#define MAX_DEPTH 64

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_DELIMITED = 2, WIRE_FIXED32 = 5 };

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

typedef struct {
    PyTypeObject *span, *event, *link; /* the tuple types of `ingest.otlp.values` */
    int depth;
    int declined; /* set when a reader returns NULL without a Python error */
} Context;

static int varint(Cursor *c, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end) {
            return -1;
        }
        unsigned char byte = *c->p++;
        if (shift == 63 && byte > 1) {
            return -1;
        }
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
    }
    return -1;
}

static int fixed(Cursor *c, int size, uint64_t *out) {
    if (c->end - c->p < size) {
        return -1;
    }
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; i--) {
        value = (value << 8) | c->p[i];
    }
    c->p += size;
    *out = value;
    return 0;
}

/* The next field's number and wire type: 1, or 0 at the end, or -1 when malformed. */
static int next_field(Cursor *c, uint32_t *field, int *wire) {
    if (c->p >= c->end) {
        return 0;
    }
    uint64_t tag;
    if (varint(c, &tag) < 0 || tag > UINT32_MAX || (tag >> 3) == 0) {
        return -1;
    }
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    return 1;
}

static int delimited(Cursor *c, Cursor *inner) {
    uint64_t size;
    if (varint(c, &size) < 0 || size > (uint64_t)(c->end - c->p)) {
        return -1;
    }
    inner->p = c->p;
    inner->end = c->p + size;
    c->p += size;
    return 0;
}

static PyObject *decline(Context *ctx) {
    ctx->declined = 1;
    return NULL;
}

/* A string field: UTF-8 or declined, as upb refuses other text in a proto3 string. */
static PyObject *text(Context *ctx, Cursor *c) {
    Cursor inner;
    if (delimited(c, &inner) < 0) {
        return decline(ctx);
    }
    PyObject *value = PyUnicode_DecodeUTF8((const char *)inner.p, inner.end - inner.p, NULL);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return decline(ctx);
    }
    return value;
}

static PyObject *blob(Context *ctx, Cursor *c) {
    Cursor inner;
    if (delimited(c, &inner) < 0) {
        return decline(ctx);
    }
    return PyBytes_FromStringAndSize((const char *)inner.p, inner.end - inner.p);
}

/* A bytes value as `bytes.hex()` writes it, as `values.value` does. */
static PyObject *hex_text(Context *ctx, Cursor *c) {
    static const char digits[] = "0123456789abcdef";
    Cursor inner;
    if (delimited(c, &inner) < 0) {
        return decline(ctx);
    }
    Py_ssize_t size = inner.end - inner.p;
    PyObject *value = PyUnicode_New(2 * size, 127);
    if (value != NULL) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(value);
        for (Py_ssize_t i = 0; i < size; i++) {
            out[2 * i] = digits[inner.p[i] >> 4];
            out[2 * i + 1] = digits[inner.p[i] & 15];
        }
    }
    return value;
}

/* A field read only to be checked as upb checks it (a varint, a fixed-size number, a string that must be UTF-8),
 * its value unused. 0, or -1 with the context declined or a Python error set. */
static int skip(Context *ctx, Cursor *c, int wire, int is_text) {
    uint64_t unused;
    if (wire == WIRE_VARINT && !is_text) {
        return varint(c, &unused) < 0 ? (decline(ctx), -1) : 0;
    }
    if ((wire == WIRE_FIXED64 || wire == WIRE_FIXED32) && !is_text) {
        return fixed(c, wire == WIRE_FIXED64 ? 8 : 4, &unused) < 0 ? (decline(ctx), -1) : 0;
    }
    if (wire == WIRE_DELIMITED && is_text) {
        PyObject *value = text(ctx, c);
        Py_XDECREF(value);
        return value == NULL ? -1 : 0;
    }
    decline(ctx);
    return -1;
}

static int enter(Context *ctx) {
    if (++ctx->depth > MAX_DEPTH) {
        decline(ctx);
        return -1;
    }
    return 0;
}

/* A field given once at most, in its wire type; else declined. */
#define ONCE(bit, expected_wire)                                                                                   \
    do {                                                                                                           \
        if ((seen & (1u << (bit))) || wire != (expected_wire)) {                                                   \
            goto declined;                                                                                         \
        }                                                                                                          \
        seen |= 1u << (bit);                                                                                       \
    } while (0)

static int key_value_into(Context *ctx, Cursor c, PyObject *dict);

/* An AnyValue as `values.value` makes it (None when no member is set). */
static PyObject *any_value(Context *ctx, Cursor c) {
    if (enter(ctx) < 0) {
        return NULL;
    }
    PyObject *value = NULL;
    Cursor inner;
    uint64_t number;
    uint32_t field;
    int wire, next, members = 0;
    while ((next = next_field(&c, &field, &wire)) == 1) {
        if (++members > 1) {
            goto declined;
        }
        switch (field) {
        case 1:
            if (wire != WIRE_DELIMITED) {
                goto declined;
            }
            value = text(ctx, &c);
            break;
        case 2:
        case 3:
            if (wire != WIRE_VARINT || varint(&c, &number) < 0) {
                goto declined;
            }
            value = field == 2 ? PyBool_FromLong(number != 0) : PyLong_FromLongLong((long long)(int64_t)number);
            break;
        case 4: {
            double real;
            if (wire != WIRE_FIXED64 || fixed(&c, 8, &number) < 0) {
                goto declined;
            }
            memcpy(&real, &number, sizeof real);
            value = PyFloat_FromDouble(real);
            break;
        }
        case 5:
            if (wire != WIRE_DELIMITED || delimited(&c, &inner) < 0) {
                goto declined;
            }
            value = PyList_New(0);
            if (value == NULL) {
                goto failed;
            }
            if (enter(ctx) < 0) {
                ctx->depth--;
                goto failed;
            }
            while ((next = next_field(&inner, &field, &wire)) == 1) {
                Cursor item_data;
                if (field != 1 || wire != WIRE_DELIMITED || delimited(&inner, &item_data) < 0) {
                    ctx->depth--;
                    goto declined;
                }
                PyObject *item = any_value(ctx, item_data);
                if (item == NULL || PyList_Append(value, item) < 0) {
                    Py_XDECREF(item);
                    ctx->depth--;
                    goto failed;
                }
                Py_DECREF(item);
            }
            ctx->depth--;
            if (next < 0) {
                goto declined;
            }
            break;
        case 6:
            if (wire != WIRE_DELIMITED || delimited(&c, &inner) < 0) {
                goto declined;
            }
            value = PyDict_New();
            if (value == NULL) {
                goto failed;
            }
            if (enter(ctx) < 0) {
                ctx->depth--;
                goto failed;
            }
            while ((next = next_field(&inner, &field, &wire)) == 1) {
                Cursor item_data;
                if (field != 1 || wire != WIRE_DELIMITED || delimited(&inner, &item_data) < 0) {
                    ctx->depth--;
                    goto declined;
                }
                if (key_value_into(ctx, item_data, value) < 0) {
                    ctx->depth--;
                    goto failed;
                }
            }
            ctx->depth--;
            if (next < 0) {
                goto declined;
            }
            break;
        case 7:
            if (wire != WIRE_DELIMITED) {
                goto declined;
            }
            value = hex_text(ctx, &c);
            break;
        default: /* string_value_strindex, or a field this reader does not know */
            goto declined;
        }
        if (value == NULL) {
            goto failed;
        }
    }
    if (next < 0) {
        goto declined;
    }
    ctx->depth--;
    if (value == NULL) {
        Py_RETURN_NONE;
    }
    return value;
declined:
    decline(ctx);
failed:
    Py_XDECREF(value);
    ctx->depth--;
    return NULL;
}

/* One KeyValue set in `dict`, as `values.attributes` does (a later key replaces an earlier one's value). */
static int key_value_into(Context *ctx, Cursor c, PyObject *dict) {
    if (enter(ctx) < 0) {
        return -1;
    }
    PyObject *key = NULL, *value = NULL;
    Cursor inner;
    uint32_t field;
    unsigned seen = 0;
    int wire, next, result = -1;
    while ((next = next_field(&c, &field, &wire)) == 1) {
        if (field == 1) {
            ONCE(1, WIRE_DELIMITED);
            if ((key = text(ctx, &c)) == NULL) {
                goto done;
            }
        } else if (field == 2) {
            ONCE(2, WIRE_DELIMITED);
            if (delimited(&c, &inner) < 0) {
                goto declined;
            }
            if ((value = any_value(ctx, inner)) == NULL) {
                goto done;
            }
        } else { /* key_strindex, or a field this reader does not know */
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    if (key == NULL && (key = PyUnicode_FromStringAndSize("", 0)) == NULL) {
        goto done;
    }
    result = PyDict_SetItem(dict, key, value == NULL ? Py_None : value);
    goto done;
declined:
    decline(ctx);
done:
    Py_XDECREF(key);
    Py_XDECREF(value);
    ctx->depth--;
    return result;
}

/* A repeated KeyValue field's next element, set in `dict`. */
static int attribute_into(Context *ctx, Cursor *c, int wire, PyObject *dict) {
    Cursor inner;
    if (wire != WIRE_DELIMITED || delimited(c, &inner) < 0) {
        decline(ctx);
        return -1;
    }
    return key_value_into(ctx, inner, dict);
}

/* A tuple of `type` (a NamedTuple of `ingest.otlp.values`) holding `items`, whose references it takes. */
static PyObject *record(PyTypeObject *type, PyObject **items, Py_ssize_t count) {
    PyObject *made = type == &PyTuple_Type ? PyTuple_New(count) : type->tp_alloc(type, count);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (made == NULL) {
            Py_DECREF(items[i]);
        } else {
            PyTuple_SET_ITEM(made, i, items[i]);
        }
    }
    return made;
}

/* Defaults of proto3 fields not given: "", b"", 0. */
static int defaults(PyObject **items, const char *kinds, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        if (items[i] != NULL) {
            continue;
        }
        switch (kinds[i]) {
        case 's':
            items[i] = PyUnicode_FromStringAndSize("", 0);
            break;
        case 'b':
            items[i] = PyBytes_FromStringAndSize("", 0);
            break;
        case 'i':
            items[i] = PyLong_FromLong(0);
            break;
        case 'd':
            items[i] = PyDict_New();
            break;
        default:
            items[i] = PyList_New(0);
        }
        if (items[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

static void clear(PyObject **items, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_CLEAR(items[i]);
    }
}

/* Sets items[index] from a one-time field already checked by ONCE; 0, or -1 (declined or an error). */
static int set_item(PyObject **items, int index, PyObject *value) {
    items[index] = value;
    return value == NULL ? -1 : 0;
}

enum { E_TIME, E_NAME, E_ATTRIBUTES, E_COUNT };

static PyObject *span_event(Context *ctx, Cursor c) {
    PyObject *items[E_COUNT] = {NULL};
    uint64_t number;
    uint32_t field;
    unsigned seen = 0;
    int wire, next;
    if (enter(ctx) < 0) {
        return NULL;
    }
    if ((items[E_ATTRIBUTES] = PyDict_New()) == NULL) {
        goto failed;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        switch (field) {
        case 1:
            ONCE(1, WIRE_FIXED64);
            if (fixed(&c, 8, &number) < 0) {
                goto declined;
            }
            if (set_item(items, E_TIME, PyLong_FromUnsignedLongLong(number)) < 0) {
                goto failed;
            }
            break;
        case 2:
            ONCE(2, WIRE_DELIMITED);
            if (set_item(items, E_NAME, text(ctx, &c)) < 0) {
                goto failed;
            }
            break;
        case 3:
            if (attribute_into(ctx, &c, wire, items[E_ATTRIBUTES]) < 0) {
                goto failed;
            }
            break;
        case 4:
            ONCE(4, WIRE_VARINT);
            if (skip(ctx, &c, wire, 0) < 0) {
                goto failed;
            }
            break;
        default:
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    if (defaults(items, "isd", E_COUNT) < 0) {
        goto failed;
    }
    ctx->depth--;
    return record(ctx->event, items, E_COUNT);
declined:
    decline(ctx);
failed:
    clear(items, E_COUNT);
    ctx->depth--;
    return NULL;
}

enum { L_TRACE, L_SPAN, L_ATTRIBUTES, L_COUNT };

static PyObject *span_link(Context *ctx, Cursor c) {
    PyObject *items[L_COUNT] = {NULL};
    uint32_t field;
    unsigned seen = 0;
    int wire, next;
    if (enter(ctx) < 0) {
        return NULL;
    }
    if ((items[L_ATTRIBUTES] = PyDict_New()) == NULL) {
        goto failed;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        switch (field) {
        case 1:
        case 2:
            ONCE(field, WIRE_DELIMITED);
            if (set_item(items, field == 1 ? L_TRACE : L_SPAN, blob(ctx, &c)) < 0) {
                goto failed;
            }
            break;
        case 3:
            ONCE(3, WIRE_DELIMITED);
            if (skip(ctx, &c, wire, 1) < 0) {
                goto failed;
            }
            break;
        case 4:
            if (attribute_into(ctx, &c, wire, items[L_ATTRIBUTES]) < 0) {
                goto failed;
            }
            break;
        case 5:
        case 6:
            ONCE(field, field == 5 ? WIRE_VARINT : WIRE_FIXED32);
            if (skip(ctx, &c, wire, 0) < 0) {
                goto failed;
            }
            break;
        default:
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    if (defaults(items, "bbd", L_COUNT) < 0) {
        goto failed;
    }
    ctx->depth--;
    return record(ctx->link, items, L_COUNT);
declined:
    decline(ctx);
failed:
    clear(items, L_COUNT);
    ctx->depth--;
    return NULL;
}

/* Span's fields as `values.Span` orders them. */
enum {
    S_TRACE,
    S_SPAN,
    S_TRACE_STATE,
    S_PARENT,
    S_NAME,
    S_KIND,
    S_START,
    S_END,
    S_ATTRIBUTES,
    S_EVENTS,
    S_LINKS,
    S_STATUS_CODE,
    S_STATUS_MESSAGE,
    S_COUNT,
};
static const char SPAN_KINDS[] = "bbsbsiiidllis";

/* A Status message's code and text into the span's items. */
static int status_into(Context *ctx, Cursor c, PyObject **items) {
    uint64_t number;
    uint32_t field;
    unsigned seen = 0;
    int wire, next;
    if (enter(ctx) < 0) {
        return -1;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        if (field == 2) {
            ONCE(2, WIRE_DELIMITED);
            if (set_item(items, S_STATUS_MESSAGE, text(ctx, &c)) < 0) {
                goto failed;
            }
        } else if (field == 3) {
            ONCE(3, WIRE_VARINT);
            if (varint(&c, &number) < 0) {
                goto declined;
            }
            /* an enum is an int32: upb keeps the low 32 bits of the varint */
            if (set_item(items, S_STATUS_CODE, PyLong_FromLong((int32_t)(uint32_t)number)) < 0) {
                goto failed;
            }
        } else {
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    ctx->depth--;
    return 0;
declined:
    decline(ctx);
failed:
    ctx->depth--;
    return -1;
}

/* An element of a repeated message field, appended to `list` by `read`. */
static int append(Context *ctx, Cursor *c, int wire, PyObject *list, PyObject *(*read)(Context *, Cursor)) {
    Cursor inner;
    if (wire != WIRE_DELIMITED || delimited(c, &inner) < 0) {
        decline(ctx);
        return -1;
    }
    PyObject *item = read(ctx, inner);
    if (item == NULL) {
        return -1;
    }
    int result = PyList_Append(list, item);
    Py_DECREF(item);
    return result;
}

static PyObject *span_message(Context *ctx, Cursor c) {
    PyObject *items[S_COUNT] = {NULL};
    Cursor inner;
    uint64_t number;
    uint32_t field;
    unsigned seen = 0;
    int wire, next;
    if (enter(ctx) < 0) {
        return NULL;
    }
    if ((items[S_ATTRIBUTES] = PyDict_New()) == NULL || (items[S_EVENTS] = PyList_New(0)) == NULL ||
        (items[S_LINKS] = PyList_New(0)) == NULL) {
        goto failed;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        switch (field) {
        case 1:
        case 2:
        case 4:
            ONCE(field, WIRE_DELIMITED);
            if (set_item(items, field == 1 ? S_TRACE : field == 2 ? S_SPAN : S_PARENT, blob(ctx, &c)) < 0) {
                goto failed;
            }
            break;
        case 3:
        case 5:
            ONCE(field, WIRE_DELIMITED);
            if (set_item(items, field == 3 ? S_TRACE_STATE : S_NAME, text(ctx, &c)) < 0) {
                goto failed;
            }
            break;
        case 6:
            ONCE(6, WIRE_VARINT);
            if (varint(&c, &number) < 0) {
                goto declined;
            }
            if (set_item(items, S_KIND, PyLong_FromLong((int32_t)(uint32_t)number)) < 0) {
                goto failed;
            }
            break;
        case 7:
        case 8:
            ONCE(field, WIRE_FIXED64);
            if (fixed(&c, 8, &number) < 0) {
                goto declined;
            }
            if (set_item(items, field == 7 ? S_START : S_END, PyLong_FromUnsignedLongLong(number)) < 0) {
                goto failed;
            }
            break;
        case 9:
            if (attribute_into(ctx, &c, wire, items[S_ATTRIBUTES]) < 0) {
                goto failed;
            }
            break;
        case 10:
        case 12:
        case 14:
        case 16:
            ONCE(field, field == 16 ? WIRE_FIXED32 : WIRE_VARINT);
            if (skip(ctx, &c, wire, 0) < 0) {
                goto failed;
            }
            break;
        case 11:
            if (append(ctx, &c, wire, items[S_EVENTS], span_event) < 0) {
                goto failed;
            }
            break;
        case 13:
            if (append(ctx, &c, wire, items[S_LINKS], span_link) < 0) {
                goto failed;
            }
            break;
        case 15:
            ONCE(15, WIRE_DELIMITED);
            if (delimited(&c, &inner) < 0) {
                goto declined;
            }
            if (status_into(ctx, inner, items) < 0) {
                goto failed;
            }
            break;
        default:
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    if (defaults(items, SPAN_KINDS, S_COUNT) < 0) {
        goto failed;
    }
    ctx->depth--;
    return record(ctx->span, items, S_COUNT);
declined:
    decline(ctx);
failed:
    clear(items, S_COUNT);
    ctx->depth--;
    return NULL;
}

/* A Resource's or an InstrumentationScope's fields: attributes into `attributes`, name and version into `names`
 * (NULL for a Resource, which has neither). Field 3 of a Resource (entity_refs) is declined. */
static int described_into(Context *ctx, Cursor c, PyObject *attributes, PyObject **names) {
    uint32_t field;
    unsigned seen = 0;
    int wire, next;
    int attributes_field = names == NULL ? 1 : 3, count_field = names == NULL ? 2 : 4;
    if (enter(ctx) < 0) {
        return -1;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        if (field == (uint32_t)attributes_field) {
            if (attribute_into(ctx, &c, wire, attributes) < 0) {
                goto failed;
            }
        } else if (field == (uint32_t)count_field) {
            ONCE(field, WIRE_VARINT);
            if (skip(ctx, &c, wire, 0) < 0) {
                goto failed;
            }
        } else if (names != NULL && (field == 1 || field == 2)) {
            ONCE(field, WIRE_DELIMITED);
            if ((names[field - 1] = text(ctx, &c)) == NULL) {
                goto failed;
            }
        } else {
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    ctx->depth--;
    return 0;
declined:
    decline(ctx);
failed:
    ctx->depth--;
    return -1;
}

/* A ResourceSpans as (resource attributes, [scope spans]) when `count` is 2, a ScopeSpans as (name, version,
 * attributes, [spans]) when it is 4: both are a described message (field 1), its children (field 2) and a
 * schema URL (field 3), which the mapping does not read. */
static PyObject *grouped(Context *ctx, Cursor c, Py_ssize_t count, PyObject *(*child)(Context *, Cursor)) {
    PyObject *items[4] = {NULL};
    PyObject **names = count == 4 ? items : NULL;
    Cursor inner;
    uint32_t field;
    unsigned seen = 0;
    int wire, next;
    if (enter(ctx) < 0) {
        return NULL;
    }
    if ((items[count - 2] = PyDict_New()) == NULL || (items[count - 1] = PyList_New(0)) == NULL) {
        goto failed;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        if (field == 1) {
            ONCE(1, WIRE_DELIMITED);
            if (delimited(&c, &inner) < 0) {
                goto declined;
            }
            if (described_into(ctx, inner, items[count - 2], names) < 0) {
                goto failed;
            }
        } else if (field == 2) {
            if (append(ctx, &c, wire, items[count - 1], child) < 0) {
                goto failed;
            }
        } else if (field == 3) {
            ONCE(3, WIRE_DELIMITED);
            if (skip(ctx, &c, wire, 1) < 0) {
                goto failed;
            }
        } else {
            goto declined;
        }
    }
    if (next < 0) {
        goto declined;
    }
    if (defaults(items, "ss", count - 2) < 0) {
        goto failed;
    }
    ctx->depth--;
    return record(&PyTuple_Type, items, count);
declined:
    decline(ctx);
failed:
    clear(items, count);
    ctx->depth--;
    return NULL;
}

static PyObject *scope_spans(Context *ctx, Cursor c) {
    return grouped(ctx, c, 4, span_message);
}

static PyObject *resource_spans(Context *ctx, Cursor c) {
    return grouped(ctx, c, 2, scope_spans);
}

static int is_plain_tuple_type(PyObject *type) {
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        return 0;
    }
    PyTypeObject *t = (PyTypeObject *)type;
    return t->tp_basicsize == PyTuple_Type.tp_basicsize && t->tp_itemsize == PyTuple_Type.tp_itemsize;
}

static PyObject *read_request(PyObject *module, PyObject *args) {
    Py_buffer body;
    PyObject *span_type, *event_type, *link_type;
    if (!PyArg_ParseTuple(args, "y*OOO:read_request", &body, &span_type, &event_type, &link_type)) {
        return NULL;
    }
    if (!is_plain_tuple_type(span_type) || !is_plain_tuple_type(event_type) || !is_plain_tuple_type(link_type)) {
        PyBuffer_Release(&body);
        PyErr_SetString(PyExc_TypeError, "read_request takes the tuple types Span, Event and Link");
        return NULL;
    }
    Context ctx = {(PyTypeObject *)span_type, (PyTypeObject *)event_type, (PyTypeObject *)link_type, 0, 0};
    Cursor c = {(const unsigned char *)body.buf, (const unsigned char *)body.buf + body.len};
    PyObject *request = PyList_New(0);
    uint32_t field;
    int wire, next;
    if (request == NULL) {
        PyBuffer_Release(&body);
        return NULL;
    }
    while ((next = next_field(&c, &field, &wire)) == 1) {
        if (field != 1 || append(&ctx, &c, wire, request, resource_spans) < 0) {
            if (field != 1) {
                ctx.declined = 1;
            }
            next = -1;
            break;
        }
    }
    PyBuffer_Release(&body);
    if (next < 0) {
        Py_DECREF(request);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return request;
}

static PyMethodDef methods[] = {
    {"read_request", read_request, METH_VARARGS,
     "read_request(body, Span, Event, Link): an ExportTraceServiceRequest's resource spans as "
     "[(resource attributes, [(scope name, version, attributes, [Span])])], or None where upb must read it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlp", NULL, -1, methods};

PyMODINIT_FUNC PyInit__otlp(void) {
    PyObject *made = PyModule_Create(&module);
    if (made == NULL) {
        return NULL;
    }
    /* The NamedTuples' fields, in the order this module fills them: `ingest.otlp.values` checks its own. */
    PyObject *span_fields =
        Py_BuildValue("(sssssssssssss)", "trace_id", "span_id", "trace_state", "parent_span_id", "name", "kind",
                      "start_time_unix_nano", "end_time_unix_nano", "attributes", "events", "links", "status_code",
                      "status_message");
    PyObject *event_fields = Py_BuildValue("(sss)", "time_unix_nano", "name", "attributes");
    PyObject *link_fields = Py_BuildValue("(sss)", "trace_id", "span_id", "attributes");
    if (span_fields == NULL || event_fields == NULL || link_fields == NULL ||
        PyModule_AddObject(made, "SPAN_FIELDS", span_fields) < 0) {
        goto failed;
    }
    span_fields = NULL;
    if (PyModule_AddObject(made, "EVENT_FIELDS", event_fields) < 0) {
        goto failed;
    }
    event_fields = NULL;
    if (PyModule_AddObject(made, "LINK_FIELDS", link_fields) < 0) {
        goto failed;
    }
    return made;
failed:
    Py_XDECREF(span_fields);
    Py_XDECREF(event_fields);
    Py_XDECREF(link_fields);
    Py_DECREF(made);
    return NULL;
}
