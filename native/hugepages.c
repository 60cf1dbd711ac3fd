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
 * uses; V8 may still unmap or protect any part of the stretch, as before.
 *
 * The same goes for V8's code pages (a read-write header, a guard page, the
 * code, read-write-executable, and another guard, per 256 KiB) and for the
 * first and last stretch of malloc's heap, which begins and ends wherever
 * the break did. Left in small pages, those were 700-900 of the forker's
 * 1,800-2,000 entries of 4 KiB here, each copied by every fork and cleared
 * by every exit. A rebuilt stretch has one protection throughout, so only
 * stretches whose mappings agree on it are rebuilt, or that hold code pages
 * and their headers (all read-write-executable then); guard pages become
 * usable memory, as holes do. Past a rebuilt top of the heap the break can
 * no longer grow, and glibc's malloc maps its memory instead, as it does
 * whenever something lies above the heap.
 *
 * Only plain mappings are rebuilt: a new one would not keep flags such as
 * wipe-on-fork or locked, which /proc/self/smaps shows. */
#include "addon.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE /* Linux 6.1; older kernels say EINVAL, and nothing is collapsed */
#define MADV_COLLAPSE 25
#endif

#define HUGE_PAGE (2UL << 20)
#define SMALL_PAGE 4096UL /* the rebuild is skipped with other page sizes */
#define MAX_STRETCHES 1024
/* A stretch with less than this in memory is left alone: the zeroes that
 * fill the rest would cost the forker up to 1.75 MiB, once, to save each
 * run under 64 entries (20 us of fork and exit). Half of the stretch, as
 * before, left most code stretches and heap edges out. */
#define MIN_RESIDENT (HUGE_PAGE / 8)

/* What the walk of the maps learns about one 2 MiB stretch that is not
 * within one mapping already. */
struct stretch {
    unsigned long start;
    unsigned long resident; /* bytes of its plain mappings in memory */
    int foreign;            /* other mappings in it too: files, the main stack, locked */
    int protection;         /* what its accessible mappings allow */
    int mixed;              /* they disagree on it, other than as code pages do */
    char *copy;             /* where its contents are gathered */
};

static struct stretch stretches[MAX_STRETCHES];
static int stretch_count;

/* VmFlags that a rebuilt mapping has too, or may lose: read, write,
 * execute, may read, write and exec, accounted or not, soft-dirty,
 * MADV_HUGEPAGE, and MADV_NOHUGEPAGE. The server's thread stacks carry the
 * last; in the forker no thread runs on them, and V8 maps its heap beside
 * them, so keeping them in small pages kept their V8 neighbours in small
 * pages too (450 of 1,250 entries of 4 KiB on one layout). */
static int has_plain_flags(const char *flags)
{
    static const char plain[] = " rd wr ex mr mw me ac nr sd hg nh ";
    for (const char *flag = flags; *flag != '\0'; flag++) {
        char token[5] = " ";
        if (*flag == ' ')
            continue;
        if (flag[1] == '\0' || (flag[2] != ' ' && flag[2] != '\0'))
            return 0;
        memcpy(token + 1, flag, 2);
        token[3] = ' ';
        if (strstr(plain, token) == NULL)
            return 0;
        flag++;
    }
    return 1;
}

/* Private and anonymous: unnamed (V8's heap and code, guard pages and the
 * like) or malloc's heap. */
static int is_private_anonymous(const struct mapping *m)
{
    return m->perms[3] == 'p' && m->inode == 0 && (m->name[0] == '\0' || strcmp(m->name, "[heap]") == 0);
}

static int protection_of(const struct mapping *m)
{
    return (m->perms[0] == 'r' ? PROT_READ : 0) | (m->perms[1] == 'w' ? PROT_WRITE : 0) |
           (m->perms[2] == 'x' ? PROT_EXEC : 0);
}

/* A stretch takes its mappings' protection if they agree; a code page's
 * read-write header beside its code takes the code's. Anything else would
 * give a mapping more than it has (read-only data made writable, say). */
static void note_protection(struct stretch *s, int protection)
{
    const int data = PROT_READ | PROT_WRITE, code = data | PROT_EXEC;
    if (s->protection == 0 || s->protection == protection)
        s->protection = protection;
    else if ((s->protection | protection) == code && (s->protection == data || protection == data))
        s->protection = code;
    else
        s->mixed = 1;
}

static unsigned long resident_bytes(unsigned long from, unsigned long to)
{
    unsigned char in_memory[HUGE_PAGE / SMALL_PAGE];
    unsigned long bytes = 0;
    if (mincore((void *)from, to - from, in_memory) < 0)
        return 0; /* counts as not in memory: at worst the stretch is left alone */
    for (unsigned long i = 0; i < (to - from) / SMALL_PAGE; i++)
        bytes += (in_memory[i] & 1) * SMALL_PAGE;
    return bytes;
}

/* The entry for the stretch at `start`: the last one, as maps are sorted.
 * NULL when the table is full: later stretches are left alone. */
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

static void note_stretch(unsigned long start, const struct mapping *m, int plain)
{
    unsigned long from = m->start > start ? m->start : start;
    unsigned long to = m->end < start + HUGE_PAGE ? m->end : start + HUGE_PAGE;
    struct stretch *s;
    if (plain && from == start && to == start + HUGE_PAGE)
        return; /* within one mapping: the collapse takes it as it is */
    s = stretch_at(start);
    if (!s)
        return;
    if (!plain)
        s->foreign = 1;
    else if (protection_of(m) == 0) {
        if (resident_bytes(from, to) > 0)
            s->foreign = 1; /* contents it cannot read to copy */
    } else {
        s->resident += resident_bytes(from, to);
        note_protection(s, protection_of(m));
    }
}

/* Notes each stretch a mapping touches; of any other mapping, only its first
 * and last stretch matter (those in between it covers whole). A guard page
 * counts as plain whatever its flags: with no access and nothing in memory,
 * it has nothing to keep. */
static void survey(const struct mapping *m, void *context)
{
    unsigned long first = m->start & ~(HUGE_PAGE - 1), last = (m->end - 1) & ~(HUGE_PAGE - 1);
    (void)context;
    if (!is_private_anonymous(m) || (protection_of(m) != 0 && !has_plain_flags(m->flags))) {
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
    return !s->foreign && !s->mixed && s->resident >= MIN_RESIDENT;
}

/* Copies the part of a mapping that lies in each stretch being rebuilt
 * (guard pages hold nothing). */
static void gather(const struct mapping *m, void *context)
{
    (void)context;
    if (!is_private_anonymous(m) || !(protection_of(m) & PROT_READ))
        return;
    for (int i = 0; i < stretch_count; i++) {
        struct stretch *s = &stretches[i];
        unsigned long from = m->start > s->start ? m->start : s->start;
        unsigned long to = m->end < s->start + HUGE_PAGE ? m->end : s->start + HUGE_PAGE;
        if (s->copy && from < to)
            memcpy(s->copy + (from - s->start), (void *)from, to - from);
    }
}

/* Moves a stretch's copy over it, with the stretch's protection. mremap
 * unmaps the old mappings before it moves the copy, and if the move then
 * fails (ENOMEM) the copy is all that is left: it is copied back into a new
 * mapping. If even that fails, or the protection cannot be given (code
 * that cannot run), the forker cannot fork what V8 expects and leaves; the
 * server then forks its spares itself. */
static void move_copy_over(struct stretch *s)
{
    void *old = (void *)s->start, *fresh;
    if (mremap(s->copy, HUGE_PAGE, HUGE_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, old) != MAP_FAILED) {
        if (mprotect(old, HUGE_PAGE, s->protection) < 0)
            _exit(1);
        return;
    }
    fresh = mmap(old, HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (fresh == old) {
        memcpy(fresh, s->copy, HUGE_PAGE);
        munmap(s->copy, HUGE_PAGE);
        if (mprotect(old, HUGE_PAGE, s->protection) < 0)
            _exit(1);
        return;
    }
    if (fresh != MAP_FAILED)
        munmap(fresh, HUGE_PAGE); /* before Linux 4.17, a hint: the range is taken */
    if (fresh == MAP_FAILED && errno != EEXIST)
        _exit(1);
    munmap(s->copy, HUGE_PAGE); /* the old mappings are still there */
}

/* Rebuilds the stretches that need it. The copies are mapped 2 MiB-aligned,
 * so that none of them can lie in a stretch's holes. */
static void rebuild_stretches(void)
{
    size_t wanted = 0, length;
    char *mapped, *copies;
    for (int i = 0; i < stretch_count; i++)
        wanted += needs_rebuilding(&stretches[i]);
    if (wanted == 0)
        return;
    length = (wanted + 1) * HUGE_PAGE;
    mapped = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapped == MAP_FAILED)
        return;
    copies = (char *)(((unsigned long)mapped + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    if (copies > mapped)
        munmap(mapped, (size_t)(copies - mapped));
    munmap(copies + wanted * HUGE_PAGE, (size_t)(mapped + length - (copies + wanted * HUGE_PAGE)));
    for (int i = 0, next = 0; i < stretch_count; i++)
        if (needs_rebuilding(&stretches[i]))
            stretches[i].copy = copies + (size_t)next++ * HUGE_PAGE;
    /* No mapping changes while the maps are read: the copies are all there. */
    if (for_each_mapping(gather, NULL) < 0) {
        munmap(copies, wanted * HUGE_PAGE);
        return;
    }
    for (int i = 0; i < stretch_count; i++)
        if (stretches[i].copy)
            move_copy_over(&stretches[i]);
}

/* Each whole 2 MiB of a private anonymous mapping that can be read (the V8
 * heap and code, malloc's) becomes a huge page. Failures leave small
 * pages: only slower. */
static void collapse(const struct mapping *m, void *context)
{
    unsigned long from = (m->start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    unsigned long to = m->end & ~(HUGE_PAGE - 1);
    (void)context;
    if (m->perms[0] == 'r' && m->perms[3] == 'p' && m->inode == 0 && strcmp(m->name, "[stack]") != 0 && from < to)
        madvise((void *)from, to - from, MADV_COLLAPSE);
}

void gather_into_huge_pages(void)
{
    stretch_count = 0;
    /* A walk that missed a mapping would take it for a hole, and unmap it. */
    if (sysconf(_SC_PAGESIZE) == (long)SMALL_PAGE && for_each_mapping_with_flags(survey, NULL) == 0)
        rebuild_stretches();
    for_each_mapping(collapse, NULL);
}
