/* Buffer checks shared by memoxr's C kernels (_row_moments.c, _average_ranks.c). */
#ifndef MEMOXR_BUFFERS_H
#define MEMOXR_BUFFERS_H

#include <Python.h>

/* Whether a buffer holds `code` values ('f', 'd', '?') in this machine's byte order: a struct-module
 * format of one code, with no prefix or one that means native order ("<f" from numpy's '<f4'). */
static inline int is_format(const Py_buffer *view, char code, Py_ssize_t itemsize)
{
    const char *format = view->format;
    if (format == NULL || view->itemsize != itemsize)
        return 0;
    if (*format == '@' || *format == '=' || *format == (PY_LITTLE_ENDIAN ? '<' : '>') ||
        (!PY_LITTLE_ENDIAN && *format == '!'))
        format++;
    return format[0] == code && format[1] == '\0';
}

/* Whether two non-empty buffers share memory. */
static inline int overlap(const Py_buffer *a, const Py_buffer *b)
{
    const char *a0 = a->buf, *b0 = b->buf;
    return a->len > 0 && b->len > 0 && a0 < b0 + b->len && b0 < a0 + a->len;
}

#endif
