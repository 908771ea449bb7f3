/* xmem: allocation wrappers that abort on out-of-memory.
 *
 * punchd cannot do anything useful once malloc fails, so every allocation in
 * the project goes through these and never returns NULL. */
#ifndef PUNCHD_XMEM_H
#define PUNCHD_XMEM_H

#include <stddef.h>

/* Each returns memory owned by the caller (free() it); never NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
