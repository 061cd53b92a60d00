/* test_sendstream.c: the offline migration stream's frames and decoder. Each
 * test builds a stream with ss_header_put/ss_crc, noting the sink calls a
 * correct decoder must make for it, then feeds it whole, a byte at a time
 * and in random pieces and compares what the sink saw. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/sendstream.h"

enum { CALL_DATA, CALL_DISK_END, CALL_STREAM_END };

typedef struct ss_call {
    int kind;
    unsigned disk;
    uint64_t offset;
    uint32_t len;
    size_t at;                 /* where its bytes start in the log's bytes */
} ss_call;

/* Sink calls in order, with a copy of every DATA payload. */
typedef struct call_log {
    ss_call calls[64];
    size_t ncalls;
    uint8_t *bytes;
    size_t nbytes;
} call_log;

/* A stream being built, and the calls it must produce. */
typedef struct stream {
    uint8_t *b;
    size_t len;
    call_log expect;
    unsigned disk;
} stream;

/* The test's sink: records each call; the call numbered fail_at (from 1)
 * returns fail_status instead of 0. */
typedef struct recorder {
    call_log got;
    size_t fail_at;
    int fail_status;
} recorder;

static void log_add(call_log *l, int kind, unsigned disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
    assert_true(l->ncalls < sizeof(l->calls) / sizeof(l->calls[0]));
    l->calls[l->ncalls++] = (ss_call){kind, disk, offset, len, l->nbytes};
    if (len == 0)
        return;
    l->bytes = realloc(l->bytes, l->nbytes + len);
    assert_non_null(l->bytes);
    memcpy(l->bytes + l->nbytes, data, len);
    l->nbytes += len;
}

static void log_free(call_log *l)
{
    free(l->bytes);
    memset(l, 0, sizeof(*l));
}

static void assert_same_calls(const call_log *got, const call_log *want)
{
    assert_int_equal(got->ncalls, want->ncalls);
    for (size_t i = 0; i < want->ncalls; i++) {
        const ss_call *g = &got->calls[i], *w = &want->calls[i];
        assert_int_equal(g->kind, w->kind);
        assert_int_equal(g->disk, w->disk);
        assert_int_equal(g->offset, w->offset);
        assert_int_equal(g->len, w->len);
        assert_memory_equal(got->bytes + g->at, want->bytes + w->at, w->len);
    }
}

static uint8_t *stream_grow(stream *s, size_t n)
{
    s->b = realloc(s->b, s->len + n);
    assert_non_null(s->b);
    s->len += n;
    return s->b + s->len - n;
}

/* Appends any frame, as given; it adds no expected call. */
static uint8_t *put_frame(stream *s, ss_frame_type type, uint64_t offset, uint32_t length, uint32_t crc,
                          const void *payload, size_t paylen)
{
    uint8_t *h = stream_grow(s, SS_HEADER_BYTES + paylen);

    ss_header_put(h, type, offset, length, crc);
    if (paylen > 0)
        memcpy(h + SS_HEADER_BYTES, payload, paylen);
    return h;
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

/* A good DATA frame of len patterned bytes on the current disk. */
static void put_data(stream *s, uint64_t offset, uint32_t len)
{
    uint8_t *p = malloc(len);

    assert_non_null(p);
    fill(p, len, (uint32_t)(offset ^ s->disk ^ len));
    put_frame(s, SS_DATA, offset, len, ss_crc(p, len), p, len);
    log_add(&s->expect, CALL_DATA, s->disk, offset, p, len);
    free(p);
}

static void put_disk_end(stream *s, uint64_t count)
{
    put_frame(s, SS_DISK_END, count, 0, 0, NULL, 0);
    log_add(&s->expect, CALL_DISK_END, s->disk++, 0, NULL, 0);
}

static void put_stream_end(stream *s)
{
    put_frame(s, SS_STREAM_END, 0, 0, 0, NULL, 0);
    log_add(&s->expect, CALL_STREAM_END, 0, 0, NULL, 0);
}

static void put_abort(stream *s, const char *text)
{
    size_t n = strlen(text);

    put_frame(s, SS_ABORT, 0, (uint32_t)n, ss_crc(text, n), text, n);
}

static void stream_free(stream *s)
{
    free(s->b);
    log_free(&s->expect);
    memset(s, 0, sizeof(*s));
}

static int rec_call(recorder *r, int kind, unsigned disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
    log_add(&r->got, kind, disk, offset, data, len);
    return r->got.ncalls == r->fail_at ? r->fail_status : 0;
}

static int rec_data(void *opaque, unsigned disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
    return rec_call(opaque, CALL_DATA, disk, offset, data, len);
}

static int rec_disk_end(void *opaque, unsigned disk)
{
    return rec_call(opaque, CALL_DISK_END, disk, 0, NULL, 0);
}

static int rec_stream_end(void *opaque)
{
    return rec_call(opaque, CALL_STREAM_END, 0, 0, NULL, 0);
}

static const ss_sink rec_sink = {rec_data, rec_disk_end, rec_stream_end};

/* How a stream is cut into pieces: 0 whole, 1 a byte at a time, anything
 * else seeds random piece sizes of 1 to 70000 bytes. */
static size_t next_piece(uint32_t *how, size_t left)
{
    if (*how == 0)
        return left;
    if (*how == 1)
        return 1;
    *how ^= *how << 13;
    *how ^= *how >> 17;
    *how ^= *how << 5;
    size_t n = 1 + *how % 70000;
    return n < left ? n : left;
}

/* Feeds buf in pieces until a piece returns non-zero; returns that (or 0)
 * and, in *fed, the bytes given up to and including that piece. */
static int feed_pieces(ss_decoder *d, const uint8_t *buf, size_t len, uint32_t how, size_t *fed)
{
    size_t off = 0;
    int r = 0;

    while (off < len && r == 0) {
        size_t n = next_piece(&how, len - off);
        r = ss_decoder_feed(d, buf + off, n);
        off += n;
    }
    *fed = off;
    return r;
}

/* Decodes s for disks of the given sizes, cut as `how` says, into r. */
static int decode(const stream *s, const uint64_t *sizes, unsigned ndisks, uint32_t how, recorder *r,
                  char *err, size_t *fed)
{
    ss_decoder d;

    assert_int_equal(ss_decoder_init(&d, ndisks, sizes, &rec_sink, r), 0);
    int status = feed_pieces(&d, s->b, s->len, how, fed);
    if (status < 0) /* the decoder stays where it stopped */
        assert_int_equal(ss_decoder_feed(&d, s->b, 1), status);
    strcpy(err, d.err);
    ss_decoder_free(&d);
    return status;
}

static const uint32_t cuts[] = {0, 1, 7, 1234, 99991};

/* Every way of cutting s ends the stream (1) after its last byte, with the
 * calls s expects. Frees s. */
static void assert_decodes(stream *s, const uint64_t *sizes, unsigned ndisks)
{
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        recorder r = {0};
        char err[256];
        size_t fed;

        assert_int_equal(decode(s, sizes, ndisks, cuts[i], &r, err, &fed), 1);
        assert_int_equal(fed, s->len);
        assert_string_equal(err, "");
        assert_same_calls(&r.got, &s->expect);
        log_free(&r.got);
    }
    stream_free(s);
}

/* The calls r saw are those s expects; frees d and r's log. */
static void assert_saw_expected(ss_decoder *d, recorder *r, const stream *s)
{
    assert_same_calls(&r->got, &s->expect);
    ss_decoder_free(d);
    log_free(&r->got);
}

static const uint64_t one_disk[] = {8192};
static const uint64_t two_disks[] = {8192, 4096};

static void three_disks_decode_alike_however_the_bytes_are_cut(void **state)
{
    const uint64_t sizes[] = {8192, 2 * SS_DATA_MAX + 4096, 4096};
    stream s = {0};

    put_data(&s, 0, 100);
    put_data(&s, 100, 1);               /* right after the last one */
    put_data(&s, 4096, 1000);           /* after a gap */
    put_data(&s, 8192 - 7, 7);          /* ends at the disk's size */
    put_disk_end(&s, 1108);
    put_data(&s, 0, SS_DATA_MAX);
    put_data(&s, 2 * SS_DATA_MAX, 4096);
    put_disk_end(&s, SS_DATA_MAX + 4096);
    put_data(&s, 512, 512);
    put_disk_end(&s, 512);
    put_stream_end(&s);
    assert_decodes(&s, sizes, 3);
}

static void disk_without_data_frames_ends_with_a_zero_count(void **state)
{
    const uint64_t sizes[] = {4096, 4096, 4096};
    stream s = {0};

    put_data(&s, 0, 4096);
    put_disk_end(&s, 4096);
    put_disk_end(&s, 0);
    put_data(&s, 1, 2);
    put_disk_end(&s, 2);
    put_stream_end(&s);
    assert_decodes(&s, sizes, 3);
}

static void stream_of_no_disks_is_just_its_end(void **state)
{
    stream s = {0};

    put_stream_end(&s);
    assert_decodes(&s, NULL, 0);
}

static void truncated_stream_waits_for_its_last_byte(void **state)
{
    stream s = {0};

    put_data(&s, 0, 300);
    put_disk_end(&s, 300);
    put_stream_end(&s);
    for (uint32_t how = 0; how < 2; how++) {
        recorder r = {0};
        ss_decoder d;
        size_t fed;

        assert_int_equal(ss_decoder_init(&d, 1, one_disk, &rec_sink, &r), 0);
        assert_int_equal(feed_pieces(&d, s.b, s.len - 1, how, &fed), 0);
        assert_int_equal(r.got.ncalls, 2);   /* no stream_end yet */
        assert_int_equal(ss_decoder_feed(&d, s.b + s.len - 1, 1), 1);
        assert_saw_expected(&d, &r, &s);
    }
    stream_free(&s);
}

/* A frame of a bad stream: good ones add the calls they must cause, a raw
 * one is written as given, with `paylen` patterned bytes and the CRC of
 * those XORed with `damage`. */
typedef struct frame_spec {
    enum { END_OF_SPECS, GOOD_DATA, GOOD_DISK_END, RAW, ABORT_TEXT } kind;
    uint32_t type;
    uint64_t offset;           /* the byte count of GOOD_DISK_END */
    uint32_t length, paylen, damage;
    bool bad_magic;
    const char *text;
} frame_spec;

#define DATA(o, n) {.kind = GOOD_DATA, .offset = (o), .length = (n)}
#define DISK_END(n) {.kind = GOOD_DISK_END, .offset = (n)}
#define RAW(t, o, n, pl, dmg) {.kind = RAW, .type = (t), .offset = (o), .length = (n), .paylen = (pl), .damage = (dmg)}
#define ABORT(s) {.kind = ABORT_TEXT, .text = (s)}

/* A stream that must be refused at its last frame. */
typedef struct refusal {
    const char *name;
    const uint64_t *sizes;
    unsigned ndisks;
    frame_spec frames[4];
    int status;
    const char *says[3];       /* what the error must contain */
} refusal;

static const uint64_t big_disk[] = {4 * SS_DATA_MAX};
static const uint64_t huge_disk[] = {UINT64_MAX};

static const refusal refusals[] = {
    {"bad magic is refused naming the byte", one_disk, 1,
     {DATA(0, 16), {.kind = RAW, .type = SS_DATA, .offset = 16, .length = 16, .bad_magic = true}},
     -EPROTO, {"magic", "byte 40"}},
    {"unknown frame type is refused", two_disks, 2, {DISK_END(0), RAW(9, 0, 0, 0, 0)},
     -EPROTO, {"disk 1", "type 9"}},
    {"data of no bytes is refused", big_disk, 1, {RAW(SS_DATA, 0, 0, 0, 0)},
     -EPROTO, {"disk 0", "length 0"}},
    {"data over the maximum is refused", big_disk, 1, {DATA(0, 10), RAW(SS_DATA, 10, SS_DATA_MAX + 1, 0, 0)},
     -EPROTO, {"disk 0", "length 1048577"}},
    {"offset going back is refused", one_disk, 1, {DATA(4096, 512), RAW(SS_DATA, 0, 1, 1, 0)},
     -EPROTO, {"disk 0", "offset 0 goes back"}},
    {"frame overlapping the one before is refused", one_disk, 1, {DATA(4096, 512), RAW(SS_DATA, 4607, 1, 1, 0)},
     -EPROTO, {"disk 0", "offset 4607", "4608"}},
    {"frame one byte past the disk size is refused", two_disks, 2, {DISK_END(0), RAW(SS_DATA, 3585, 512, 0, 0)},
     -EPROTO, {"disk 1", "past its size 4096"}},
    {"frame starting at the disk size is refused", one_disk, 1, {RAW(SS_DATA, 8192, 1, 0, 0)},
     -EPROTO, {"disk 0", "past its size"}},
    {"frame whose end wraps around is refused", huge_disk, 1, {RAW(SS_DATA, UINT64_MAX - 10, 100, 0, 0)},
     -EPROTO, {"disk 0", "past its size"}},
    {"damaged payload is refused by its CRC", two_disks, 2, {DATA(0, 64), DISK_END(64), RAW(SS_DATA, 128, 64, 64, 1)},
     -EBADMSG, {"disk 1", "CRC"}},
    {"disk end with another count is refused", one_disk, 1, {DATA(0, 512), RAW(SS_DISK_END, 1024, 0, 0, 0)},
     -EPROTO, {"disk 0", "1024", "512"}},
    {"disk end with a CRC is refused", one_disk, 1, {DATA(0, 512), RAW(SS_DISK_END, 512, 0, 0, 7)},
     -EPROTO, {"disk 0", "malformed"}},
    {"stream end before the last disk is refused", two_disks, 2, {DATA(0, 8), DISK_END(8), RAW(SS_STREAM_END, 0, 0, 0, 0)},
     -EPROTO, {"1 of 2 disks"}},
    {"stream end with a CRC is refused", one_disk, 1, {DISK_END(0), RAW(SS_STREAM_END, 0, 0, 0, 1)},
     -EPROTO, {"malformed stream end"}},
    {"data after the last disk is refused", one_disk, 1, {DISK_END(0), RAW(SS_DATA, 0, 1, 1, 0)},
     -EPROTO, {"after the last disk"}},
    {"disk end after the last disk is refused", one_disk, 1, {DISK_END(0), RAW(SS_DISK_END, 0, 0, 0, 0)},
     -EPROTO, {"after the last disk"}},
    {"abort stops with its text made printable", one_disk, 1, {DATA(0, 32), ABORT("disk\x01" "full\n\x7f" "now")},
     -ECONNABORTED, {"the source stopped: disk?full??now"}},
    {"abort after the last disk stops too", one_disk, 1, {DISK_END(0), ABORT("cancelled")},
     -ECONNABORTED, {"cancelled"}},
    {"abort without text is refused", one_disk, 1, {RAW(SS_ABORT, 0, 0, 0, 0)},
     -EPROTO, {"malformed abort"}},
    {"abort over the maximum is refused", one_disk, 1, {RAW(SS_ABORT, 0, SS_ABORT_MAX + 1, SS_ABORT_MAX + 1, 0)},
     -EPROTO, {"malformed abort"}},
    {"abort with an offset is refused", one_disk, 1, {RAW(SS_ABORT, 1, 1, 1, 0)},
     -EPROTO, {"malformed abort"}},
};

static void put_raw(stream *s, const frame_spec *f)
{
    uint8_t *p = calloc(1, f->paylen + 1);

    assert_non_null(p);
    fill(p, f->paylen, f->paylen);
    put_frame(s, f->type, f->offset, f->length, ss_crc(p, f->paylen) ^ f->damage, p, f->paylen)[0] ^=
        f->bad_magic ? 0x20 : 0;
    free(p);
}

static void put_spec(stream *s, const frame_spec *f)
{
    switch (f->kind) {
    case GOOD_DATA: put_data(s, f->offset, f->length); break;
    case GOOD_DISK_END: put_disk_end(s, f->offset); break;
    case RAW: put_raw(s, f); break;
    case ABORT_TEXT: put_abort(s, f->text); break;
    case END_OF_SPECS: break;
    }
}

/* Every way of cutting the row's stream fails with its status and an error
 * saying what it must, after exactly the calls of its good frames. */
static void stream_is_refused_at_its_bad_frame(void **state)
{
    const refusal *t = *state;
    stream s = {0};

    for (const frame_spec *f = t->frames; f->kind != END_OF_SPECS; f++)
        put_spec(&s, f);
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        recorder r = {0};
        char err[256];
        size_t fed;

        assert_int_equal(decode(&s, t->sizes, t->ndisks, cuts[i], &r, err, &fed), t->status);
        for (size_t k = 0; k < 3 && t->says[k]; k++)
            if (!strstr(err, t->says[k]))
                fail_msg("error \"%s\" does not say \"%s\"", err, t->says[k]);
        assert_same_calls(&r.got, &s.expect);
        log_free(&r.got);
    }
    stream_free(&s);
}

static void bytes_after_the_stream_end_are_refused(void **state)
{
    stream s = {0};
    recorder r = {0};
    ss_decoder d;
    char err[256];
    size_t fed;

    put_disk_end(&s, 0);
    put_stream_end(&s);
    stream_grow(&s, 1)[0] = 0;
    /* the end and one more byte in one feed */
    assert_int_equal(decode(&s, one_disk, 1, 0, &r, err, &fed), -EPROTO);
    assert_non_null(strstr(err, "1 bytes after the end"));
    assert_same_calls(&r.got, &s.expect);
    log_free(&r.got);
    /* the end, then one more byte in a feed of its own */
    assert_int_equal(ss_decoder_init(&d, 1, one_disk, &rec_sink, &r), 0);
    assert_int_equal(ss_decoder_feed(&d, s.b, s.len - 1), 1);
    assert_int_equal(ss_decoder_feed(&d, s.b + s.len - 1, 1), -EPROTO);
    assert_non_null(strstr(d.err, "after the end"));
    assert_saw_expected(&d, &r, &s);
    stream_free(&s);
}

/* The sink's call number fail_at returns status; nothing comes after it. */
static void assert_sink_stops(size_t fail_at, int sink_status, int status, const char *needle)
{
    stream s = {0};
    recorder r = {.fail_at = fail_at, .fail_status = sink_status};
    char err[256];
    size_t fed;

    put_data(&s, 0, 64);
    put_data(&s, 4096, 64);
    put_disk_end(&s, 128);
    put_data(&s, 0, 64);
    put_disk_end(&s, 64);
    put_stream_end(&s);
    assert_int_equal(decode(&s, two_disks, 2, 1, &r, err, &fed), status);
    assert_non_null(strstr(err, needle));
    s.expect.ncalls = fail_at;
    assert_same_calls(&r.got, &s.expect);
    log_free(&r.got);
    stream_free(&s);
}

static void sink_refusal_stops_decoding_with_its_status(void **state)
{
    assert_sink_stops(2, -ENOSPC, -ENOSPC, "disk 0");
    assert_sink_stops(3, -EIO, -EIO, "disk 0");
    assert_sink_stops(4, 1, -EIO, "disk 1");       /* a positive refusal is -EIO */
    assert_sink_stops(6, -EROFS, -EROFS, strerror(EROFS));
}

int main(void)
{
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(three_disks_decode_alike_however_the_bytes_are_cut),
        cmocka_unit_test(disk_without_data_frames_ends_with_a_zero_count),
        cmocka_unit_test(stream_of_no_disks_is_just_its_end),
        cmocka_unit_test(truncated_stream_waits_for_its_last_byte),
        cmocka_unit_test(bytes_after_the_stream_end_are_refused),
        cmocka_unit_test(sink_refusal_stops_decoding_with_its_status),
    };
    size_t nfixed = sizeof(fixed) / sizeof(fixed[0]), nrefusals = sizeof(refusals) / sizeof(refusals[0]);
    struct CMUnitTest tests[sizeof(fixed) / sizeof(fixed[0]) + sizeof(refusals) / sizeof(refusals[0])];

    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < nrefusals; i++)
        tests[nfixed + i] = (struct CMUnitTest){.name = refusals[i].name,
                                                .test_func = stream_is_refused_at_its_bad_frame,
                                                .initial_state = (void *)&refusals[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
