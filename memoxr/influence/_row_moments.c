/* Partial moments of rows: the hot loop of every influence-aware score (memoxr.influence.kernels).
 *
 * numpy needs seven passes over a block of rows for count, positive sum, mean and M2 (sum, subtract,
 * sum, square, sum, maximum, sum). This reads each row twice instead, while it is in cache: once for
 * its sum, once for the sums around its mean, with the centering error corrected as numpy's path did.
 * Both passes add float32 or float64 values in float64, in 4-wide vector lanes (GCC/clang vector
 * extensions; on x86-64 Linux an AVX2 clone is picked at load time where the CPU has it). A row
 * whose first value, sum or sums around the mean are not finite takes a NaN-skipping loop: an
 * all-NaN row (ragged padding) gets count 0, and NaN is skipped while an infinity counts, as in
 * numpy's NaN-aware path. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_buffers.h"

#include <math.h>
#include <string.h>

typedef float f32x4 __attribute__((vector_size(16)));
typedef double f64x4 __attribute__((vector_size(32)));
typedef long long i64x4 __attribute__((vector_size(32)));

/* Four values from p, as float64: float32 ones converted, float64 ones loaded (unaligned). */
#define LOAD4(p, wide)                                                                    \
    ((wide) ? __extension__({ f64x4 d_; memcpy(&d_, (p), sizeof d_); d_; })              \
            : __extension__({ f32x4 f_; memcpy(&f_, (p), sizeof f_); __builtin_convertvector(f_, f64x4); }))
#define VALUE(row, i, wide) ((wide) ? ((const double *)(row))[i] : (double)((const float *)(row))[i])
#define POSITIVE(v) ((f64x4)((i64x4)(v) & ((v) > zero)))
#define LANES_SUM(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && defined(__GNUC__)
#define WITH_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define WITH_AVX2_CLONE
#endif

/* count, positive sum, mean, M2 of a row holding NaN or an infinity: NaN skipped. */
static void moments_skipping_nan(const char *row, Py_ssize_t n, int wide, double *out)
{
    double count = 0, sum = 0, m2 = 0, positive = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = VALUE(row, i, wide);
        if (v == v) {
            count += 1;
            sum += v;
        }
    }
    if (count == 0) {
        out[0] = out[1] = out[2] = out[3] = 0;
        return;
    }
    double mean = sum / count;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = VALUE(row, i, wide);
        if (v == v) {
            double d = v - mean;
            m2 += d * d;
            positive += v > 0 ? v : 0;
        }
    }
    out[0] = count;
    out[1] = positive;
    out[2] = mean;
    out[3] = m2;
}

static inline __attribute__((always_inline)) void
row_moments(const char *row, Py_ssize_t n, int wide, double *out)
{
    const f64x4 zero = {0, 0, 0, 0};
    const Py_ssize_t size = wide ? 8 : 4;
    if (VALUE(row, 0, wide) != VALUE(row, 0, wide)) { /* padding starts with NaN */
        moments_skipping_nan(row, n, wide, out);
        return;
    }
    f64x4 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 += LOAD4(row + i * size, wide);
        s1 += LOAD4(row + (i + 4) * size, wide);
        s2 += LOAD4(row + (i + 8) * size, wide);
        s3 += LOAD4(row + (i + 12) * size, wide);
    }
    s0 = (s0 + s1) + (s2 + s3);
    double sum = LANES_SUM(s0);
    for (; i < n; i++)
        sum += VALUE(row, i, wide);
    if (!isfinite(sum)) {
        moments_skipping_nan(row, n, wide, out);
        return;
    }
    const double mean = sum / (double)n;
    const f64x4 centre = zero + mean;
    f64x4 shift0 = zero, shift1 = zero, m2_0 = zero, m2_1 = zero, pos0 = zero, pos1 = zero;
    for (i = 0; i + 8 <= n; i += 8) {
        f64x4 a = LOAD4(row + i * size, wide), b = LOAD4(row + (i + 4) * size, wide);
        f64x4 da = a - centre, db = b - centre;
        shift0 += da;
        shift1 += db;
        m2_0 += da * da;
        m2_1 += db * db;
        pos0 += POSITIVE(a);
        pos1 += POSITIVE(b);
    }
    shift0 += shift1;
    m2_0 += m2_1;
    pos0 += pos1;
    double shift = LANES_SUM(shift0), m2 = LANES_SUM(m2_0), positive = LANES_SUM(pos0);
    for (; i < n; i++) {
        double v = VALUE(row, i, wide), d = v - mean;
        shift += d;
        m2 += d * d;
        positive += v > 0 ? v : 0;
    }
    if (!isfinite(m2) || !isfinite(shift)) { /* float64 deviations beyond about 1e154 overflow */
        moments_skipping_nan(row, n, wide, out);
        return;
    }
    m2 -= shift * shift / (double)n; /* the centering error: exact arithmetic would make shift 0 */
    out[0] = (double)n;
    out[1] = positive;
    out[2] = mean + shift / (double)n;
    out[3] = m2 < 0 ? 0 : m2;
}

WITH_AVX2_CLONE static void rows_of_float32(const char *x, Py_ssize_t rows, Py_ssize_t n, double *out)
{
    for (Py_ssize_t r = 0; r < rows; r++)
        row_moments(x + r * n * 4, n, 0, out + 4 * r);
}

WITH_AVX2_CLONE static void rows_of_float64(const char *x, Py_ssize_t rows, Py_ssize_t n, double *out)
{
    for (Py_ssize_t r = 0; r < rows; r++)
        row_moments(x + r * n * 8, n, 1, out + 4 * r);
}

PyDoc_STRVAR(row_moments_into_doc,
"row_moments_into(x, n, out, /)\n--\n\n"
"Partial moments (count, positive sum, mean, M2) of the rows of ``x``, written into ``out``.\n\n"
"``x``: a C-contiguous buffer of native float32 or float64 values, rows of ``n`` values;\n"
"``out``: a writable C-contiguous float64 buffer of 4 values per row. The GIL is released.");

static PyObject *row_moments_into(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *x_obj, *out_obj;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OnO:row_moments_into", &x_obj, &n, &out_obj))
        return NULL;
    Py_buffer x, out;
    if (PyObject_GetBuffer(x_obj, &x, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    PyObject *result = NULL;
    int wide = is_format(&x, 'd', 8);
    if (!wide && !is_format(&x, 'f', 4)) {
        PyErr_Format(PyExc_TypeError, "x: expected native float32 or float64 values, got buffer format '%s'",
                     x.format ? x.format : "B");
        goto done;
    }
    if (!is_format(&out, 'd', 8)) {
        PyErr_Format(PyExc_TypeError, "out: expected native float64 values, got buffer format '%s'",
                     out.format ? out.format : "B");
        goto done;
    }
    Py_ssize_t values = x.len / x.itemsize;
    if (n <= 0 || values % n != 0) {
        PyErr_Format(PyExc_ValueError, "n: expected a positive row length dividing the %zd values of x, got %zd",
                     values, n);
        goto done;
    }
    Py_ssize_t rows = values / n;
    if (out.len % (4 * (Py_ssize_t)sizeof(double)) != 0 || out.len / (4 * (Py_ssize_t)sizeof(double)) != rows) {
        PyErr_Format(PyExc_ValueError, "out: expected %zd float64 values (4 per row of x), got %zd", rows * 4,
                     out.len / out.itemsize);
        goto done;
    }
    if (overlap(&x, &out)) {
        PyErr_SetString(PyExc_ValueError, "out: expected memory apart from x's, got a buffer overlapping it");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (wide)
        rows_of_float64((const char *)x.buf, rows, n, (double *)out.buf);
    else
        rows_of_float32((const char *)x.buf, rows, n, (double *)out.buf);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&out);
    PyBuffer_Release(&x);
    return result;
}

static PyMethodDef methods[] = {
    {"row_moments_into", row_moments_into, METH_VARARGS, row_moments_into_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_row_moments",
    .m_doc = "The row kernel of memoxr.influence.kernels, in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__row_moments(void)
{
    return PyModule_Create(&module);
}
