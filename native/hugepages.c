/* Gathering the forker's private memory into 2 MiB huge pages, once, before
 * its first fork (forker.c says why: fork and exit then handle 512 pages in
 * one page-table entry).
 *
 * MADV_COLLAPSE only takes a 2 MiB stretch that lies within one mapping.
 * V8 maps its heap 256 KiB at a time and unmaps pages it frees, so most of
 * its stretches are several mappings, with holes, that the kernel will not
 * merge (each has its own anon_vma). Such a stretch is first rebuilt as one
 * mapping: its contents are copied into a new 2 MiB mapping, which mremap
 * then moves over the old ones. The holes become zeroed memory that nobody
 * uses; V8 may still unmap or protect any part of the stretch, as before. */
#include "addon.h"

#include <string.h>
#include <sys/mman.h>

#ifndef MADV_COLLAPSE /* Linux 6.1; older kernels say EINVAL, and nothing is collapsed */
#define MADV_COLLAPSE 25
#endif

#define HUGE_PAGE (2UL << 20)
#define MAX_STRETCHES 1024
/* A stretch less than half in memory is left alone: the zeroes that fill
 * the rest would cost more memory than its page-table entries cost time. */
#define MIN_RESIDENT (HUGE_PAGE / 2)
#define SMALL_PAGE 4096UL

/* What the walk of the maps learns about one 2 MiB stretch. */
struct stretch {
    unsigned long start;
    unsigned long mapped;   /* bytes of it in private writable anonymous mappings */
    unsigned long resident; /* bytes of those in memory */
    int mappings;           /* how many of those */
    int foreign;            /* other mappings in it too: code, files, guards */
    char *copy;             /* where its contents are gathered */
};

static struct stretch stretches[MAX_STRETCHES];
static int stretch_count;

static int is_private_anonymous(const struct mapping *m)
{
    return strcmp(m->perms, "rw-p") == 0 && m->inode == 0 && m->name[0] == '\0';
}

static unsigned long resident_bytes(unsigned long from, unsigned long to)
{
    unsigned char in_memory[HUGE_PAGE / SMALL_PAGE];
    unsigned long bytes = 0;
    if (mincore((void *)from, to - from, in_memory) < 0)
        return 0;
    for (unsigned long i = 0; i < (to - from) / SMALL_PAGE; i++)
        bytes += (in_memory[i] & 1) * SMALL_PAGE;
    return bytes;
}

/* The entry for the stretch at `start`: the last one, as maps are sorted. */
static struct stretch *stretch_at(unsigned long start)
{
    struct stretch *last = stretch_count > 0 ? &stretches[stretch_count - 1] : NULL;
    if (last && last->start == start)
        return last;
    if (stretch_count == MAX_STRETCHES)
        return NULL;
    last = &stretches[stretch_count++];
    memset(last, 0, sizeof *last);
    last->start = start;
    return last;
}

static void note_stretch(unsigned long start, const struct mapping *m, int ours)
{
    struct stretch *s = stretch_at(start);
    unsigned long from = m->start > start ? m->start : start;
    unsigned long to = m->end < start + HUGE_PAGE ? m->end : start + HUGE_PAGE;
    if (!s)
        return;
    if (!ours) {
        s->foreign = 1;
        return;
    }
    s->mapped += to - from;
    s->resident += resident_bytes(from, to);
    s->mappings++;
}

/* Notes each stretch a mapping touches; of any other mapping, only its first
 * and last stretch matter (those in between it covers whole). */
static void survey(const struct mapping *m, void *context)
{
    unsigned long first = m->start & ~(HUGE_PAGE - 1), last = (m->end - 1) & ~(HUGE_PAGE - 1);
    (void)context;
    if (!is_private_anonymous(m)) {
        note_stretch(first, m, 0);
        if (last != first)
            note_stretch(last, m, 0);
        return;
    }
    for (unsigned long s = first; s <= last; s += HUGE_PAGE)
        note_stretch(s, m, 1);
}

static int needs_rebuilding(const struct stretch *s)
{
    int whole = s->mappings == 1 && s->mapped == HUGE_PAGE;
    return !s->foreign && !whole && s->resident >= MIN_RESIDENT;
}

/* Copies the part of a mapping that lies in each stretch being rebuilt. */
static void gather(const struct mapping *m, void *context)
{
    (void)context;
    if (!is_private_anonymous(m))
        return;
    for (int i = 0; i < stretch_count; i++) {
        struct stretch *s = &stretches[i];
        unsigned long from = m->start > s->start ? m->start : s->start;
        unsigned long to = m->end < s->start + HUGE_PAGE ? m->end : s->start + HUGE_PAGE;
        if (s->copy && from < to)
            memcpy(s->copy + (from - s->start), (void *)from, to - from);
    }
}

/* Rebuilds the stretches that need it; any failure leaves one as it was. */
static void rebuild_stretches(void)
{
    int wanted = 0;
    char *copies;
    for (int i = 0; i < stretch_count; i++)
        wanted += needs_rebuilding(&stretches[i]);
    if (wanted == 0)
        return;
    copies = mmap(NULL, wanted * HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (copies == MAP_FAILED)
        return;
    for (int i = 0, next = 0; i < stretch_count; i++) {
        struct stretch *s = &stretches[i];
        if (!needs_rebuilding(s))
            continue;
        if ((unsigned long)copies < s->start + HUGE_PAGE && s->start < (unsigned long)copies + wanted * HUGE_PAGE) {
            munmap(copies, wanted * HUGE_PAGE); /* it landed in a stretch's holes */
            return;
        }
        s->copy = copies + (size_t)next++ * HUGE_PAGE;
    }
    /* No mapping changes while the maps are read: the copies are all there. */
    if (for_each_mapping(gather, NULL) < 0) {
        munmap(copies, wanted * HUGE_PAGE);
        return;
    }
    for (int i = 0; i < stretch_count; i++) {
        struct stretch *s = &stretches[i];
        if (s->copy && mremap(s->copy, HUGE_PAGE, HUGE_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)s->start) == MAP_FAILED)
            munmap(s->copy, HUGE_PAGE);
    }
}

/* Each whole 2 MiB of a private writable anonymous mapping (the V8 heap,
 * malloc's) becomes a huge page. Failures leave small pages: only slower. */
static void collapse(const struct mapping *m, void *context)
{
    unsigned long from = (m->start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    unsigned long to = m->end & ~(HUGE_PAGE - 1);
    (void)context;
    if (strcmp(m->perms, "rw-p") == 0 && m->inode == 0 && strcmp(m->name, "[stack]") != 0 && from < to)
        madvise((void *)from, to - from, MADV_COLLAPSE);
}

void gather_into_huge_pages(void)
{
    stretch_count = 0;
    if (for_each_mapping(survey, NULL) == 0)
        rebuild_stretches();
    for_each_mapping(collapse, NULL);
}
