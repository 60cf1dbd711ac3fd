/* Walking /proc/self/maps, for the parts that act on every mapping: fork
 * (MADV_DOFORK), the forker (huge pages) and prefaulting (pagemap); and
 * /proc/self/smaps, for the forker, which needs each mapping's VmFlags.
 * It reads with read(2) into a static buffer, not stdio: the forker walks
 * its maps with its heap in huge pages, and must not write that heap. */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Parses one line of /proc/self/maps (or a header line of smaps); 0 if it
 * is not one. */
static int parse_mapping(char *line, struct mapping *m)
{
    int name_at = 0;
    if (sscanf(line, "%lx-%lx %4s %*x %*s %lu %n", &m->start, &m->end, m->perms, &m->inode, &name_at) < 4)
        return 0;
    m->name = name_at > 0 ? line + name_at : "";
    m->flags = "";
    return 1;
}

/* Calls `found` with each line of `path`, its newline cut. Returns -1 if
 * the file could not be read, 1 if a line longer than the buffer (a very
 * long path) had to be dropped, 0 otherwise. */
static int for_each_line(const char *path, void (*found)(char *line, void *state), void *state)
{
    static char buffer[16384];
    size_t held = 0;
    int skipping = 0, dropped = 0;
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0)
        return -1;
    for (;;) {
        ssize_t got;
        char *line = buffer, *newline;
        do
            got = read(file, buffer + held, sizeof buffer - 1 - held);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            close(file);
            return -1;
        }
        held += (size_t)got;
        buffer[held] = '\0';
        while ((newline = strchr(line, '\n')) != NULL) {
            *newline = '\0';
            if (!skipping)
                found(line, state);
            skipping = 0;
            line = newline + 1;
        }
        held -= (size_t)(line - buffer);
        memmove(buffer, line, held);
        if (got == 0)
            break;
        if (held == sizeof buffer - 1) {
            held = 0;
            skipping = dropped = 1;
        }
    }
    close(file);
    return dropped; /* the kernel ends the last line with a newline too */
}

struct walk {
    void (*visit)(const struct mapping *m, void *context);
    void *context;
    /* smaps: the mapping whose VmFlags line is still to come */
    struct mapping pending;
    char name[256]; /* its name, cut short if long: only its start is looked at */
    int have_pending, lost;
};

static void maps_line(char *line, void *state)
{
    struct walk *walk = state;
    struct mapping m;
    if (parse_mapping(line, &m))
        walk->visit(&m, walk->context);
}

/* A mapping's entry in smaps is its maps line, then fields, VmFlags last. */
static void smaps_line(char *line, void *state)
{
    struct walk *walk = state;
    struct mapping m;
    if (strncmp(line, "VmFlags:", 8) == 0) {
        if (walk->have_pending) {
            walk->pending.flags = line + 8;
            walk->visit(&walk->pending, walk->context);
        } else {
            walk->lost = 1; /* its header was dropped */
        }
        walk->have_pending = 0;
    } else if (parse_mapping(line, &m)) {
        walk->lost |= walk->have_pending; /* no VmFlags: an older kernel */
        snprintf(walk->name, sizeof walk->name, "%s", m.name);
        m.name = walk->name;
        walk->pending = m;
        walk->have_pending = 1;
    }
}

int for_each_mapping(void (*visit)(const struct mapping *m, void *context), void *context)
{
    struct walk walk = { .visit = visit, .context = context };
    return for_each_line("/proc/self/maps", maps_line, &walk) == 0 ? 0 : -1;
}

int for_each_mapping_with_flags(void (*visit)(const struct mapping *m, void *context), void *context)
{
    struct walk walk = { .visit = visit, .context = context };
    int read = for_each_line("/proc/self/smaps", smaps_line, &walk);
    return read == 0 && !walk.lost && !walk.have_pending ? 0 : -1;
}
