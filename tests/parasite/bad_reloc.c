/*
 * A deliberately bad blob: linked as a shared object with default
 * visibility, the pointer below needs R_X86_64_64 (and a GOT entry needs
 * R_X86_64_GLOB_DAT) against a preemptible symbol, which a flat copy plus
 * base fix-ups cannot provide. blob2h must refuse it.
 */
int shared_value = 1;
int* const value_ptr = &shared_value;

int read_value(void) { return *value_ptr; }
