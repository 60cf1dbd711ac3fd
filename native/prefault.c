/* Learned prefaulting: a spare left waiting takes the page faults that runs
 * before it took on their client's time.
 *
 * A runner shares every page with the warm process it was forked from, and
 * its first write to each one is a copy-on-write fault: about 3 us each,
 * some 200 of them in a hello and 650 in the bench's module script. And
 * fork copies no page table entry of a file mapping, so a runner also
 * faults in each page of node's code it runs. Most are the same pages run
 * after run (the young generation V8 allocates into, the Lua state's hot
 * objects, malloc's top, the interpreter's code). So the first runners
 * after a (re)warm count the pages they made their own after their job
 * came (/proc/self/pagemap), in a table shared by all of the server's
 * children, and a spare that waits writes in (MADV_POPULATE_WRITE: as if
 * written, contents unchanged) or maps (MADV_POPULATE_READ) the pages most
 * of them did. Pages only some scripts touch are left to them: prefaulting
 * the union of a hello's and a module script's pages cost hellos more than
 * it saved them. A wrong or stale page only costs a copy, never
 * correctness.
 *
 * A set fits the scripts it was learned from. When another script takes
 * over (16 runs in a row of one script no learner ran), the set is emptied
 * and learned again from the runs that follow. Back to back, hellos took
 * 1.25 of the time on a set learned from the bench's module script, and
 * the module script, after hellos, 0.95 on a set learned again. A server
 * that runs a different script each time keeps its set. */
#include "addon.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE /* Linux 5.14; older kernels say EINVAL, and nothing is prefaulted */
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* Every page written in is private to the spare: this bounds what learning
 * adds to an idle runner's unique memory (2 MiB). Mapping file pages costs
 * no memory. */
#define WRITTEN_PAGES_MAX 512
#define MAPPED_PAGES_MAX 4096
#define PREFAULTED_PAGES_MAX (WRITTEN_PAGES_MAX + MAPPED_PAGES_MAX)
/* Pages counted at most, and the open-addressing table that counts them
 * (it stays fast up to three quarters full). */
#define COUNTED_PAGES_MAX 6144
#define SLOTS 8192
/* The runs that learn; later ones only prefault, and pay nothing more.
 * Learning reads pagemap twice, 1.3 ms each time here, and back to back a
 * learner's second read takes CPU from the next run: 16 learners rather
 * than 50 made the first 50 hellos after a start 0.5 ms faster. */
#define LEARNING_RUNS 16
/* Runs in a row of one script no learner ran that make a set learned
 * again; but a set serves this many runs first, so that learning (two
 * walks of pagemap per learner) stays a small part of the work. */
#define STRANGERS_BEFORE_RELEARNING 16
#define RUNS_PER_SET_MIN 128

#define PAGE 4096UL
#define PM_PRESENT (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56) /* mapped by this process alone */
#define READ_PAGE 1 /* in a learned address: a file page, to map rather than copy */

struct learned {
    uint32_t pages;      /* slots in use */
    uint32_t learners;   /* spares that took up learning, up to LEARNING_RUNS */
    uint32_t lessons;    /* runs that have counted their pages */
    uint32_t generation; /* times the set was emptied */
    uint32_t runs;       /* runs that ended on this set, learners aside */
    uint32_t strangers;  /* of which the last ones in a row ran `stranger`, */
    uint64_t stranger;   /* a script no learner ran */
    uint64_t scripts[LEARNING_RUNS]; /* what each lesson ran (hash of its name) */
    struct {
        uint64_t page; /* 0: empty */
        uint32_t runs; /* how many runs wrote it */
    } slot[SLOTS];
    /* Once all lessons are in, the pages to prefault, sorted, for every
     * spare to follow: generation + 1 of the set it was drawn from when
     * ready, and of the set one spare claimed to draw it. */
    uint32_t plan_ready;
    uint32_t plan_claimed;
    uint32_t plan_count;
    uint64_t plan[PREFAULTED_PAGES_MAX];
};

/* MAP_SHARED: the server's, inherited by the forker, spares and runners. */
static struct learned *learned;
/* This runner's own pages when it started waiting (sorted), if it learns. */
static uint64_t *own_before;
static size_t own_before_count;
static int learning;
static uint32_t learning_generation;
/* What this runner runs (noteRunScript). */
static uint64_t run_script;

struct own_page_search {
    int pagemap;
    void (*found)(uint64_t page);
};

static void find_own_pages(const struct mapping *m, void *context)
{
    static uint64_t entries[4096];
    const struct own_page_search *search = context;
    int written = m->perms[1] == 'w' && m->perms[3] == 'p';
    uint64_t must = written ? PM_PRESENT | PM_EXCLUSIVE : PM_PRESENT;
    if (!written && (m->inode == 0 || m->perms[0] != 'r'))
        return;
    for (uintptr_t at = m->start; at < m->end;) {
        size_t want = (m->end - at) / PAGE < 4096 ? (m->end - at) / PAGE : 4096;
        ssize_t got = pread(search->pagemap, entries, want * 8, (off_t)(at / PAGE * 8));
        if (got <= 0)
            return;
        for (size_t i = 0; i < (size_t)got / 8; i++)
            if ((entries[i] & must) == must)
                search->found((at + i * PAGE) | (written ? 0 : READ_PAGE));
        at += (size_t)got / 8 * PAGE;
    }
}

/* Calls `found(page)` for each page this process has made its own: of a
 * private writable mapping, present and mapped by this process alone; and
 * for each page of a file it has mapped (fork copies no page table entry
 * of a file mapping: a runner faults in every page of node's code it runs).
 * File pages come with READ_PAGE set in the address's low bits. Returns -1
 * if /proc failed. */
static int for_each_own_page(void (*found)(uint64_t page))
{
    struct own_page_search search = { open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), found };
    int walked;
    if (search.pagemap < 0)
        return -1;
    walked = for_each_mapping(find_own_pages, &search);
    close(search.pagemap);
    return walked;
}

static void note_own_before(uint64_t page)
{
    static size_t capacity;
    if (own_before_count == capacity) {
        size_t grown_capacity = capacity * 2 + 1024;
        uint64_t *grown = realloc(own_before, grown_capacity * sizeof *grown);
        if (grown == NULL) {
            learning = 0; /* learning is an optimisation: give it up, not the run */
            return;
        }
        own_before = grown;
        capacity = grown_capacity;
    }
    own_before[own_before_count++] = page; /* /proc lists mappings in order: sorted */
}

static int was_own_before(uint64_t page)
{
    size_t low = 0, high = own_before_count;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (own_before[mid] == page)
            return 1;
        if (own_before[mid] < page)
            low = mid + 1;
        else
            high = mid;
    }
    return 0;
}

/* Counts a page this run wrote, adding it to the table unless that is full.
 * Runners end concurrently: a slot is claimed with compare-and-swap. */
static void count_page(uint64_t page)
{
    if (was_own_before(page))
        return;
    for (uint64_t i = (page / PAGE) * 2654435761u % SLOTS, probes = 0; probes < SLOTS; i = (i + 1) % SLOTS, probes++) {
        uint64_t seen = __atomic_load_n(&learned->slot[i].page, __ATOMIC_RELAXED);
        if (seen == 0) {
            if (__atomic_add_fetch(&learned->pages, 1, __ATOMIC_RELAXED) > COUNTED_PAGES_MAX)
                return; /* full (the count overshoots harmlessly) */
            if (!__atomic_compare_exchange_n(&learned->slot[i].page, &seen, page, 0, __ATOMIC_RELAXED,
                                             __ATOMIC_RELAXED))
                __atomic_sub_fetch(&learned->pages, 1, __ATOMIC_RELAXED); /* another runner's now */
            else
                seen = page;
        }
        if (seen == page) {
            __atomic_add_fetch(&learned->slot[i].runs, 1, __ATOMIC_RELAXED);
            return;
        }
    }
}

/* sharePrefaultSet(): a new, empty set for the spares forked from now on
 * (at start and after each re-warm, whose heap is laid out anew). Without
 * memory for it, spares just do not prefault. */
static napi_value js_share_prefault_set(napi_env env, napi_callback_info info)
{
    (void)env;
    (void)info;
    if (learned != NULL)
        munmap(learned, sizeof *learned); /* children keep their own mapping of it */
    learned = mmap(NULL, sizeof *learned, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (learned == MAP_FAILED)
        learned = NULL;
    return NULL;
}

static int compare_pages(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Draws from the set the pages most learning runs wrote, sorted, into
 * `pages`; returns how many. */
static size_t select_pages(uint64_t *pages)
{
    size_t count = 0, written = 0;
    uint32_t lessons = __atomic_load_n(&learned->lessons, __ATOMIC_RELAXED);
    for (size_t i = 0; i < SLOTS; i++) {
        uint64_t page = __atomic_load_n(&learned->slot[i].page, __ATOMIC_RELAXED);
        if (page == 0 || 2 * __atomic_load_n(&learned->slot[i].runs, __ATOMIC_RELAXED) <= lessons)
            continue;
        if (page & READ_PAGE ? count - written < MAPPED_PAGES_MAX : written < WRITTEN_PAGES_MAX) {
            pages[count++] = page;
            written += !(page & READ_PAGE);
        }
    }
    qsort(pages, count, sizeof *pages, compare_pages);
    return count;
}

/* The pages to prefault, sorted. Once every lesson is in, the first spare
 * to get there draws them for all (the shared plan): drawing and sorting
 * them took each spare 0.1 ms or so, and its own sort buffer from malloc's
 * heap. Until then, or if the plan's drawer has yet to finish, each spare
 * draws its own from the lessons so far. */
static size_t pages_to_prefault(const uint64_t **pages)
{
    static uint64_t own[PREFAULTED_PAGES_MAX];
    uint32_t set = __atomic_load_n(&learned->generation, __ATOMIC_RELAXED) + 1;
    uint32_t claimed = __atomic_load_n(&learned->plan_claimed, __ATOMIC_RELAXED);
    if (__atomic_load_n(&learned->plan_ready, __ATOMIC_ACQUIRE) == set) {
        *pages = learned->plan;
        return __atomic_load_n(&learned->plan_count, __ATOMIC_RELAXED);
    }
    if (__atomic_load_n(&learned->lessons, __ATOMIC_RELAXED) >= LEARNING_RUNS && claimed != set &&
        __atomic_compare_exchange_n(&learned->plan_claimed, &claimed, set, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        size_t count = select_pages(learned->plan);
        __atomic_store_n(&learned->plan_count, count, __ATOMIC_RELAXED);
        __atomic_store_n(&learned->plan_ready, set, __ATOMIC_RELEASE);
        *pages = learned->plan;
        return count;
    }
    *pages = own;
    return select_pages(own);
}

/* prefaultLearned(line): for a spare that has waited a while for its job
 * on `line`. One of the first ones learns: it notes which pages are its own
 * already, and prefaults nothing, so that its count is not biased by what
 * it was given. The others write in the pages that most learning runs
 * wrote, and stop when the job comes: the run takes the rest as faults. */
static napi_value js_prefault_learned(napi_env env, napi_callback_info info)
{
    const uint64_t *pages;
    size_t argc = 1, count;
    napi_value argv[1];
    struct pollfd line = { .events = POLLIN };
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &line.fd) || learned == NULL)
        return NULL;
    if (__atomic_add_fetch(&learned->learners, 1, __ATOMIC_RELAXED) <= LEARNING_RUNS) {
        learning = 1; /* note_own_before gives up when out of memory */
        learning_generation = __atomic_load_n(&learned->generation, __ATOMIC_RELAXED);
        if (for_each_own_page(note_own_before) < 0)
            learning = 0;
        return NULL;
    }
    count = pages_to_prefault(&pages);
    /* One call per run of adjacent pages: each call has its own set-up. */
    for (size_t first = 0, last; first < count && poll(&line, 1, 0) == 0; first = last + 1) {
        uint64_t kind = pages[first] & READ_PAGE;
        for (last = first; last + 1 < count && pages[last + 1] == pages[last] + PAGE; last++)
            ;
        /* gone or unwritable: nothing to gain */
        madvise((void *)(pages[first] - kind), (last - first + 1) * PAGE,
                kind ? MADV_POPULATE_READ : MADV_POPULATE_WRITE);
    }
    return NULL;
}

/* Empties the set, for the spares that wait from now on to learn it again.
 * One runner does it: the one that moves the generation on. */
static void empty_set(void)
{
    uint32_t generation = __atomic_load_n(&learned->generation, __ATOMIC_RELAXED);
    if (!__atomic_compare_exchange_n(&learned->generation, &generation, generation + 1, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    for (size_t i = 0; i < SLOTS; i++) {
        __atomic_store_n(&learned->slot[i].page, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&learned->slot[i].runs, 0, __ATOMIC_RELAXED);
    }
    for (size_t i = 0; i < LEARNING_RUNS; i++)
        __atomic_store_n(&learned->scripts[i], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&learned->pages, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&learned->lessons, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&learned->runs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&learned->strangers, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&learned->stranger, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&learned->learners, 0, __ATOMIC_RELEASE); /* last: learning starts again */
}

/* A run that did not learn: does the set still fit the scripts run? */
static void judge_set(void)
{
    uint32_t runs = __atomic_add_fetch(&learned->runs, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&learned->learners, __ATOMIC_RELAXED) < LEARNING_RUNS)
        return; /* still learning */
    for (size_t i = 0; i < LEARNING_RUNS; i++)
        if (__atomic_load_n(&learned->scripts[i], __ATOMIC_RELAXED) == run_script) {
            __atomic_store_n(&learned->strangers, 0, __ATOMIC_RELAXED);
            return;
        }
    if (__atomic_exchange_n(&learned->stranger, run_script, __ATOMIC_RELAXED) != run_script)
        __atomic_store_n(&learned->strangers, 1, __ATOMIC_RELAXED);
    else if (__atomic_add_fetch(&learned->strangers, 1, __ATOMIC_RELAXED) >= STRANGERS_BEFORE_RELEARNING &&
             runs >= RUNS_PER_SET_MIN)
        empty_set();
}

/* noteRunScript(name): what this runner runs, for learnFromRun. */
static napi_value js_note_run_script(napi_env env, napi_callback_info info)
{
    char name[4096];
    size_t argc = 1, length = 0;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok)
        return NULL;
    run_script = 14695981039346656037ULL; /* FNV-1a */
    for (size_t i = 0; i < length; i++)
        run_script = (run_script ^ (unsigned char)name[i]) * 1099511628211ULL;
    return NULL;
}

/* learnFromRun(): for a runner that has reported its status. A learning
 * runner counts the pages it made its own since prefaultLearned (unless
 * the set was emptied meanwhile); another one judges the set. */
static napi_value js_learn_from_run(napi_env env, napi_callback_info info)
{
    (void)env;
    (void)info;
    if (learned == NULL)
        return NULL;
    if (!learning) {
        judge_set();
        return NULL;
    }
    if (learning_generation == __atomic_load_n(&learned->generation, __ATOMIC_RELAXED) &&
        for_each_own_page(count_page) == 0) {
        uint32_t lesson = __atomic_fetch_add(&learned->lessons, 1, __ATOMIC_RELAXED);
        if (lesson < LEARNING_RUNS)
            __atomic_store_n(&learned->scripts[lesson], run_script, __ATOMIC_RELAXED);
    }
    return NULL;
}

void register_prefault(napi_env env, napi_value exports)
{
    export_function(env, exports, "sharePrefaultSet", js_share_prefault_set);
    export_function(env, exports, "prefaultLearned", js_prefault_learned);
    export_function(env, exports, "noteRunScript", js_note_run_script);
    export_function(env, exports, "learnFromRun", js_learn_from_run);
}
