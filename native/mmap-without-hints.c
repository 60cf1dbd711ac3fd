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
 * A hint never changes what a mapping is, only where it goes, so dropping
 * one is always allowed. MAP_FIXED requests are left alone. */
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    if ((flags & MAP_ANONYMOUS) && !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
        addr = NULL;
    /* syscall() returns -1 with errno set on failure: MAP_FAILED, as mmap does. */
    return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
    __attribute__((alias("mmap")));
