/* storage.h: the image layer: qcow2 (v2 and v3) and raw images, opened as
 * backing chains with every on-disk field validated before it is trusted.
 *
 * Knows nothing of VMs. Formats are never guessed: the caller names the top
 * image's format and each qcow2 image names its backing file's format.
 * Backing files must resolve inside one of the caller's root directories
 * (the storage pools). Functions return 0 or a negative errno; where an
 * error needs words, they go into the caller's err buffer. The library never
 * prints.
 *
 * This header holds the read side (open, describe, map, read), the write
 * side (create, overlay, check, resize), the io_uring copy engine (copy and
 * rebase), the writing of an image from a stream of extents and the
 * parsing of pool locations. */
#ifndef AGENTD_STORAGE_H
#define AGENTD_STORAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMG_MAX_CHAIN 16
#define IMG_BACKING_NAME_MAX 1023

typedef enum img_format {
    IMG_FORMAT_RAW,
    IMG_FORMAT_QCOW2,
} img_format;

const char *img_format_name(img_format f);
/* "raw" or "qcow2"; -EINVAL otherwise. */
int img_format_parse(const char *s, img_format *ret);

typedef struct img_open_options {
    /* Backing files must resolve (after symlinks) inside one of these
     * directories; NULL-terminated. NULL refuses every backing file. */
    const char *const *roots;
    bool writable;          /* the top image read-write: refused if marked corrupt */
    unsigned max_depth;     /* 0: IMG_MAX_CHAIN */
} img_open_options;

/* An opened chain: layer 0 is the image named, each next layer its backing. */
typedef struct img img;

int img_open(const char *path, img_format format, const img_open_options *o, img **ret,
             char *err, size_t errlen);
void img_close(img *i);

typedef struct img_layer_info {
    char path[PATH_MAX];            /* as resolved */
    img_format format;
    int version;                    /* qcow2: 2 or 3; raw: 0 */
    uint64_t virtual_size;
    uint64_t file_size;             /* bytes the file takes on disk (st_blocks * 512) */
    uint32_t cluster_size;          /* qcow2 only */
    uint32_t refcount_bits;         /* qcow2 only */
    bool dirty;                     /* v3 dirty bit: refcounts may be stale */
    bool corrupt;                   /* v3 corrupt bit */
    bool lazy_refcounts;
    bool has_backing;
    char backing_file[IMG_BACKING_NAME_MAX + 1];  /* as written in the image */
    img_format backing_format;
} img_layer_info;

size_t img_depth(const img *i);                    /* number of layers, >= 1 */
uint64_t img_virtual_size(const img *i);           /* of layer 0 */
int img_layer_info_get(const img *i, size_t layer, img_layer_info *ret);

typedef enum img_extent_kind {
    IMG_EXTENT_DATA,         /* stored uncompressed in `layer`, at host_offset */
    IMG_EXTENT_COMPRESSED,   /* one compressed cluster in `layer` */
    IMG_EXTENT_ZERO,         /* reads as zeros: a zero cluster, or past a shorter backing */
    IMG_EXTENT_UNALLOCATED,  /* allocated nowhere in the chain (reads as zeros) */
} img_extent_kind;

typedef struct img_extent {
    uint64_t offset;         /* guest offset, = the offset asked for */
    uint64_t length;         /* > 0 */
    img_extent_kind kind;
    unsigned layer;          /* DATA, COMPRESSED, ZERO from a zero cluster: where;
                              * ZERO past a shorter backing: the layer whose backing
                              * is shorter; UNALLOCATED: the last layer */
    uint64_t host_offset;    /* DATA: file offset of the first byte */
} img_extent;

/* The longest run starting at offset (at most len bytes) that is one kind
 * from one layer, with contiguous host offsets for DATA. offset < size.
 * A run may end early, and the next call continues it: each call examines a
 * bounded number of table entries, and an invalid entry ends the run before
 * it. -EIO when the run would start on an invalid entry (an L2 entry with
 * reserved bits, unaligned, or pointing outside the file). */
int img_map(img *i, uint64_t offset, uint64_t len, img_extent *ret);

/* Reads guest bytes through the chain with blocking I/O: for open-time
 * checks, tests and small reads. Bulk copies use the io_uring engine.
 * -EINVAL past the virtual size; -EIO for invalid entries, data missing from
 * the file, or a compressed cluster that does not inflate.
 * An img caches tables and is not safe to use from two threads at once. */
int img_read(img *i, uint64_t offset, void *buf, size_t len);

/* ---- creating images ---- */

typedef struct img_create_options {
    img_format format;            /* QCOW2 or RAW */
    uint64_t size;                /* virtual size in bytes, rounded up to a multiple of 512
                                   * as qemu-img does; for a qcow2 image with a backing
                                   * file 0 means the backing image's size */
    uint32_t cluster_size;        /* qcow2; 0: 65536; a power of two 512..2 MiB */
    const char *backing_file;     /* qcow2 only; stored as given (relative names are
                                   * relative to the new image's directory) */
    img_format backing_format;    /* recorded in the backing-format header extension:
                                   * never guessed */
    const char *const *roots;     /* the backing file must open (img_open) inside these,
                                   * as a reader would */
} img_create_options;

/* Creates a new image that must not exist yet (-EEXIST). Written to a temp
 * file in the same directory, fsynced, opened back with img_open (roots as
 * given), renamed into place without replacing anything, directory fsynced:
 * a crash or error leaves either nothing or the whole image.
 *
 * A qcow2 image is version 3 with 16-bit refcounts, no feature bits and zlib
 * compression: the header cluster (with the backing format extension and the
 * backing name), the refcount table, the refcount blocks and the L1 table,
 * all entries zero. Its size must need an L1 table of at most 32 MiB, as in
 * QEMU (-EFBIG: 1 TiB needs clusters of 4 KiB or more). A raw image is a
 * sparse file of the size. */
int img_create(const char *path, const img_create_options *o, char *err, size_t errlen);

/* The attached clone: a new empty qcow2 image at path backed by `backing`
 * (stored as given, format as given), with the backing image's virtual size. */
int img_overlay(const char *path, const char *backing, img_format backing_format,
                const char *const *roots, char *err, size_t errlen);

/* ---- checking images ---- */

typedef struct img_check_result {
    uint64_t leaked_clusters;     /* refcount > references: harmless, reclaimable */
    uint64_t corruptions;         /* refcount < references, bad offsets, misaligned tables,
                                   * COPIED flag wrong */
    uint64_t allocated_clusters;  /* guest clusters the active L1 maps to a host cluster
                                   * (data, preallocated zero, compressed), as qemu-img
                                   * check's allocated-clusters */
    uint64_t fragmented_clusters; /* as qemu-img check's fragmented-clusters */
    char first_problem[256];      /* the first corruption or leak, described; for a
                                   * dirty image, first a note that refcounts may be stale */
} img_check_result;

/* Recomputes every reference of a qcow2 image (header, active and snapshot
 * L1 tables, their L2 tables, data and compressed clusters, refcount table
 * and blocks, snapshot table, persistent bitmaps) and compares it with the
 * stored refcounts, and the COPIED flags of the active tables with the
 * stored refcounts, counting problems as qemu-img check counts them.
 * Read-only; the top image only (backing files are not opened). 0 when it
 * could check (look at the counts), -errno when it could not open, parse
 * the header or read. */
int img_check(const char *path, img_check_result *ret, char *err, size_t errlen);

/* ---- resizing images ---- */

/* Grows the image at path to new_size bytes (rounded up to a multiple of
 * 512), in place; the image must not be in use (the caller guarantees it).
 * raw: ftruncate. qcow2: the size field, and when the L1 table no longer
 * covers the size a larger L1 in free clusters at the end of the file,
 * counted before the header switches to it in one write, the old one
 * uncounted after; each step synced, so that a crash may leak clusters but
 * never leaves one referenced and not counted. The same size is a no-op.
 * Refused: shrinking (-EINVAL), more than 2^61 bytes or an L1 table past
 * 32 MiB (-EFBIG), a corrupt image (-EACCES), a dirty one (-EBUSY: check and
 * repair it first), internal snapshots, persistent bitmaps, or a refcount
 * table that would have to grow (-ENOTSUP). */
int img_resize(const char *path, img_format format, uint64_t new_size, char *err,
               size_t errlen);

/* ---- copying images: the io_uring engine ---- */

/* A copy writes a new image dst whose guest content equals the source
 * chain's, written whole under a temp name next to dst, synced, opened back
 * as a reader would, and renamed into place: on any failure or cancel
 * nothing is left at dst (or dst is as it was) and the source is never
 * written.
 *
 * What is written: without a backing file, clusters unallocated through the
 * whole source chain stay unallocated, all-zero data becomes zero clusters
 * (a hole in a raw image), and only the rest is written. With a backing
 * file (a rebase), only clusters whose content differs from the backing
 * image's are stored (zero clusters where the source reads zeros).
 *
 * The engine reads and writes with io_uring from a fixed set of buffers
 * (peak memory independent of the image size), many requests in flight at
 * once; short reads and writes are resumed. L2 tables are read through the
 * ring too, so a step never blocks: img_copy_start (opening and validating
 * the chain, creating the temp file) and img_copy_finish (the last metadata,
 * fsync, rename) block and belong on a worker thread; img_copy_step belongs
 * on an event loop, called whenever img_copy_fd is readable. */
typedef struct img_copy img_copy;

typedef void img_copy_progress_fn(void *opaque, uint64_t done, uint64_t total);

typedef struct img_copy_options {
    img_format format;              /* of dst */
    uint32_t cluster_size;          /* qcow2 dst; 0: 65536 */
    const char *backing_file;       /* qcow2 dst: its backing file, stored as given (relative
                                     * to dst's directory), opened inside roots */
    img_format backing_format;
    bool replace;                   /* dst may exist and is replaced in one rename */
    const char *const *roots;       /* for the source chain and the backing file */
    unsigned buffers;               /* 0: 16 */
    uint32_t buffer_size;           /* 0: 1 MiB; rounded up to the cluster size */
    img_copy_progress_fn *progress; /* from img_copy_step; may be NULL */
    void *opaque;
} img_copy_options;

typedef struct img_copy_stats {
    uint64_t bytes_read;            /* from the source chain and the backing file */
    uint64_t bytes_written;         /* data and L2 tables, before the last metadata */
    uint64_t data_clusters;         /* written to dst (qcow2: clusters; raw: 4 KiB blocks) */
    uint64_t zero_clusters;         /* made zero clusters (qcow2) or left as holes (raw) */
    uint64_t blocking_reads;        /* L2 tables that had to be read with blocking I/O
                                     * during steps: 0 unless the cache misbehaves */
    size_t buffer_bytes;            /* the fixed buffers */
} img_copy_stats;

/* Opens src (format given, chain inside roots), the backing file if any,
 * and a temp file next to dst. Refused: dst existing without replace
 * (-EEXIST), a backing file for a raw dst, a backing chain that contains
 * src (-ELOOP). Blocking. */
int img_copy_start(const char *src, img_format src_format, const char *dst,
                   const img_copy_options *o, img_copy **ret, char *err, size_t errlen);
/* Readable when img_copy_step has something to do (an eventfd). */
int img_copy_fd(const img_copy *c);
/* Reaps completions and submits what can go next; never blocks. 0: call
 * again when the fd is readable; 1: every byte is written; negative: failed
 * (-ECANCELED after img_copy_cancel). On 1 or negative nothing is in flight:
 * call img_copy_finish. */
int img_copy_step(img_copy *c);
/* The copy stops at the next step (nothing new is submitted, what is in
 * flight is waited for). */
void img_copy_cancel(img_copy *c);
void img_copy_get_stats(const img_copy *c, img_copy_stats *ret);
/* After step returned non-zero (or at any time after a cancel has been
 * stepped to its end): on success writes the remaining metadata, syncs and
 * installs dst; otherwise removes the temp file. Frees c. Blocking. The
 * copy's status: 0, or the negative errno with a message in err. */
int img_copy_finish(img_copy *c, char *err, size_t errlen);

/* The whole copy on the calling thread: start, steps (poll on the fd),
 * finish. stats may be NULL. */
int img_copy_run(const char *src, img_format src_format, const char *dst, const img_copy_options *o,
             img_copy_stats *stats, char *err, size_t errlen);

/* Points the qcow2 image at path at a new backing file whose content is the
 * same where it matters: the image is rewritten (by the engine, under a
 * temp name, then swapped in one rename) as an overlay of backing that
 * stores only the clusters where the image's content differs from the
 * backing's. The image must not be in use. */
int img_rebase(const char *path, const char *backing, img_format backing_format,
               const char *const *roots, char *err, size_t errlen);

/* ---- writing an image from a stream ---- */

/* A new standalone image (no backing file) written from guest content that
 * arrives as (offset, bytes) records in ascending offset order, as an
 * offline migration receives a disk: under a temp name next to path,
 * installed whole at finish or not at all. A qcow2 image is laid out
 * append-only (header cluster, L1 table, then data clusters and L2 tables
 * in the order they are finished, refcounts at the end); a raw image is a
 * sparse file of the size. All-zero clusters (qcow2) and all-zero 4 KiB
 * blocks (raw) are not stored. Memory is one cluster, one L2 table and the
 * L1 table, whatever the image's size. Every call blocks. */
typedef struct img_writer img_writer;

typedef struct img_writer_options {
    img_format format;          /* QCOW2 or RAW */
    uint64_t size;              /* virtual size in bytes, > 0; rounded up to a multiple of
                                 * 512 as img_create does */
    uint32_t cluster_size;      /* qcow2; 0: 65536; a power of two 512..2 MiB */
} img_writer_options;

/* Opens a temp file next to path (img_temp_open). Refused: path existing
 * already (-EEXIST), a size of 0 or a bad cluster size (-EINVAL), a size
 * past 2^61 bytes or one that needs an L1 table past 32 MiB (-EFBIG, as
 * img_create). ret is untouched on failure. */
int img_writer_open(const char *path, const img_writer_options *o, img_writer **ret, char *err,
                    size_t errlen);

/* The temp file's name, so that a caller can record it and remove it after
 * a crash. */
const char *img_writer_temp(const img_writer *w);

/* Guest bytes [offset, offset+len). Calls come in ascending order, each
 * starting at or after the end of the one before; a call that goes back,
 * overlaps an earlier one or ends past the virtual size is refused with
 * -EINVAL and changes nothing. Bytes never given read as zeros. A call may
 * start and end anywhere (a partial cluster is kept until the stream moves
 * past it). After a write error every later call fails with it. */
int img_writer_put(img_writer *w, uint64_t offset, const void *buf, size_t len, char *err,
                   size_t errlen);

/* Writes what remains (the partial cluster, the last L2 table, refcounts,
 * the L1 table, the header last), fsyncs, opens the result back with
 * img_open, installs it at path without replacing anything (-EEXIST if
 * path appeared meanwhile) and syncs the directory. Frees w. On any
 * failure the temp file is removed. */
int img_writer_finish(img_writer *w, char *err, size_t errlen);

/* Removes the temp file and frees w (w may be NULL). */
void img_writer_abort(img_writer *w);

/* After a crash: removes the temp files that a writer, a copy or a create
 * of path left next to it (".NAME.tmp-XXXXXXXX"), never path itself. Only
 * for a path that nothing writes at the time (an agent's start). Returns
 * the number removed, or -errno with a message in err. */
int img_temp_sweep(const char *path, char *err, size_t errlen);

/* ---- storage pool locations ---- */

/* Where a pool lives, as xCAT's vmstorage strings name it. */
typedef enum img_pool_kind {
    IMG_POOL_DIR,            /* a local directory */
    IMG_POOL_PHY,            /* a block device */
    IMG_POOL_NFS,            /* an NFS export */
} img_pool_kind;

typedef struct img_pool_spec {
    img_pool_kind kind;
    char path[PATH_MAX];         /* DIR: the directory; PHY: the block device path */
    char server[256];            /* NFS: host name or IPv4/IPv6 literal (brackets stripped) */
    char export_path[PATH_MAX];  /* NFS: the exported directory, absolute */
} img_pool_spec;

/* Parses "dir:///var/lib/libvirt/images", "/var/lib/x" (a plain absolute
 * path is a dir pool), "phy:/dev/sdb1", "nfs://10.0.0.1/install/vms/",
 * "nfs://[fd00::1]/x" or "nfs://nas.example/export". Schemes are matched
 * without regard to case. Paths are normalised: repeated slashes folded,
 * "." components and trailing slashes dropped ("/" stays "/"). Fields not
 * used by the kind are empty. Refused, with a message naming what is wrong:
 * control characters, unknown schemes, relative paths, ".." components,
 * an empty server or export, a server with characters outside
 * [A-Za-z0-9.-] or starting with '.' or '-', an IPv6 literal outside
 * brackets or one inet_pton refuses, anything after the closing bracket,
 * phy paths not under /dev/ (-EINVAL), and parts too long for their
 * buffer (-ENAMETOOLONG). ret is untouched on failure. */
int img_pool_spec_parse(const char *s, img_pool_spec *ret, char *err, size_t errlen);

/* The canonical string form: "dir:///var/lib/x", "phy:/dev/sdb1",
 * "nfs://10.0.0.1/install/vms", "nfs://[fd00::1]/x"; parsing it gives p
 * back. Returns its length, -ENOBUFS when it does not fit in len bytes
 * (buf then holds a truncated string if len > 0), -EINVAL for an unknown
 * kind. */
int img_pool_spec_format(const img_pool_spec *p, char *buf, size_t len);

#endif
