/* Preloaded into the server's node by bin/warmluad: anonymous mmap calls
 * lose their address hint, so the kernel places them next to each other.
 *
 * Why: this node's V8 (no pointer compression) asks for every 256 KB heap
 * page at a random address. The pages end up spread over the whole address
 * space, each needing its own page-table pages at every level: 2 MB of page
 * tables for 45 MB of heap. fork copies them for every runner and exit frees
 * them again. Placed by the kernel, the same heap needs 0.3 MB, and a hello
 * run back to back took 3.4-4.6 ms instead of 5.2-5.7 (hyperfine, A/B).
 * The heap's base is still randomised, by the kernel's own ASLR.
 *
 * A large reservation (V8's 512 MB code range) also starts on a 2 MiB
 * boundary. V8 puts its code pages at the start of the range, so the 2 MiB
 * stretch that holds them then holds nothing else, and the forker gathers
 * them into one huge page (hugepages.c). Placed by chance, the range began
 * mid-stretch about half the time, beside mappings the forker must leave
 * alone (a shared one, V8's read-only pages): the forker kept its code
 * pages as four mappings each, 20 to 30 more for every fork to copy and
 * every exit to tear down, and a hello took 4 to 10 % more CPU.
 *
 * A hint never changes what a mapping is, only where it goes, so dropping
 * one is always allowed. MAP_FIXED requests are left alone. */
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define HUGE_PAGE (2UL << 20)
#define LARGE_RESERVATION (64UL << 20)

static void *map(size_t length, int prot, int flags, int fd, off_t offset)
{
    /* syscall() returns -1 with errno set on failure: MAP_FAILED, as mmap does. */
    return (void *)syscall(SYS_mmap, NULL, length, prot, flags, fd, offset);
}

/* Maps 2 MiB more than asked, then gives back what lies before the first
 * boundary and past the length. A failed trim leaves a little more address
 * space reserved than asked, with nothing in it: the mapping is still good. */
static void *map_aligned(size_t length, int prot, int flags, int fd, off_t offset)
{
    char *start = map(length + HUGE_PAGE, prot, flags, fd, offset), *aligned, *end;
    if (start == MAP_FAILED)
        return map(length, prot, flags, fd, offset);
    aligned = (char *)(((unsigned long)start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    end = start + length + HUGE_PAGE;
    if (aligned > start && munmap(start, (size_t)(aligned - start)) < 0)
        return start; /* where it was placed, 2 MiB longer */
    if (end > aligned + length && munmap(aligned + length, (size_t)(end - (aligned + length))) < 0)
        return aligned; /* its tail still reserved */
    return aligned;
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    if (!(flags & MAP_ANONYMOUS) || (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
        return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
    if (prot == PROT_NONE && length >= LARGE_RESERVATION)
        return map_aligned(length, prot, flags, fd, offset);
    return map(length, prot, flags, fd, offset);
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
    __attribute__((alias("mmap")));
