/*
 * The four memory functions every blob links with (parasite/runtime/string.c).
 * gcc may emit calls to memcpy/memset/memmove/memcmp for struct copies and
 * initialisers even under -ffreestanding -fno-builtin, so a blob must define
 * them itself; this header lets blob code call them explicitly too.
 */
#ifndef CRPP_PARASITE_INCLUDE_CRPP_STRING_H_
#define CRPP_PARASITE_INCLUDE_CRPP_STRING_H_

#include <stddef.h>

void* memcpy(void* dest, const void* src, size_t n);
void* memmove(void* dest, const void* src, size_t n);
void* memset(void* dest, int c, size_t n);
int memcmp(const void* a, const void* b, size_t n);

#endif /* CRPP_PARASITE_INCLUDE_CRPP_STRING_H_ */
