/* The forker leaves malloc no free chunk to hand out, so that a runner's
 * mallocs come from the top of the heap.
 *
 * The server's malloc heap is full of holes: 525 free chunks, 5.6 MB of a
 * 10 MB heap here. A runner's mallocs were served from them, wherever they
 * lay, and the first write to each page of theirs copied it: a hello wrote
 * 148 pages of the heap. With every hole taken in the forker, once, a
 * runner's mallocs come from the top, a few pages side by side, and a hello
 * writes 33. The chunks taken are never used: malloc_trim has given back
 * the pages inside them, and only their edges are written again.
 *
 * glibc only: malloc_info is the one interface that tells the free chunks'
 * sizes, and it is glibc's. A chunk left free costs a page copy, never
 * correctness. */
#include "addon.h"

#ifdef __GLIBC__
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The chunk sizes the per-thread cache keeps, and how many of each
 * (glibc's defaults): it keeps them out of malloc_info's listing. */
#define CACHED_CHUNK_MIN 32
#define CACHED_CHUNK_MAX 1040
#define CACHED_PER_SIZE 7
/* Each round takes whole bins of one size and one chunk of each other bin;
 * a large bin holds chunks of several sizes (14 at most here). */
#define ROUNDS_MAX 64

/* Takes a chunk of `chunk` bytes, header included, for good. */
static int take_chunk(size_t chunk)
{
    void *volatile taken = malloc(chunk - sizeof(size_t));
    return taken != NULL;
}

/* Takes chunks of the sizes malloc_info lists as free in the main arena
 * (listed first). Each line is a bin: its smallest and largest chunk
 * (their size fields, flags included), and how many it holds. The fast
 * bins, whose lines give a size class instead, are empty: malloc_trim
 * merged their chunks. Returns how many were taken. */
static size_t take_listed_chunks(void)
{
    char *listing = NULL, *at, *end;
    size_t length = 0, taken = 0;
    FILE *out = open_memstream(&listing, &length);
    if (out == NULL)
        return 0;
    if (malloc_info(0, out) != 0) {
        fclose(out);
        free(listing);
        return 0;
    }
    if (fclose(out) != 0 || (end = strstr(listing, "</sizes>")) == NULL) {
        free(listing);
        return 0;
    }
    *end = '\0';
    for (at = listing; (at = strstr(at, " from=\"")) != NULL; at++) {
        size_t smallest, largest, total, count;
        if (sscanf(at, " from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"", &smallest, &largest, &total, &count) != 4)
            continue;
        smallest &= ~(size_t)7;
        largest &= ~(size_t)7;
        if (smallest != largest)
            count = 1; /* the largest only: a smaller request would split it */
        for (; count > 0 && take_chunk(largest); count--)
            taken++;
    }
    free(listing);
    return taken;
}

void leave_malloc_no_free_chunks(void)
{
    /* First, so that the chunks taken below have no pages in memory. */
    malloc_trim(0);
    for (size_t chunk = CACHED_CHUNK_MIN; chunk <= CACHED_CHUNK_MAX; chunk += 16)
        for (int i = 0; i < CACHED_PER_SIZE; i++)
            take_chunk(chunk);
    for (int round = 0; round < ROUNDS_MAX && take_listed_chunks() > 0; round++)
        ;
}
#else
void leave_malloc_no_free_chunks(void)
{
}
#endif
