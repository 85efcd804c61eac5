/* vsockenc: the frames in flight (self->pending, oldest first). Every
 * change to them is here, each under self->lock (see gstvsockenc-priv.h
 * for the lock order): a request sent, its answer taken, a flush, and a
 * session ending or failing, which releases them all.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstvsockenc-priv.h"

static void
pending_frame_free (PendingFrame * p)
{
  if (p->frame)
    gst_video_codec_frame_unref (p->frame);
  gst_buffer_unref (p->input);
  g_free (p);
}

PendingFrame *
gst_vsock_enc_in_flight_add (GstVsockEnc * self, GstVideoCodecFrame * frame,
    GstBuffer * input)
{
  PendingFrame *p = g_new0 (PendingFrame, 1);

  p->frame = frame;
  p->input = gst_buffer_ref (input);
  g_queue_push_tail (&self->pending, p);
  return p;
}

PendingFrame *
gst_vsock_enc_in_flight_answered (GstVsockEnc * self, gpointer tag)
{
  PendingFrame *p = g_queue_peek_head (&self->pending);

  /* answers come in order; another head means the frames were released
   * meanwhile (the session is failing) */
  if (!p || p != tag)
    return NULL;
  return g_queue_pop_head (&self->pending);
}

guint
gst_vsock_enc_in_flight_count (GstVsockEnc * self)
{
  return self->pending.length;
}

void
gst_vsock_enc_in_flight_forget_frames (GstVsockEnc * self)
{
  GList *l;

  for (l = self->pending.head; l; l = l->next) {
    PendingFrame *p = l->data;

    g_clear_pointer (&p->frame, gst_video_codec_frame_unref);
  }
}

GQueue
gst_vsock_enc_in_flight_release (GstVsockEnc * self)
{
  GQueue released = self->pending;

  g_queue_init (&self->pending);
  return released;
}

void
gst_vsock_enc_in_flight_free (GstVsockEnc * self, GQueue * released,
    gboolean finish)
{
  PendingFrame *p;

  if (finish)
    GST_VIDEO_ENCODER_STREAM_LOCK (self);
  while ((p = g_queue_pop_head (released))) {
    if (finish && p->frame) {
      gst_video_encoder_finish_frame (GST_VIDEO_ENCODER (self), p->frame);
      p->frame = NULL;
    }
    pending_frame_free (p);
  }
  if (finish)
    GST_VIDEO_ENCODER_STREAM_UNLOCK (self);
}

void
gst_vsock_enc_in_flight_done (PendingFrame * p)
{
  pending_frame_free (p);
}
