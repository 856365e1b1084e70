/* The row of an SDK post presumed new, validated, derived and packed in C (`ingest.fresh`'s fast path).
 *
 * Most runs reach tracehouse as one post of a run nothing is known of yet, whose row the decode worker builds
 * (`ingest.fresh`). In Python that took ~180,000 instructions per run of tests/bench/ingest.py's bodies (normalise,
 * merge, ancestry, the derived fields, packing): two thirds of a decode worker's work. `fresh_row` does the same
 * for posts in the form the SDK sends, from the parsed parts, writing the RowBinary row directly.
 *
 * It accepts only what it can decide exactly as the Python does, and declines (returns None) anything else: then
 * the Python path validates the post (and says what is wrong with it) and builds its row. So it never rejects a
 * request and never stores a run differently; tests/unit/test_fresh_c.py checks that it builds the same bytes
 * and the same batcher fields as the Python on random posts, and that what it declines is what it must.
 * Values it derives text from that are not strings or integers (floats, nested metadata, usage details) are
 * formatted by the same Python functions the Python path calls.
 */
#include "../storage/_rowbinary_put.h"

#include <math.h>

/* The run fields it reads, as `ingest.validate` knows them. */
enum {
    F_ID,
    F_NAME,
    F_RUN_TYPE,
    F_START,
    F_END,
    F_TRACE,
    F_PARENT,
    F_SESSION_ID,
    F_SESSION_NAME,
    F_REFERENCE,
    F_DOTTED,
    F_TAGS,
    F_INPUTS,
    F_OUTPUTS,
    F_EXTRA,
    F_EVENTS,
    F_SERIALIZED,
    F_ERROR,
    F_COUNT,
};
static const char *FIELD_NAMES[F_COUNT] = {
    "id", "name", "run_type", "start_time", "end_time", "trace_id", "parent_run_id", "session_id", "session_name",
    "reference_example_id", "dotted_order", "tags", "inputs", "outputs", "extra", "events", "serialized", "error",
};
static PyObject *field_names[F_COUNT];

static const char *RUN_TYPES[] = {"tool", "chain", "llm", "retriever", "embedding", "prompt", "parser"};

/* `ingest.derive`'s usage keys, in the order of their columns. */
enum { U_PROMPT, U_COMPLETION, U_TOTAL, U_PROMPT_COST, U_COMPLETION_COST, U_TOTAL_COST, U_DETAILS, U_COUNT = 10 };
static const char *USAGE_KEYS[U_COUNT] = {
    "input_tokens",        "output_tokens",        "total_tokens",       "input_cost",         "output_cost",
    "total_cost",          "input_token_details",  "output_token_details", "input_cost_details", "output_cost_details",
};
static PyObject *usage_keys[U_COUNT];
static const char *THREAD_KEYS[] = {"session_id", "conversation_id", "thread_id"};
static PyObject *thread_keys[3];
static PyObject *s_metadata, *s_usage_metadata, *s_name, *s_data, *s_time, *s_new_token, *s_llm;

static PyObject *loads;      /* orjson.loads */
static PyObject *dumps;      /* schemas.jsonutil.dumps */
static PyObject *dumps_str;  /* schemas.jsonutil.dumps_str */
static PyObject *text_value; /* ingest.derive.text_value */

#define MAX_KV_ENTRIES 100 /* ingest.derive's */
#define MAX_KV_VALUE 256
#define MAX_NESTING 200 /* schemas.jsonutil's, checked at import by ingest.fresh */
#define DECLINE 1 /* a step's result when the post is not one this path decides: not an error */
/* Times whose microseconds since the epoch a double holds exactly: `storage.runs.ticks` goes through a float
 * timestamp, which this path computes the same way only below 2^53 (until 2255). */
#define EXACT_MICROS (1LL << 53)

/* Whether the 36 characters at `text` are a UUID's canonical text (`schemas.runs.CANONICAL_UUID`: lower case). */
static int canonical_chars(const char *text) {
    for (int i = 0; i < 36; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return 0;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int is_canonical_uuid(PyObject *value) {
    return PyUnicode_Check(value) && PyUnicode_IS_ASCII(value) && PyUnicode_GET_LENGTH(value) == 36 &&
           canonical_chars((const char *)PyUnicode_DATA(value));
}

static int digits(const char *text, int count) {
    int value = 0;
    for (int i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

static long long days_from_civil(long long year, int month, int day) {
    year -= month <= 2;
    long long era = (year >= 0 ? year : year - 399) / 400;
    long long of_era = year - era * 400;
    long long of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    return era * 146097 + of_era * 365 + of_era / 4 - of_era / 100 + of_year - 719468;
}

/* The SDK's time text, `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, as `storage.runs.ticks` of it: 0 with `*ticks` set,
 * DECLINE for any other text or a time outside what this path computes exactly. `*in_range`: within the years
 * ClickHouse stores (`schemas.runs.EARLIEST_TIME`, `LATEST_TIME`). */
static int sdk_time(PyObject *value, long long *ticks, int *in_range) {
    if (!PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value) || PyUnicode_GET_LENGTH(value) != 32) {
        return DECLINE;
    }
    const char *t = (const char *)PyUnicode_DATA(value);
    if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != '.' ||
        memcmp(t + 26, "+00:00", 6) != 0) {
        return DECLINE;
    }
    int year = digits(t, 4), month = digits(t + 5, 2), day = digits(t + 8, 2);
    int hour = digits(t + 11, 2), minute = digits(t + 14, 2), second = digits(t + 17, 2), micro = digits(t + 20, 6);
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
        second < 0 || second > 59 || micro < 0) {
        return DECLINE;
    }
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap)) {
        return DECLINE;
    }
    long long seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    long long micros = seconds * 1000000 + micro;
    if (micros >= EXACT_MICROS || micros <= -EXACT_MICROS) {
        return DECLINE;
    }
    /* As `math.floor(value.timestamp()) * 1_000_000 + value.microsecond`: the timestamp is micros / 10^6 rounded
     * to a double (exact here), and its floor can be the next second when it rounds up. */
    *ticks = (long long)floor((double)micros / 1e6) * 1000000 + micro;
    *in_range = year >= 1900 && year <= 2299;
    return 0;
}

/* A field of the post: from its own part if it has one (even null), else from the main part; NULL when absent or
 * null (`validate.normalise` drops None), with `*failed` set on an error. Only the payload fields, from F_INPUTS
 * on (`schemas.runs.PAYLOAD_FIELDS`), have parts of their own. */
static PyObject *field(PyObject *main, PyObject *payloads, int which, int *failed) {
    PyObject *value = which >= F_INPUTS ? PyDict_GetItemWithError(payloads, field_names[which]) : NULL;
    if (value == NULL && !PyErr_Occurred()) {
        value = PyDict_GetItemWithError(main, field_names[which]);
    }
    if (value == NULL && PyErr_Occurred()) {
        *failed = 1;
    }
    return value == Py_None ? NULL : value;
}

/* Text cut to MAX_KV_VALUE code points, as `value[:MAX_KV_VALUE]`. */
static int put_cut(Buffer *out, PyObject *text) {
    if (PyUnicode_GET_LENGTH(text) <= MAX_KV_VALUE) {
        return put_text(out, text);
    }
    if (PyUnicode_IS_ASCII(text)) {
        return put_bytes(out, (const char *)PyUnicode_DATA(text), MAX_KV_VALUE);
    }
    PyObject *cut = PyUnicode_Substring(text, 0, MAX_KV_VALUE);
    if (cut == NULL) {
        return -1;
    }
    int result = put_text(out, cut);
    Py_DECREF(cut);
    return result;
}

/* `derive.text_value(value)[:MAX_KV_VALUE]`: booleans and integers here, as orjson writes them; the rest through
 * `text_value`. */
static int put_text_value(Buffer *out, PyObject *value) {
    if (PyUnicode_Check(value)) {
        return put_cut(out, value);
    }
    if (value == Py_True || value == Py_False) {
        return value == Py_True ? put_bytes(out, "true", 4) : put_bytes(out, "false", 5);
    }
    PyObject *text = PyLong_CheckExact(value) ? PyObject_Str(value) : PyObject_CallOneArg(text_value, value);
    if (text == NULL) {
        return -1;
    }
    int result = PyUnicode_Check(text) ? put_cut(out, text) : -1;
    if (result < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "text_value must return text");
    }
    Py_DECREF(text);
    return result;
}

/* `derive.flatten`'s entries, in `out`, counted in `*count`; `path` holds the prefix. A key holding a dot could
 * give two leaves one path (`{"a.b": 1, "a": {"b": 2}}`), which Python's dict keeps once: DECLINE. */
static int flatten_into(Buffer *out, Buffer *path, PyObject *node, int *count) {
    Py_ssize_t prefix = path->size, at = 0, index = 0;
    PyObject *key = NULL, *value;
    int is_dict = PyDict_Check(node);
    for (;;) {
        if (is_dict) {
            if (!PyDict_Next(node, &at, &key, &value)) {
                return 0;
            }
        } else {
            if (index >= PyList_GET_SIZE(node)) {
                return 0;
            }
            value = PyList_GET_ITEM(node, index);
        }
        if (*count >= MAX_KV_ENTRIES) {
            return 0;
        }
        path->size = prefix;
        if (is_dict) {
            Py_ssize_t size;
            const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &size) : NULL;
            if (text == NULL) {
                PyErr_Clear();
                return DECLINE;
            }
            if (memchr(text, '.', size) != NULL) {
                return DECLINE;
            }
            if (put(path, text, size) < 0) {
                return -1;
            }
        } else {
            char number[24];
            int size = snprintf(number, sizeof(number), "%zd", index);
            if (put(path, number, size) < 0) {
                return -1;
            }
        }
        index++;
        int result = 0;
        if (PyUnicode_Check(value) || (value != Py_None && !PyDict_Check(value) && !PyList_Check(value))) {
            result = put_bytes(out, path->data, path->size) < 0 ? -1 : put_text_value(out, value);
            (*count)++;
        } else if ((PyDict_Check(value) && PyDict_GET_SIZE(value)) || (PyList_Check(value) && PyList_GET_SIZE(value))) {
            result = put(path, ".", 1) < 0 ? -1 : flatten_into(out, path, value, count);
        }
        if (result != 0) {
            return result;
        }
    }
}

/* A map column from entries written to `entries`: its count, then them. */
static int put_entries(Buffer *out, Buffer *entries, int count) {
    return put_varint(out, count) < 0 ? -1 : put(out, entries->data, entries->size);
}

static int put_flattened(Buffer *out, PyObject *value, Buffer *scratch, Buffer *path) {
    int count = 0;
    scratch->size = 0;
    path->size = 0;
    if (value != NULL) {
        int result = flatten_into(scratch, path, value, &count);
        if (result != 0) {
            return result;
        }
    }
    return put_entries(out, scratch, count);
}

/* `derive.metadata_map` */
static int put_metadata(Buffer *out, PyObject *metadata, Buffer *scratch) {
    int count = 0;
    scratch->size = 0;
    Py_ssize_t at = 0;
    PyObject *key, *value;
    while (metadata != NULL && PyDict_Next(metadata, &at, &key, &value)) {
        if (value == Py_None) {
            continue;
        }
        if (!PyUnicode_Check(key)) {
            return DECLINE;
        }
        if (put_text(scratch, key) < 0 || put_text_value(scratch, value) < 0) {
            return -1;
        }
        count++;
    }
    return put_entries(out, scratch, count);
}

/* `derive.thread_id` */
static int put_thread_id(Buffer *out, PyObject *metadata) {
    for (int i = 0; metadata != NULL && i < 3; i++) {
        PyObject *value = PyDict_GetItemWithError(metadata, thread_keys[i]);
        if (value == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        if (value == Py_None || (PyUnicode_Check(value) && PyUnicode_GET_LENGTH(value) == 0)) {
            continue;
        }
        return put_string(out, value);
    }
    return put_bytes(out, "", 0);
}

/* `derive.usage`'s columns, for an llm run. */
static int put_usage(Buffer *out, PyObject *run_type, PyObject *metadata, PyObject *outputs) {
    PyObject *found = NULL;
    if (PyUnicode_Compare(run_type, s_llm) == 0) {
        found = metadata ? PyDict_GetItemWithError(metadata, s_usage_metadata) : NULL;
        if (found == NULL && PyErr_Occurred()) {
            return -1;
        }
        if ((found == NULL || !PyDict_Check(found)) && outputs != NULL) {
            found = PyDict_GetItemWithError(outputs, s_usage_metadata);
            if (found == NULL && PyErr_Occurred()) {
                return -1;
            }
        }
        if (found != NULL && !PyDict_Check(found)) {
            found = NULL;
        }
    }
    unsigned long long tokens[3] = {0, 0, 0};
    int has_tokens[3] = {0, 0, 0};
    double costs[3];
    int has_cost[3] = {0, 0, 0};
    PyObject *details[4] = {NULL, NULL, NULL, NULL};
    int result = 0;
    for (int i = 0; found != NULL && i < U_COUNT && result == 0; i++) {
        PyObject *value = PyDict_GetItemWithError(found, usage_keys[i]);
        if (value == NULL || value == Py_None) {
            result = value == NULL && PyErr_Occurred() ? -1 : 0;
            continue;
        }
        if (i >= U_DETAILS) {
            if (PyDict_Check(value)) {
                details[i - U_DETAILS] = PyObject_CallOneArg(dumps_str, value);
                result = details[i - U_DETAILS] == NULL ? -1 : 0;
            }
        } else if (i < U_PROMPT_COST) {
            if (PyLong_Check(value)) {
                int overflow;
                long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
                if (number == -1 && PyErr_Occurred()) {
                    result = -1;
                } else if (!overflow && number >= 0) {
                    tokens[i] = (unsigned long long)number;
                    has_tokens[i] = 1;
                }
            } else if (PyFloat_Check(value)) {
                double number = PyFloat_AS_DOUBLE(value);
                if (number >= 0 && number < 9223372036854775808.0) { /* 0 <= value <= 2**63 - 1, exactly */
                    tokens[i] = (unsigned long long)number;
                    has_tokens[i] = 1;
                }
            }
        } else if (PyLong_Check(value) || PyFloat_Check(value)) {
            double number = PyLong_Check(value) ? PyLong_AsDouble(value) : PyFloat_AS_DOUBLE(value);
            if (number == -1.0 && PyErr_Occurred()) {
                if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                    PyErr_Clear(); /* as derive.usage: an integer beyond a float's range is left out */
                } else {
                    result = -1;
                }
            } else {
                costs[i - U_PROMPT_COST] = number;
                has_cost[i - U_PROMPT_COST] = 1;
            }
        }
    }
    if (!has_tokens[U_TOTAL] && (has_tokens[U_PROMPT] || has_tokens[U_COMPLETION])) {
        tokens[U_TOTAL] = tokens[U_PROMPT] + tokens[U_COMPLETION];
    }
    for (int i = 0; i < 3 && result == 0; i++) {
        result = put_le(out, tokens[i], 8);
    }
    for (int i = 0; i < 3 && result == 0; i++) {
        if (!has_cost[i]) {
            result = put(out, "\x01", 1);
        } else {
            unsigned long long bits;
            memcpy(&bits, &costs[i], 8);
            result = put(out, "\x00", 1) < 0 ? -1 : put_le(out, bits, 8);
        }
    }
    for (int i = 0; i < 4 && result == 0; i++) {
        result = details[i] ? put_string(out, details[i]) : put_bytes(out, "", 0);
    }
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(details[i]);
    }
    return result;
}

/* `derive.first_token_time`, as ticks: 0 with `*ticks` set or `*found` 0, DECLINE for a time not in the SDK's
 * form (Python reads any ISO time). */
static int first_token(PyObject *events, long long *ticks, int *found) {
    *found = 0;
    for (Py_ssize_t i = 0; events != NULL && i < PyList_GET_SIZE(events); i++) {
        PyObject *event = PyList_GET_ITEM(events, i);
        if (!PyDict_Check(event)) {
            continue;
        }
        PyObject *name = PyDict_GetItemWithError(event, s_name);
        if (name == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        if (!PyUnicode_Check(name) || PyUnicode_Compare(name, s_new_token) != 0) {
            continue;
        }
        PyObject *time = PyDict_GetItemWithError(event, s_time);
        if (time == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (time == NULL || !PyUnicode_Check(time)) {
            continue;
        }
        int in_range;
        if (sdk_time(time, ticks, &in_range) != 0) {
            return DECLINE;
        }
        *found = in_range; /* `rows._ticks_or_none`: a time ClickHouse cannot store is left out */
        return 0;
    }
    return 0;
}

/* A payload's text: as received when it came as a strict JSON part of its own, else dumped. New reference. */
static PyObject *payload_text(PyObject *value, PyObject *texts, int which) {
    PyObject *text = PyDict_GetItemWithError(texts, field_names[which]);
    if (text != NULL && PyBytes_Check(text) && PyBytes_GET_SIZE(text) > 0) {
        return Py_NewRef(text);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyObject_CallOneArg(dumps, value);
}

/* The dotted order's segments `YYYYMMDDTHHMMSSffffffZ<uuid>`, as `validate._check_dotted_order` checks them, with
 * every id canonical and the last the run's own; their ids but the last in `ancestors` (`derive.ancestry`). */
static int check_dotted(PyObject *dotted, PyObject *run_id, PyObject *parent, PyObject *ancestors) {
    if (!PyUnicode_IS_ASCII(dotted)) {
        return DECLINE;
    }
    const char *text = (const char *)PyUnicode_DATA(dotted);
    Py_ssize_t size = PyUnicode_GET_LENGTH(dotted);
    const char *run = (const char *)PyUnicode_DATA(run_id);
    for (Py_ssize_t start = 0; start <= size;) {
        const char *dot = memchr(text + start, '.', size - start);
        Py_ssize_t end = dot ? dot - text : size;
        const char *segment = text + start;
        if (end - start != 58 || segment[21] != 'Z' || digits(segment, 8) < 0 || !canonical_chars(segment + 22)) {
            return DECLINE;
        }
        if (dot == NULL) {
            if (memcmp(segment + 22, run, 36) != 0) {
                return DECLINE;
            }
            break;
        }
        PyObject *id = PyUnicode_FromStringAndSize(segment + 22, 36);
        int appended = id == NULL ? -1 : PyList_Append(ancestors, id);
        Py_XDECREF(id);
        if (appended < 0) {
            return -1;
        }
        start = end + 1;
    }
    Py_ssize_t count = PyList_GET_SIZE(ancestors);
    if (parent != NULL) {
        /* `derive.is_under`: the segment before the run's names its parent (else the batcher derives it) */
        if (count == 0 || PyUnicode_Compare(PyList_GET_ITEM(ancestors, count - 1), parent) != 0) {
            return DECLINE;
        }
    }
    return 0;
}

typedef struct {
    PyObject *values[F_COUNT];
    PyObject *metadata; /* extra.metadata when it is a dict */
    PyObject *ancestors;
    PyObject *texts[5]; /* inputs, outputs, extra, events, serialized: the row's payload texts (NULL: absent) */
    long long start, end;
} Post;

/* Each field as `validate.checked_fields` would keep it unchanged, and what `fresh.split` presumes new (no
 * start time made up by the server, a dotted order and trace id given). */
static int check_fields(Post *post, PyObject *run_id, PyObject *main, PyObject *payloads) {
    int failed = 0;
    for (int i = 0; i < F_COUNT; i++) {
        post->values[i] = field(main, payloads, i, &failed);
        if (failed) {
            return -1;
        }
    }
    PyObject **v = post->values;
    if (v[F_ID] != NULL && !(PyUnicode_Check(v[F_ID]) && PyUnicode_Compare(v[F_ID], run_id) == 0)) {
        return DECLINE;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    const int uuids[] = {F_TRACE, F_PARENT, F_SESSION_ID, F_REFERENCE};
    for (int i = 0; i < 4; i++) {
        if (v[uuids[i]] != NULL && !is_canonical_uuid(v[uuids[i]])) {
            return DECLINE;
        }
    }
    const int texts[] = {F_NAME, F_DOTTED, F_SESSION_NAME, F_ERROR};
    for (int i = 0; i < 4; i++) {
        if (v[texts[i]] != NULL && !PyUnicode_Check(v[texts[i]])) {
            return DECLINE;
        }
    }
    const int objects[] = {F_INPUTS, F_OUTPUTS, F_EXTRA, F_SERIALIZED};
    for (int i = 0; i < 4; i++) {
        if (v[objects[i]] != NULL && !PyDict_Check(v[objects[i]])) {
            return DECLINE;
        }
    }
    if (v[F_EVENTS] != NULL && !PyList_Check(v[F_EVENTS])) {
        return DECLINE;
    }
    if (v[F_TAGS] != NULL) {
        if (!PyList_Check(v[F_TAGS])) {
            return DECLINE;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v[F_TAGS]); i++) {
            if (!PyUnicode_Check(PyList_GET_ITEM(v[F_TAGS], i))) {
                return DECLINE;
            }
        }
    }
    if (v[F_NAME] == NULL || v[F_RUN_TYPE] == NULL || v[F_START] == NULL || v[F_TRACE] == NULL ||
        v[F_DOTTED] == NULL || !PyUnicode_Check(v[F_RUN_TYPE])) {
        return DECLINE;
    }
    int known = 0;
    for (size_t i = 0; i < sizeof(RUN_TYPES) / sizeof(*RUN_TYPES) && !known; i++) {
        known = PyUnicode_CompareWithASCIIString(v[F_RUN_TYPE], RUN_TYPES[i]) == 0;
    }
    int in_range;
    if (!known || sdk_time(v[F_START], &post->start, &in_range) != 0 || !in_range) {
        return DECLINE;
    }
    if (v[F_END] != NULL && (sdk_time(v[F_END], &post->end, &in_range) != 0 || !in_range)) {
        return DECLINE;
    }
    if (v[F_EXTRA] != NULL) {
        PyObject *metadata = PyDict_GetItemWithError(v[F_EXTRA], s_metadata);
        if (metadata == NULL && PyErr_Occurred()) {
            return -1;
        }
        post->metadata = metadata != NULL && PyDict_Check(metadata) ? metadata : NULL;
    }
    return check_dotted(v[F_DOTTED], run_id, v[F_PARENT], post->ancestors);
}

static int put_optional_uuid(Buffer *out, PyObject *value) {
    if (value == NULL) {
        return put(out, "\x01", 1);
    }
    return put(out, "\x00", 1) < 0 ? -1 : put_uuid(out, value);
}

static int put_optional(Buffer *out, PyObject *value) {
    if (value == NULL) {
        return put(out, "\x01", 1);
    }
    return put(out, "\x00", 1) < 0 ? -1 : put_string(out, value);
}

static int put_optional_ticks(Buffer *out, int present, long long ticks) {
    if (!present) {
        return put(out, "\x01", 1);
    }
    return put(out, "\x00", 1) < 0 ? -1 : put_le(out, (unsigned long long)ticks, 8);
}

/* The row's columns (`ingest.fresh.COLUMNS`, checked against `COLUMNS` below at import). */
static int put_row(Buffer *out, Post *post, PyObject *run_id, Buffer *scratch, Buffer *path) {
    PyObject **v = post->values;
    long long first_ticks = 0;
    int has_first, result = first_token(v[F_EVENTS], &first_ticks, &has_first);
    if (result != 0) {
        return result;
    }
    const char *status = v[F_ERROR] != NULL && PyUnicode_GET_LENGTH(v[F_ERROR]) ? "error"
                         : v[F_END] != NULL                                       ? "success"
                                                                                  : "pending";
    if (put_uuid(out, run_id) < 0 || put_uuid(out, v[F_TRACE]) < 0 || put_optional_uuid(out, v[F_PARENT]) < 0 ||
        put_varint(out, PyList_GET_SIZE(post->ancestors)) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(post->ancestors); i++) {
        if (put_uuid(out, PyList_GET_ITEM(post->ancestors, i)) < 0) {
            return -1;
        }
    }
    if (put_string(out, v[F_DOTTED]) < 0 || put(out, v[F_PARENT] == NULL ? "\x01" : "\x00", 1) < 0 ||
        put_string(out, v[F_NAME]) < 0 || put_string(out, v[F_RUN_TYPE]) < 0 ||
        put_bytes(out, status, strlen(status)) < 0 || put_le(out, (unsigned long long)post->start, 8) < 0 ||
        put_optional_ticks(out, v[F_END] != NULL, post->end) < 0 ||
        put_optional_ticks(out, has_first, first_ticks) < 0 ||
        put_optional(out, v[F_ERROR]) < 0 || put_string(out, post->texts[0]) < 0 ||
        put_optional(out, post->texts[1]) < 0 || put_string(out, post->texts[2]) < 0 ||
        put_string(out, post->texts[3]) < 0 || put_optional(out, post->texts[4]) < 0 ||
        put(out, "\x00\x00", 2) < 0 /* payload_refs and attachments: none */) {
        return -1;
    }
    PyObject *tags = v[F_TAGS];
    Py_ssize_t tag_count = tags ? PyList_GET_SIZE(tags) : 0;
    if (put_varint(out, tag_count) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < tag_count; i++) {
        if (put_string(out, PyList_GET_ITEM(tags, i)) < 0) {
            return -1;
        }
    }
    if ((result = put_metadata(out, post->metadata, scratch)) != 0 ||
        (result = put_flattened(out, v[F_INPUTS], scratch, path)) != 0 ||
        (result = put_flattened(out, v[F_OUTPUTS], scratch, path)) != 0) {
        return result;
    }
    if (put_thread_id(out, post->metadata) < 0 || put_optional_uuid(out, v[F_REFERENCE]) < 0) {
        return -1;
    }
    return put_usage(out, v[F_RUN_TYPE], post->metadata, v[F_OUTPUTS]);
}

/* The row's payload texts, with the defaults of absent ones (`rows.JSON_DEFAULTS`). */
static int payload_texts(Post *post, PyObject *texts) {
    static const int payloads[] = {F_INPUTS, F_OUTPUTS, F_EXTRA, F_EVENTS, F_SERIALIZED};
    static const char *defaults[] = {"{}", NULL, "{}", "[]", NULL};
    for (int i = 0; i < 5; i++) {
        PyObject *value = post->values[payloads[i]];
        if (value != NULL) {
            post->texts[i] = payload_text(value, texts, payloads[i]);
        } else if (defaults[i] != NULL) {
            post->texts[i] = PyBytes_FromString(defaults[i]);
        } else {
            continue;
        }
        if (post->texts[i] == NULL) {
            return -1;
        }
        if (!PyBytes_Check(post->texts[i])) {
            PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
            return -1;
        }
    }
    return 0;
}

static PyObject *import_helpers(void) {
    if (import_attr(&loads, "orjson", "loads") == NULL || import_attr(&dumps, "schemas.jsonutil", "dumps") == NULL ||
        import_attr(&dumps_str, "schemas.jsonutil", "dumps_str") == NULL ||
        import_attr(&text_value, "ingest.derive", "text_value") == NULL) {
        return NULL;
    }
    return Py_None;
}

/* The post's `Built` in `*made`: 0, DECLINE, or -1 with an exception set. */
static int build_post(PyObject *run_id, PyObject *main, PyObject *payloads, PyObject *texts, PyObject **made) {
    *made = NULL;
    if (!is_canonical_uuid(run_id)) {
        return DECLINE;
    }
    if (import_helpers() == NULL) {
        return -1;
    }
    Post post = {{NULL}, NULL, PyList_New(0), {NULL}, 0, 0};
    Buffer out = {PyMem_Malloc(4096), 0, 4096}, scratch = {PyMem_Malloc(1024), 0, 1024},
           path = {PyMem_Malloc(256), 0, 256};
    int result = -1;
    if (post.ancestors == NULL || out.data == NULL || scratch.data == NULL || path.data == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    result = check_fields(&post, run_id, main, payloads);
    if (result == 0) {
        result = payload_texts(&post, texts);
    }
    if (result == 0) {
        result = put_row(&out, &post, run_id, &scratch, &path);
    }
    if (result == 0) {
        Py_ssize_t largest = 0;
        for (int i = 0; i < 4; i++) { /* the payloads the batcher may offload: `rows.OFFLOADED` */
            if (post.texts[i] != NULL && PyBytes_GET_SIZE(post.texts[i]) > largest) {
                largest = PyBytes_GET_SIZE(post.texts[i]);
            }
        }
        PyObject **v = post.values;
        *made = Py_BuildValue("(y#OOOLOOOn)", out.data, out.size, run_id, v[F_PARENT] ? v[F_PARENT] : Py_None,
                              v[F_DOTTED], post.start, v[F_END] ? Py_True : Py_False,
                              v[F_SESSION_ID] ? v[F_SESSION_ID] : Py_None,
                              v[F_SESSION_NAME] ? v[F_SESSION_NAME] : Py_None, largest);
        result = *made == NULL ? -1 : 0;
    }
done:
    Py_XDECREF(post.ancestors);
    for (int i = 0; i < 5; i++) {
        Py_XDECREF(post.texts[i]);
    }
    PyMem_Free(out.data);
    PyMem_Free(scratch.data);
    PyMem_Free(path.data);
    return result;
}

static PyObject *fresh_row(PyObject *module, PyObject *args) {
    PyObject *run_id, *main, *payloads, *texts, *made;
    if (!PyArg_ParseTuple(args, "UO!O!O!:fresh_row", &run_id, &PyDict_Type, &main, &PyDict_Type, &payloads,
                          &PyDict_Type, &texts)) {
        return NULL;
    }
    int result = build_post(run_id, main, payloads, texts, &made);
    if (result == DECLINE) {
        Py_RETURN_NONE;
    }
    return made;
}

/* The containers JSON text opens at most (see `openings`). */
static Py_ssize_t count_openings(const unsigned char *text, Py_ssize_t size) {
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        count += (text[i] == '{') | (text[i] == '[');
    }
    return count;
}

/* One run's parts in a body of posts (`sdk_posts`). */
typedef struct {
    PyObject *run_id;
    PyObject *main;     /* its main part's JSON, NULL until read */
    PyObject *payloads; /* payload name -> JSON */
    PyObject *texts;    /* payload name -> the part's data */
    PyObject *parts;    /* its parts, for the Python path if it declines */
    int shallow;
} Group;

static void free_groups(Group *groups, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(groups[i].run_id);
        Py_XDECREF(groups[i].main);
        Py_XDECREF(groups[i].payloads);
        Py_XDECREF(groups[i].texts);
        Py_XDECREF(groups[i].parts);
    }
    PyMem_Free(groups);
}

/* A part's name as `post.<run id>[.<payload>]`: its run id and payload name (NULL for the main part) as new
 * references, or DECLINE for any other name. */
static int post_part_name(PyObject *name, PyObject **run_id, PyObject **payload) {
    *run_id = *payload = NULL;
    if (!PyUnicode_Check(name) || !PyUnicode_IS_ASCII(name)) {
        return DECLINE;
    }
    const char *text = (const char *)PyUnicode_DATA(name);
    Py_ssize_t size = PyUnicode_GET_LENGTH(name);
    if (size < 41 || memcmp(text, "post.", 5) != 0 || (size > 41 && text[41] != '.')) {
        return DECLINE;
    }
    if (size > 41) {
        int known = 0;
        for (int i = F_INPUTS; i < F_COUNT && !known; i++) {
            if (PyUnicode_CompareWithASCIIString(field_names[i], text + 42) == 0) {
                *payload = Py_NewRef(field_names[i]);
                known = 1;
            }
        }
        if (!known) {
            return DECLINE;
        }
    }
    *run_id = PyUnicode_FromStringAndSize(text + 5, 36);
    if (*run_id == NULL) {
        Py_CLEAR(*payload);
        return -1;
    }
    if (!is_canonical_uuid(*run_id)) {
        Py_CLEAR(*run_id);
        Py_CLEAR(*payload);
        return DECLINE;
    }
    return 0;
}

/* Reads one part into its run's group; DECLINE when the body is not one this path reads. */
static int read_part(PyObject *part, PyObject *index, Group **groups, Py_ssize_t *count, Py_ssize_t *capacity) {
    PyObject *name = PyObject_GetAttr(part, s_name);
    if (name == NULL) {
        return -1;
    }
    PyObject *run_id, *payload;
    int result = post_part_name(name, &run_id, &payload);
    Py_DECREF(name);
    if (result != 0) {
        return result;
    }
    PyObject *data = PyObject_GetAttr(part, s_data);
    PyObject *found = data == NULL ? NULL : PyDict_GetItemWithError(index, run_id);
    Group *group = NULL;
    if (data == NULL || (found == NULL && PyErr_Occurred())) {
        result = -1;
    } else if (!PyBytes_Check(data)) {
        result = DECLINE;
    } else if (found != NULL) {
        group = &(*groups)[PyLong_AsSsize_t(found)];
    } else {
        if (*count == *capacity) {
            Group *grown = PyMem_Realloc(*groups, sizeof(Group) * (*capacity * 2));
            if (grown == NULL) {
                PyErr_NoMemory();
                result = -1;
            } else {
                *groups = grown;
                *capacity *= 2;
            }
        }
        if (result == 0) {
            group = &(*groups)[*count];
            *group = (Group){Py_NewRef(run_id), NULL, PyDict_New(), PyDict_New(), PyList_New(0), 1};
            (*count)++;
            PyObject *at = PyLong_FromSsize_t(*count - 1);
            if (group->payloads == NULL || group->texts == NULL || group->parts == NULL || at == NULL ||
                PyDict_SetItem(index, run_id, at) < 0) {
                result = -1;
            }
            Py_XDECREF(at);
        }
    }
    if (result == 0 && payload == NULL && group->main != NULL) {
        result = DECLINE; /* a duplicate main part: the Python path says so */
    }
    if (result == 0) {
        /* orjson reads it or the Python path decides (the standard library reads what orjson does not) */
        PyObject *value = PyObject_CallOneArg(loads, data);
        if (value == NULL) {
            PyErr_Clear();
            result = DECLINE;
        } else if (payload == NULL) {
            group->main = value;
        } else {
            int stored = PyDict_SetItem(group->payloads, payload, value) == 0 &&
                         PyDict_SetItem(group->texts, payload, data) == 0;
            result = stored ? 0 : -1;
            Py_DECREF(value);
        }
    }
    if (result == 0) {
        Py_ssize_t size = PyBytes_GET_SIZE(data);
        const unsigned char *text = (const unsigned char *)PyBytes_AS_STRING(data);
        group->shallow = group->shallow && (size <= 2 * MAX_NESTING + 1 || count_openings(text, size) <= MAX_NESTING);
        result = PyList_Append(group->parts, part);
    }
    Py_XDECREF(data);
    Py_DECREF(run_id);
    Py_XDECREF(payload);
    return result;
}

/* A body of posts only, the SDK's for finished runs: (the `Built` of each post built here, the parts of the others
 * grouped by run, runs in the order of their first part), or None when the body has any other part, a part orjson
 * does not read, a post without its main part or with two. Then, and for the parts returned,
 * `decode.from_multipart` reads them as it reads any body. */
static PyObject *sdk_posts(PyObject *module, PyObject *parts) {
    if (!PyList_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "sdk_posts() takes a list of parts");
        return NULL;
    }
    if (import_helpers() == NULL) {
        return NULL;
    }
    Py_ssize_t count = 0, capacity = 64;
    Group *groups = PyMem_Malloc(sizeof(Group) * capacity);
    PyObject *index = PyDict_New(), *built = PyList_New(0), *rest = PyList_New(0), *made = NULL;
    int result = groups == NULL || index == NULL || built == NULL || rest == NULL ? -1 : 0;
    if (groups == NULL && !PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; result == 0 && i < PyList_GET_SIZE(parts); i++) {
        result = read_part(PyList_GET_ITEM(parts, i), index, &groups, &count, &capacity);
    }
    for (Py_ssize_t i = 0; result == 0 && i < count; i++) {
        Group *group = &groups[i];
        if (group->main == NULL || !PyDict_Check(group->main)) {
            result = DECLINE; /* the Python path rejects it */
            break;
        }
        PyObject *row = NULL;
        int step = group->shallow ? build_post(group->run_id, group->main, group->payloads, group->texts, &row)
                                  : DECLINE;
        if (step == 0) {
            step = PyList_Append(built, row);
            Py_DECREF(row);
        } else if (step == DECLINE) {
            step = PyList_SetSlice(rest, PyList_GET_SIZE(rest), PyList_GET_SIZE(rest), group->parts);
        }
        result = step;
    }
    if (result == 0) {
        /* the declined runs' parts grouped by run, runs in the order of their first part: `decode.from_multipart`
         * orders ops so, and a body of posts has one op per run */
        made = PyTuple_Pack(2, built, rest);
    }
    Py_XDECREF(index);
    Py_XDECREF(built);
    Py_XDECREF(rest);
    if (groups != NULL) {
        free_groups(groups, count);
    }
    if (result == DECLINE) {
        Py_RETURN_NONE;
    }
    return made;
}

/* `validate.shallow`'s count of the containers JSON text opens at most: one pass the compiler vectorises, where
 * `data.count(b"{") + data.count(b"[")` took ~3 instructions a byte, twice (~20,000 per run of
 * tests/bench/ingest.py's bodies). */
static PyObject *openings(PyObject *module, PyObject *data) {
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "openings() takes bytes");
        return NULL;
    }
    return PyLong_FromSsize_t(count_openings((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)));
}

static PyMethodDef methods[] = {
    {"sdk_posts", sdk_posts, METH_O,
     "sdk_posts(parts) -> (built, rest) or None: the posts of a body of posts only built here, the parts of the "
     "others left to decode.from_multipart; None for any other body."},
    {"openings", openings, METH_O, "openings(data) -> int: how many '{' and '[' bytes `data` holds."},
    {"fresh_row", fresh_row, METH_VARARGS,
     "fresh_row(run_id, main, payloads, texts) -> (row, id, parent, dotted, start, ended, session_id, session_name, "
     "largest text) or None: a post presumed new from its main part and its payload parts (keyed by "
     "schemas.runs.PAYLOAD_FIELDS), None where the Python path decides."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {PyModuleDef_HEAD_INIT, "ingest._fresh", NULL, -1, methods};

static PyObject *intern(const char *text) {
    return PyUnicode_InternFromString(text);
}

PyMODINIT_FUNC PyInit__fresh(void) {
    for (int i = 0; i < F_COUNT; i++) {
        if ((field_names[i] = intern(FIELD_NAMES[i])) == NULL) {
            return NULL;
        }
    }
    for (int i = 0; i < U_COUNT; i++) {
        if ((usage_keys[i] = intern(USAGE_KEYS[i])) == NULL) {
            return NULL;
        }
    }
    for (int i = 0; i < 3; i++) {
        if ((thread_keys[i] = intern(THREAD_KEYS[i])) == NULL) {
            return NULL;
        }
    }
    if ((s_metadata = intern("metadata")) == NULL || (s_usage_metadata = intern("usage_metadata")) == NULL ||
        (s_name = intern("name")) == NULL || (s_data = intern("data")) == NULL || (s_time = intern("time")) == NULL ||
        (s_new_token = intern("new_token")) == NULL || (s_llm = intern("llm")) == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&definition);
    if (module == NULL) {
        return NULL;
    }
    PyObject *columns = Py_BuildValue(
        "(ssssssssssssssssssssssssssssssssssss)", "id", "trace_id", "parent_run_id", "parent_run_ids", "dotted_order",
        "is_root", "name", "run_type", "status", "start_time", "end_time", "first_token_time", "error", "inputs",
        "outputs", "extra", "events", "serialized", "payload_refs", "attachments", "tags", "metadata", "inputs_kv",
        "outputs_kv", "thread_id", "reference_example_id", "prompt_tokens", "completion_tokens", "total_tokens",
        "prompt_cost", "completion_cost", "total_cost", "prompt_token_details", "completion_token_details",
        "prompt_cost_details", "completion_cost_details");
    if (PyModule_AddIntConstant(module, "MAX_NESTING", MAX_NESTING) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (columns == NULL || PyModule_AddObject(module, "COLUMNS", columns) < 0) {
        Py_XDECREF(columns);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
