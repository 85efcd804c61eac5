/* See bridge-log-limit.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-log-limit.h"

typedef struct
{
  gdouble tokens;
  gint64 t_refill;
} Bucket;

struct _BridgeLogLimit
{
  GMutex lock;
  guint peer_burst, total_burst, max_peers;
  gdouble peer_per_s, total_per_s;
  GHashTable *peers;            /* gchar* -> Bucket* */
  Bucket total;
  Bucket shared;                /* peers beyond max_peers */
  guint64 suppressed;           /* since the last line let through */
};

static gboolean
bucket_take (Bucket * b, guint burst, gdouble per_s, gint64 now)
{
  b->tokens = MIN ((gdouble) burst, b->tokens + (now - b->t_refill) * per_s /
      G_USEC_PER_SEC);
  b->t_refill = now;
  if (b->tokens < 1)
    return FALSE;
  b->tokens -= 1;
  return TRUE;
}

BridgeLogLimit *
bridge_log_limit_new (guint peer_burst, gdouble peer_per_s, guint total_burst,
    gdouble total_per_s, guint max_peers)
{
  BridgeLogLimit *l = g_new0 (BridgeLogLimit, 1);
  gint64 now = g_get_monotonic_time ();

  g_mutex_init (&l->lock);
  l->peer_burst = peer_burst;
  l->peer_per_s = peer_per_s;
  l->total_burst = total_burst;
  l->total_per_s = total_per_s;
  l->max_peers = max_peers;
  l->peers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  l->total = (Bucket) {
  total_burst, now};
  l->shared = (Bucket) {
  peer_burst, now};
  return l;
}

void
bridge_log_limit_free (BridgeLogLimit * l)
{
  g_hash_table_unref (l->peers);
  g_mutex_clear (&l->lock);
  g_free (l);
}

/* l->lock held */
static Bucket *
peer_bucket (BridgeLogLimit * l, const gchar * peer, gint64 now)
{
  Bucket *b = g_hash_table_lookup (l->peers, peer);

  if (b)
    return b;
  if (g_hash_table_size (l->peers) >= l->max_peers)
    return &l->shared;
  b = g_new (Bucket, 1);
  b->tokens = l->peer_burst;
  b->t_refill = now;
  g_hash_table_insert (l->peers, g_strdup (peer), b);
  return b;
}

gboolean
bridge_log_limit_take (BridgeLogLimit * l, const gchar * peer,
    guint64 * suppressed)
{
  gint64 now = g_get_monotonic_time ();
  gboolean ok;

  g_mutex_lock (&l->lock);
  /* the peer's token first: a peer over its own limit spends none of
   * the total, so it cannot silence the others */
  ok = bucket_take (peer_bucket (l, peer ? peer : "", now), l->peer_burst,
      l->peer_per_s, now)
      && bucket_take (&l->total, l->total_burst, l->total_per_s, now);
  if (ok) {
    *suppressed = l->suppressed;
    l->suppressed = 0;
  } else {
    l->suppressed++;
  }
  g_mutex_unlock (&l->lock);
  return ok;
}
