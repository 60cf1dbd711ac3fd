/* Walking /proc/self/maps, for the parts that act on every mapping: fork
 * (MADV_DOFORK), the forker (huge pages) and prefaulting (pagemap).
 * It reads with read(2) into a static buffer, not stdio: the forker walks
 * its maps with its heap in huge pages, and must not write that heap. */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Parses one line of /proc/self/maps; 0 if it is not one. */
static int parse_mapping(char *line, struct mapping *m)
{
    int name_at = 0;
    if (sscanf(line, "%lx-%lx %4s %*x %*s %lu %n", &m->start, &m->end, m->perms, &m->inode, &name_at) < 4)
        return 0;
    m->name = name_at > 0 ? line + name_at : "";
    return 1;
}

int for_each_mapping(void (*visit)(const struct mapping *m, void *context), void *context)
{
    static char buffer[16384];
    size_t held = 0;
    int skipping = 0; /* in a line longer than the buffer (a very long path): dropped */
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps < 0)
        return -1;
    for (;;) {
        ssize_t got;
        char *line = buffer, *newline;
        do
            got = read(maps, buffer + held, sizeof buffer - 1 - held);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            close(maps);
            return -1;
        }
        held += (size_t)got;
        buffer[held] = '\0';
        while ((newline = strchr(line, '\n')) != NULL) {
            struct mapping m;
            *newline = '\0';
            if (!skipping && parse_mapping(line, &m))
                visit(&m, context);
            skipping = 0;
            line = newline + 1;
        }
        held -= (size_t)(line - buffer);
        memmove(buffer, line, held);
        if (got == 0)
            break;
        if (held == sizeof buffer - 1) {
            held = 0;
            skipping = 1;
        }
    }
    close(maps);
    return 0; /* the kernel ends the last line with a newline too */
}
