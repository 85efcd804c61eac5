/* vsock-core: the virtio-vsock connection and credit layer of
 * helix-vhost-user-vsock, with no vhost-user in it: guest packets in as
 * flat bytes, packets for the guest out as flat bytes, and each guest
 * stream connection to host port P relayed to the UNIX socket
 * "<uds_path>_P" (the hybrid-vsock convention).
 *
 * Single-threaded: everything runs on the thread-default GMainContext of
 * the caller of hvv_core_new().
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef HVV_VSOCK_CORE_H
#define HVV_VSOCK_CORE_H

#include <glib.h>

G_BEGIN_DECLS

#define HVV_HOST_CID 2
#define HVV_HDR_SIZE 44
/* the largest payload of one packet (Linux: VIRTIO_VSOCK_MAX_PKT_BUF_SIZE) */
#define HVV_MAX_PAYLOAD (64 * 1024)

enum
{
  HVV_TYPE_STREAM = 1,
};

enum
{
  HVV_OP_REQUEST = 1,
  HVV_OP_RESPONSE = 2,
  HVV_OP_RST = 3,
  HVV_OP_SHUTDOWN = 4,
  HVV_OP_RW = 5,
  HVV_OP_CREDIT_UPDATE = 6,
  HVV_OP_CREDIT_REQUEST = 7,
};

enum
{
  HVV_SHUTDOWN_RCV = 1,
  HVV_SHUTDOWN_SEND = 2,
};

/* struct virtio_vsock_hdr, in host byte order */
typedef struct
{
  guint64 src_cid;
  guint64 dst_cid;
  guint32 src_port;
  guint32 dst_port;
  guint32 len;
  guint16 type;
  guint16 op;
  guint32 flags;
  guint32 buf_alloc;
  guint32 fwd_cnt;
} HvvHdr;

void hvv_hdr_parse (HvvHdr * hdr, const guint8 * b);
void hvv_hdr_write (const HvvHdr * hdr, guint8 * b);

typedef struct _HvvCore HvvCore;

/* Called when there is something for the guest (hvv_core_next_rx() will
 * return a packet once the guest has a buffer for it). */
typedef void (*HvvWakeFunc) (gpointer data);

typedef struct
{
  guint64 guest_cid;
  const gchar *uds_path;
  guint max_conns;
  /* our receive buffer per connection, advertised to the guest */
  guint32 buf_alloc;
  /* a connection the guest closed, whose data still goes to the host,
   * is dropped after this many ms */
  guint close_timeout_ms;
} HvvCoreConfig;

HvvCore *hvv_core_new (const HvvCoreConfig * config, HvvWakeFunc wake,
    gpointer wake_data);
void hvv_core_free (HvvCore * core);

/* The guest is gone or reset its device: every connection closed, every
 * queued packet dropped. */
void hvv_core_reset (HvvCore * core);

/* One packet from the guest's TX queue: the first @len bytes of its
 * buffers (at most HVV_HDR_SIZE + HVV_MAX_PAYLOAD), whose descriptors held
 * @desc_len bytes in all. */
void hvv_core_tx (HvvCore * core, const guint8 * pkt, gsize len,
    gsize desc_len);

/* The next packet for the guest, written into @buf (a guest RX buffer of
 * @cap bytes, at least HVV_HDR_SIZE): its length, or 0 if none is due. */
gsize hvv_core_next_rx (HvvCore * core, guint8 * buf, gsize cap);

guint hvv_core_n_conns (HvvCore * core);
/* bytes from the guest not yet written to the host, all connections */
gsize hvv_core_buffered (HvvCore * core);

G_END_DECLS
#endif
