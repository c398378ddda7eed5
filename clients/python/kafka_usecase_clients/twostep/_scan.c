/* The forwarder's hot loop in C: find the run of plain events at `position` (the format is in
 * segment.py). A plain event has the given topic, no key and no headers, and a valid frame and
 * CRC-32. For each, the value, the timestamp and the event id (b"<writer>:<sequence>", sent as
 * the twostep.id header) are returned, so the Python loop only produces them. They are returned as
 * bytes and ints, never tuples or lists: containers would be tracked by the garbage collector,
 * whose collections then cost more than the scan itself. The scan stops at
 * the first record that is anything else (incomplete, corrupt, another topic, a key, headers),
 * which the Python code then decodes; so nothing here decides that bytes are corrupt.
 *
 * Optional: without a C compiler the package installs without it and the forwarder runs the same
 * loop in Python (about half the throughput). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FRAME_SIZE 10                /* sync u16, length u32, crc u32 */
#define HEAD_SIZE 34                 /* FRAME_SIZE + timestamp, sequence, topic length, header count, key length */
#define BODY_FIXED 24                /* the body's fixed fields */
#define SYNC 0xd257
#define MAX_RECORD_BYTES (16u * 1024 * 1024)

static uint32_t crc_table[8][256];  /* slicing-by-8: eight bytes per step */

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = crc_table[t - 1][i] >> 8 ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {  /* zlib.crc32(p[:n]) */
    uint32_t c = 0xFFFFFFFFu;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][lo >> 8 & 0xFF] ^ crc_table[5][lo >> 16 & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    }
    while (n--)
        c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer data, topic, writer;
    Py_ssize_t position, limit;
    if (!PyArg_ParseTuple(args, "y*nny*y*", &data, &position, &limit, &topic, &writer))
        return NULL;
    PyObject *values = PyList_New(0), *stamps = PyList_New(0), *ids = PyList_New(0), *result = NULL;
    const unsigned char *buf = data.buf;
    const Py_ssize_t size = data.len;
    char id[320];
    if (!values || !stamps || !ids || writer.len > 256 || position < 0)
        goto done;
    memcpy(id, writer.buf, writer.len);
    id[writer.len] = ':';
    while (limit-- > 0 && position + HEAD_SIZE <= size) {
        const unsigned char *p = buf + position;
        uint64_t length = be(p + 2, 4);
        if (be(p, 2) != SYNC || length > MAX_RECORD_BYTES || length < BODY_FIXED + (uint64_t)topic.len ||
            (Py_ssize_t)(position + FRAME_SIZE + length) > size)
            break;
        if (be(p + 28, 2) != 0 || (int32_t)be(p + 30, 4) >= 0 || be(p + 26, 2) != (uint64_t)topic.len ||
            memcmp(p + HEAD_SIZE, topic.buf, topic.len) != 0)
            break;
        if (crc32_of(p + FRAME_SIZE, length) != (uint32_t)be(p + 6, 4))
            break;
        Py_ssize_t value_start = HEAD_SIZE + topic.len, end = FRAME_SIZE + length;
        int id_length = writer.len + 1 + snprintf(id + writer.len + 1, 24, "%llu", (unsigned long long)be(p + 18, 8));
        PyObject *value = PyBytes_FromStringAndSize((const char *)p + value_start, end - value_start);
        PyObject *stamp = PyLong_FromUnsignedLongLong(be(p + 10, 8));
        PyObject *event_id = PyBytes_FromStringAndSize(id, id_length);
        int failed = !value || !stamp || !event_id || PyList_Append(values, value) || PyList_Append(stamps, stamp) ||
                     PyList_Append(ids, event_id);
        Py_XDECREF(value);
        Py_XDECREF(stamp);
        Py_XDECREF(event_id);
        if (failed)
            goto done;
        position += end;
    }
    result = Py_BuildValue("OOOn", values, stamps, ids, position);
done:
    Py_XDECREF(values);
    Py_XDECREF(stamps);
    Py_XDECREF(ids);
    PyBuffer_Release(&data);
    PyBuffer_Release(&topic);
    PyBuffer_Release(&writer);
    if (!result && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "scan: writer id too long or negative position");
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, position, limit, topic, writer) -> (values, timestamps, ids, position): the "
     "plain events of `topic` from `position` on, at most `limit`, up to the first record that is anything else."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scan(void) {
    crc_init();
    return PyModule_Create(&module);
}
