/* fuzz_qmp_frame.c: libFuzzer target for the path every byte from QEMU takes:
 * line framing across arbitrary read boundaries, then JSON parsing and
 * classification of each line.
 *
 * The first two input bytes choose the line limit and the read size, so the
 * fuzzer explores splits and limits as well as content. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "qmp/qmp.h"
#include "qmp/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void consume_lines(qmp_frame *f, json_tokener *tok)
{
    char *line;
    size_t len;
    qmp_msg m;

    while (qmp_frame_next(f, &line, &len) == 1) {
        if (qmp_msg_parse(tok, line, len, &m) < 0)
            continue;
        if (m.kind == QMP_MSG_GREETING)
            (void)qmp_greeting_has_cap(m.greeting, "oob");
        qmp_msg_release(&m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_tokener *tok;
    qmp_frame f;

    if (size < 2)
        return 0;
    if (!tok)
        tok = json_tokener_new_ex(64);
    size_t max_line = 16 + (size_t)data[0] * 64;
    size_t chunk = 1 + data[1];
    data += 2;
    size -= 2;

    qmp_frame_init(&f, max_line);
    while (size > 0) {
        char *p;
        size_t avail;
        if (qmp_frame_reserve(&f, chunk, &p, &avail) < 0)
            break;
        size_t n = size < chunk ? size : chunk;
        if (n > avail)
            n = avail;
        memcpy(p, data, n);
        qmp_frame_commit(&f, n);
        data += n;
        size -= n;
        consume_lines(&f, tok);
    }
    qmp_frame_free(&f);
    return 0;
}
