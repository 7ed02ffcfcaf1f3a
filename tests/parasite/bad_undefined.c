/*
 * A deliberately bad blob: it calls memcpy without defining it, as code that
 * forgot it has no libc would. blob2h must refuse the linked result.
 */
void* memcpy(void* dest, const void* src, unsigned long n);

void copy_name(char* dest, const char* src) { memcpy(dest, src, 16); }
