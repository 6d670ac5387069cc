/* Ranks within each row and over all rows pooled, from one sort: the rank agreement's hot loop, and the
 * within-class order of the critical-sample score (memoxr.influence.rank_kernels).
 *
 * At ImageNet size (1000 classes, a million samples, five methods) numpy's sorts and the dozen passes
 * around them were a quarter of `memoxr calculate`. This sorts the kept values once, carrying each
 * value's flat position: by an LSD radix sort of the high halves of their order-preserving 64-bit words
 * (8-bit digits, whose 256 buckets stay in L1 where 11-bit ones were 1.2x slower; a digit every value
 * shares is skipped), then each run of equal high halves by the low ones. Being stable, the sort keeps
 * equal values in position order; one more counting pass by row gives every row's sorted run from the
 * pooled order. Ties get the average of the ranks they span, as scipy.stats.rankdata's "average", or
 * ranks in position order ("ordinal"); -0.0 ties with 0.0; a kept NaN (of either sign) ranks after
 * every number and ties with nothing, earlier positions first, as numpy's sorts order NaN; left-out
 * entries get NaN (0 when the ranks are written centred, less their mean). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_buffers.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DIGIT_BITS 8
#define DIGITS (64 / DIGIT_BITS)
#define BUCKETS (1 << DIGIT_BITS)
#define SIGN UINT64_C(0x8000000000000000)
#define NAN_WORD UINT64_C(0xFFF8000000000000) /* after +inf's word, 0xFFF0000000000000 */

/* Words compare as the values do; every NaN is one word, after every number. On the bits, so that
 * neither the rounding mode nor a compiler's fast-math flags can change it. */
static inline uint64_t order_word(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & ~SIGN) > UINT64_C(0x7FF0000000000000))
        return NAN_WORD;
    if (u == SIGN)
        u = 0; /* -0.0 as 0.0, which it equals */
    return (u & SIGN) ? ~u : (u | SIGN);
}

/* A kept value: its word and its flat position, moved together through the sort. */
typedef struct {
    uint64_t word;
    uint64_t at;
} entry;

/* How ranks are written: ties averaged or ordered by position; less their mean or not. */
typedef struct {
    int ordinal;
    int centred;
} style;

/* Ranks (1-based, within [start, end) of the sorted entries) written at their positions, less their
 * mean if centred ((end - start + 1) / 2, exactly). Runs of equal words share the mean of their ranks,
 * or keep the sort's order (position order) if ordinal; NaN words never tie. */
static void write_ranks(const entry *e, Py_ssize_t start, Py_ssize_t end, style how, double *out)
{
    const double mean = how.centred ? (double)(end - start + 1) / 2.0 : 0.0;
    Py_ssize_t i = start;
    while (i < end) {
        Py_ssize_t j = i + 1;
        if (!how.ordinal && e[i].word != NAN_WORD)
            while (j < end && e[j].word == e[i].word)
                j++;
        double rank = (double)((i - start) + (j - 1 - start)) / 2.0 + 1.0 - mean;
        for (Py_ssize_t t = i; t < j; t++)
            out[e[t].at] = rank;
        i = j;
    }
}

/* Sorts the m entries of *sorted by an LSD radix sort of their words' digits first..last-1, using
 * *spare (the two may swap). Stable. */
static void radix_sort(entry **sorted, entry **spare, Py_ssize_t m, Py_ssize_t *count, int first, int last)
{
    memset(count + first * BUCKETS, 0, sizeof(Py_ssize_t) * (size_t)((last - first) * BUCKETS));
    const entry *e = *sorted;
    for (Py_ssize_t i = 0; i < m; i++)
        for (int d = first; d < last; d++)
            count[d * BUCKETS + ((e[i].word >> (d * DIGIT_BITS)) & (BUCKETS - 1))]++;
    for (int d = first; d < last; d++) {
        Py_ssize_t *c = count + d * BUCKETS;
        const entry *src = *sorted;
        if (c[(src[0].word >> (d * DIGIT_BITS)) & (BUCKETS - 1)] == m)
            continue; /* every word shares this digit */
        Py_ssize_t offset = 0;
        for (int b = 0; b < BUCKETS; b++) {
            Py_ssize_t n = c[b];
            c[b] = offset;
            offset += n;
        }
        entry *dst = *spare;
        for (Py_ssize_t i = 0; i < m; i++)
            dst[c[(src[i].word >> (d * DIGIT_BITS)) & (BUCKETS - 1)]++] = src[i];
        *spare = *sorted;
        *sorted = dst;
    }
}

/* Sorts the m entries of sorted (spare: as many) by their words: by the high 32 bits first, then each
 * run sharing them by the low 32 bits (an insertion sort when short, a radix sort otherwise). Four
 * passes over memory instead of eight: runs are mostly a few entries, or ties. Stable. */
static void sort_entries(entry **sorted, entry **spare, Py_ssize_t m, Py_ssize_t *count)
{
    radix_sort(sorted, spare, m, count, DIGITS / 2, DIGITS);
    entry *e = *sorted;
    Py_ssize_t i = 0;
    while (i < m) {
        Py_ssize_t j = i + 1;
        const uint64_t high = e[i].word >> 32;
        while (j < m && (e[j].word >> 32) == high)
            j++;
        if (j - i <= 32) {
            for (Py_ssize_t a = i + 1; a < j; a++) {
                entry v = e[a];
                Py_ssize_t b = a;
                for (; b > i && e[b - 1].word > v.word; b--)
                    e[b] = e[b - 1];
                e[b] = v;
            }
        } else {
            entry *run = e + i, *other = *spare + i;
            radix_sort(&run, &other, j - i, count, 0, DIGITS / 2);
            if (run != e + i)
                memcpy(e + i, run, sizeof(entry) * (size_t)(j - i));
        }
        i = j;
    }
}

/* The ranks of x (size values, rows of n) among its kept entries, within rows and (if pooled) pooled.
 * Returns 0, or -1 when out of memory (nothing written then). */
static int average_ranks(const double *x, const char *keep, Py_ssize_t size, Py_ssize_t n, style how,
                         double *within, double *pooled)
{
    Py_ssize_t m = 0, rows = size / n;
    for (Py_ssize_t i = 0; i < size; i++)
        m += keep[i] != 0;
    if (m > (PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(entry) - 1) / 2)
        return -1; /* 2m + 1 entries would not fit in size_t (32-bit builds) */
    entry *entries = malloc(sizeof(entry) * (size_t)(2 * m + 1));
    const Py_ssize_t counts = DIGITS * BUCKETS > rows + 1 ? DIGITS * BUCKETS : rows + 1;
    Py_ssize_t *count = malloc(sizeof(Py_ssize_t) * (size_t)counts);
    if (entries == NULL || count == NULL) {
        free(entries);
        free(count);
        return -1;
    }
    const double left_out = how.centred ? 0.0 : NAN;
    for (Py_ssize_t i = 0; i < size; i++) {
        within[i] = left_out;
        if (pooled != NULL)
            pooled[i] = left_out;
    }
    entry *sorted = entries, *spare = entries + m;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < size && k < m; i++) /* k < m: keep may change under a racing writer */
        if (keep[i]) {
            sorted[k].word = order_word(x[i]);
            sorted[k++].at = (uint64_t)i;
        }
    m = k;
    if (m > 0)
        sort_entries(&sorted, &spare, m, count);
    if (pooled != NULL)
        write_ranks(sorted, 0, m, how, pooled);
    if (rows == 1) {
        write_ranks(sorted, 0, m, how, within);
    } else if (m > 0) {
        /* Each row's run, in the pooled order: a stable counting sort by row. */
        memset(count, 0, sizeof(Py_ssize_t) * (size_t)(rows + 1));
        for (Py_ssize_t i = 0; i < m; i++)
            count[sorted[i].at / (uint64_t)n + 1]++;
        for (Py_ssize_t r = 0; r < rows; r++)
            count[r + 1] += count[r];
        for (Py_ssize_t i = 0; i < m; i++)
            spare[count[sorted[i].at / (uint64_t)n]++] = sorted[i];
        /* count[r] is now row r's end. */
        Py_ssize_t start = 0;
        for (Py_ssize_t r = 0; r < rows; r++) {
            write_ranks(spare, start, count[r], how, within);
            start = count[r];
        }
    }
    free(entries);
    free(count);
    return 0;
}

PyDoc_STRVAR(average_ranks_into_doc,
"average_ranks_into(x, keep, n, within, pooled, ordinal, centred, /)\n--\n\n"
"Ranks of the kept entries of ``x``, within each row of ``n`` values and over all rows pooled.\n\n"
"``x``: a C-contiguous buffer of native float64 values; ``keep``: a C-contiguous bool buffer of as\n"
"many; ``within`` and ``pooled`` (which may be None): writable C-contiguous float64 buffers of as many,\n"
"apart from the inputs and each other, given NaN where ``keep`` is false. Ties share the mean of their\n"
"ranks, or with ``ordinal`` are ranked in position order. ``centred``: each ranking less its mean over\n"
"the kept entries ((kept + 1) / 2), and 0 where ``keep`` is false. The GIL is released.");

static PyObject *average_ranks_into(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *x_obj, *keep_obj, *within_obj, *pooled_obj;
    Py_ssize_t n;
    style how;
    if (!PyArg_ParseTuple(args, "OOnOOpp:average_ranks_into", &x_obj, &keep_obj, &n, &within_obj, &pooled_obj,
                          &how.ordinal, &how.centred))
        return NULL;
    Py_buffer views[4];
    const char *names[4] = {"x", "keep", "within", "pooled"};
    PyObject *objects[4] = {x_obj, keep_obj, within_obj, pooled_obj};
    int flags[4] = {PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT,
                    PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE,
                    PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE};
    int held = 0, with_pooled = pooled_obj != Py_None;
    PyObject *result = NULL;
    for (; held < 3 + with_pooled; held++)
        if (PyObject_GetBuffer(objects[held], &views[held], flags[held]) < 0)
            goto done;
    for (int v = 0; v < held; v++) {
        int bools = v == 1;
        if (bools ? !is_format(&views[v], '?', 1) : !is_format(&views[v], 'd', 8)) {
            PyErr_Format(PyExc_TypeError, "%s: expected native %s values, got buffer format '%s'", names[v],
                         bools ? "bool" : "float64", views[v].format ? views[v].format : "B");
            goto done;
        }
    }
    Py_ssize_t size = views[0].len / 8;
    for (int v = 1; v < held; v++)
        if (views[v].len / views[v].itemsize != size) {
            PyErr_Format(PyExc_ValueError, "%s: expected %zd values, as x has, got %zd", names[v], size,
                         views[v].len / views[v].itemsize);
            goto done;
        }
    if (n <= 0 || size % n != 0) {
        PyErr_Format(PyExc_ValueError, "n: expected a positive row length dividing the %zd values of x, got %zd",
                     size, n);
        goto done;
    }
    for (int v = 2; v < held; v++)
        for (int u = 0; u < v; u++)
            if (overlap(&views[v], &views[u])) {
                PyErr_Format(PyExc_ValueError, "%s: expected memory apart from %s's, got a buffer overlapping it",
                             names[v], names[u]);
                goto done;
            }
    int status = 0;
    if (size > 0) {
        Py_BEGIN_ALLOW_THREADS
        status = average_ranks(views[0].buf, views[1].buf, size, n, how, views[2].buf,
                               with_pooled ? views[3].buf : NULL);
        Py_END_ALLOW_THREADS
    }
    if (status < 0)
        PyErr_NoMemory();
    else
        result = Py_NewRef(Py_None);
done:
    while (held > 0)
        PyBuffer_Release(&views[--held]);
    return result;
}

static PyMethodDef methods[] = {
    {"average_ranks_into", average_ranks_into, METH_VARARGS, average_ranks_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_average_ranks",
    .m_doc = "The ranking kernel of memoxr.influence.rank_kernels, in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__average_ranks(void)
{
    return PyModule_Create(&module);
}
