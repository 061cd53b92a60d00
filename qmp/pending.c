/* pending.c: a chained hash table on id plus a binary min-heap on deadline.
 *
 * With thousands of commands in flight, a reply must find its command and
 * the timer must find the next deadline without a scan of the whole set. */
#include "pending.h"

#include <errno.h>
#include <stdlib.h>

void qmp_pending_init(qmp_pending_set *s)
{
    *s = (qmp_pending_set){ 0 };
}

void qmp_pending_free(qmp_pending_set *s)
{
    free(s->buckets);
    free(s->heap);
    qmp_pending_init(s);
}

static size_t bucket_of(const qmp_pending_set *s, uint64_t id)
{
    /* Fibonacci hashing spreads sequential ids over the buckets. */
    return (size_t)((id * 11400714819323198485ull) >> 32) & (s->nbuckets - 1);
}

static int rehash(qmp_pending_set *s, size_t nbuckets)
{
    qmp_pending **b = calloc(nbuckets, sizeof(*b));
    qmp_pending **old = s->buckets;
    size_t oldn = s->nbuckets;

    if (!b)
        return -ENOMEM;
    s->buckets = b;
    s->nbuckets = nbuckets;
    for (size_t i = 0; i < oldn; i++) {
        for (qmp_pending *p = old[i], *next; p; p = next) {
            next = p->next;
            size_t k = bucket_of(s, p->id);
            p->next = b[k];
            b[k] = p;
        }
    }
    free(old);
    return 0;
}

static void heap_swap(qmp_pending **h, size_t a, size_t b)
{
    qmp_pending *t = h[a];
    h[a] = h[b];
    h[b] = t;
    h[a]->heap_index = a;
    h[b]->heap_index = b;
}

static void heap_up(qmp_pending **h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent]->deadline_ms <= h[i]->deadline_ms)
            break;
        heap_swap(h, parent, i);
        i = parent;
    }
}

static void heap_down(qmp_pending **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l]->deadline_ms < h[m]->deadline_ms)
            m = l;
        if (r < n && h[r]->deadline_ms < h[m]->deadline_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

static int heap_reserve(qmp_pending_set *s)
{
    if (s->count < s->heap_cap)
        return 0;
    size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
    qmp_pending **h = realloc(s->heap, cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    s->heap = h;
    s->heap_cap = cap;
    return 0;
}

int qmp_pending_add(qmp_pending_set *s, qmp_pending *p)
{
    int r;

    if (s->count >= s->nbuckets && (r = rehash(s, s->nbuckets ? s->nbuckets * 2 : 64)) < 0)
        return r;
    if ((r = heap_reserve(s)) < 0)
        return r;
    size_t k = bucket_of(s, p->id);
    p->next = s->buckets[k];
    s->buckets[k] = p;
    p->heap_index = s->count;
    s->heap[s->count++] = p;
    heap_up(s->heap, p->heap_index);
    return 0;
}

qmp_pending *qmp_pending_find(const qmp_pending_set *s, uint64_t id)
{
    if (s->nbuckets == 0)
        return NULL;
    for (qmp_pending *p = s->buckets[bucket_of(s, id)]; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void unchain(qmp_pending_set *s, qmp_pending *p)
{
    qmp_pending **pp = &s->buckets[bucket_of(s, p->id)];

    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
}

void qmp_pending_remove(qmp_pending_set *s, qmp_pending *p)
{
    size_t i = p->heap_index;

    unchain(s, p);
    s->count--;
    if (i != s->count) {
        /* The last entry fills the hole and moves whichever way restores order. */
        heap_swap(s->heap, i, s->count);
        heap_up(s->heap, i);
        heap_down(s->heap, s->count, i);
    }
}

qmp_pending *qmp_pending_first(const qmp_pending_set *s)
{
    return s->count ? s->heap[0] : NULL;
}
