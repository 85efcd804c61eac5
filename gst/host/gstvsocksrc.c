/* vsocksrc: raw video out of one HXFR guest connection.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-vsocksrc
 * @title: vsocksrc
 *
 * A live source that turns the frames one guest (`vsockenc`, or a deployed
 * v1 guest) sends over an HXFR connection into raw video buffers: caps from
 * the wire (size, format, framerate from the guest's HELLO/CONFIG_REQ/
 * CONTROL, else 0/1), renegotiated when the guest changes size or format;
 * PTS and duration from the guest; a downstream force-key-unit event before
 * every frame the guest wants as an IDR (and after a KEYFRAME_REQ); EOS when
 * the guest leaves. Buffers carry a #GstVideoMeta with the guest's plane
 * strides and offsets: pixels are read from the socket straight into a
 * buffer of a bounded pool and never repacked (unless downstream cannot
 * take a #GstVideoMeta and the layout is not the default one).
 *
 * Frames the guest names by virtio-gpu resource id are resolved through
 * the VMM's helix export (#GstVsockSrc:export-client) and wrapped without
 * a copy: the shared readback slot, or the DMA-BUF (memory:DMABuf caps when
 * downstream accepts them, else mapped; linear only, anything else is asked
 * for again as readback), or on macOS the IOSurface. Freeing the buffer
 * gives the surface back. See docs/zero-copy.md.
 *
 * Two modes:
 *
 * - inside `helix-host-bridge`, which accepts the connection, does the
 *   handshake and hands the session over (#GstVsockSrc:session); the bridge
 *   then answers every request with the access unit its encoder made.
 * - standalone, with #GstVsockSrc:listen, to look at a guest's frames on the
 *   host. The element accepts one guest, answers its handshake, and answers
 *   every frame at once so that the guest keeps flowing: a v2 guest gets
 *   DROPPED; a v1 guest (which has no "dropped") gets a FRAME_RESPONSE with
 *   no NAL entry, i.e. an empty access unit, which a deployed guest passes
 *   on as an empty buffer and carries on (an ERROR per frame could stop it).
 *   EOS when that guest disconnects.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 vsocksrc listen=unix:/tmp/hx.sock ! videoconvert ! autovideosink sync=false
 * ]| Preview what a guest sends (guest: `... ! vsockenc socket-path=/tmp/hx.sock ! fakesink`).
 * |[
 * gst-launch-1.0 vsocksrc listen=tcp:127.0.0.1:15937 num-buffers=100 ! videoconvert ! pngenc ! multifilesink location=frame-%03d.png
 * ]| Dump the first 100 frames of a guest connecting over TCP.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>
#include <gst/video/video.h>
#include <gst/allocators/allocators.h>

#include "gstvsocksrc.h"
#include "hxfr-host-session.h"
#include "hxfr-video.h"
#include "hxfr-surface.h"

GST_DEBUG_CATEGORY_STATIC (gst_vsock_src_debug);
#define GST_CAT_DEFAULT gst_vsock_src_debug

/* what the helix export serves as DMA-BUF */
#define VSOCKSRC_DMABUF_FORMATS "{ BGRA, BGRx, RGBA, RGBx }"

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (HXFR_VIDEO_FORMATS) "; "
        GST_VIDEO_CAPS_MAKE_WITH_FEATURES (GST_CAPS_FEATURE_MEMORY_DMABUF,
            VSOCKSRC_DMABUF_FORMATS)));

/* Locking: the object lock protects the properties (listen_spec,
 * session_prop, max_in_flight, pool_size, default_fps) and the @pool
 * pointer (create() replaces the pool when the frame size changes while
 * unlock() may be flushing it). @cancellable is replaced only in
 * unlock_stop(), which the base class never runs alongside create() or
 * unlock(). Everything else belongs to the streaming thread. */
struct _GstVsockSrc
{
  GstPushSrc parent;

  gchar *listen_spec;
  HxfrHostSession *session_prop;        /* handed over by the bridge */
  guint max_in_flight;
  guint pool_size;
  gint default_fps_n, default_fps_d;
  HxexClient *export_client;    /* resolves resource ids */

  GCancellable *cancellable;
  HxfrListener *listener;
  HxfrHostSession *session;
  gboolean standalone;

  GstBufferPool *pool;
  gsize pool_buffer_size;
  GstVideoInfo info;            /* of the current caps */
  gboolean have_caps;
  gboolean caps_dmabuf;         /* current caps are memory:DMABuf */
  /* a DMA-BUF of this session could not be used here: ask for readback
   * from then on instead of exporting each frame twice */
  gboolean dmabuf_unusable;
  gboolean downstream_meta;
  gboolean pushed;              /* a buffer went out since the last caps */
  GstClockTime last_pts;
  guint key_count;
};

#define GST_TYPE_VSOCK_SRC (gst_vsock_src_get_type ())
G_DECLARE_FINAL_TYPE (GstVsockSrc, gst_vsock_src, GST, VSOCK_SRC, GstPushSrc);
G_DEFINE_TYPE (GstVsockSrc, gst_vsock_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (vsocksrc, "vsocksrc", GST_RANK_NONE,
    GST_TYPE_VSOCK_SRC, GST_DEBUG_CATEGORY_INIT (gst_vsock_src_debug,
        "vsocksrc", 0, "HXFR guest connection source"));

#define DEFAULT_POOL_SIZE 4

enum
{
  PROP_0,
  PROP_LISTEN,
  PROP_SESSION,
  PROP_MAX_IN_FLIGHT,
  PROP_POOL_SIZE,
  PROP_DEFAULT_FRAMERATE,
  PROP_EXPORT_CLIENT,
  N_PROPERTIES
};

static GParamSpec *properties[N_PROPERTIES];

static void
gst_vsock_src_init (GstVsockSrc * self)
{
  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
  self->max_in_flight = HXFR_HOST_DEFAULT_MAX_IN_FLIGHT;
  self->pool_size = DEFAULT_POOL_SIZE;
  self->default_fps_n = 0;
  self->default_fps_d = 1;
  self->cancellable = g_cancellable_new ();
}

static void
gst_vsock_src_finalize (GObject * object)
{
  GstVsockSrc *self = GST_VSOCK_SRC (object);

  g_free (self->listen_spec);
  if (self->session_prop)
    hxfr_host_session_unref (self->session_prop);
  if (self->export_client)
    hxex_client_unref (self->export_client);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (gst_vsock_src_parent_class)->finalize (object);
}

static void
gst_vsock_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVsockSrc *self = GST_VSOCK_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LISTEN:
      g_free (self->listen_spec);
      self->listen_spec = g_value_dup_string (value);
      break;
    case PROP_SESSION:
      if (self->session_prop)
        hxfr_host_session_unref (self->session_prop);
      self->session_prop = g_value_dup_boxed (value);
      break;
    case PROP_MAX_IN_FLIGHT:
      self->max_in_flight = g_value_get_uint (value);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint (value);
      break;
    case PROP_DEFAULT_FRAMERATE:
      self->default_fps_n = gst_value_get_fraction_numerator (value);
      self->default_fps_d = gst_value_get_fraction_denominator (value);
      break;
    case PROP_EXPORT_CLIENT:
      if (self->export_client)
        hxex_client_unref (self->export_client);
      self->export_client = g_value_dup_boxed (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_vsock_src_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstVsockSrc *self = GST_VSOCK_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LISTEN:
      g_value_set_string (value, self->listen_spec);
      break;
    case PROP_SESSION:
      g_value_set_boxed (value, self->session_prop);
      break;
    case PROP_MAX_IN_FLIGHT:
      g_value_set_uint (value, self->max_in_flight);
      break;
    case PROP_POOL_SIZE:
      g_value_set_uint (value, self->pool_size);
      break;
    case PROP_DEFAULT_FRAMERATE:
      gst_value_set_fraction (value, self->default_fps_n, self->default_fps_d);
      break;
    case PROP_EXPORT_CLIENT:
      g_value_set_boxed (value, self->export_client);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_vsock_src_start (GstBaseSrc * bsrc)
{
  GstVsockSrc *self = GST_VSOCK_SRC (bsrc);
  g_autoptr (HxfrAddress) addr = NULL;
  g_autofree gchar *spec = NULL;
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  spec = g_strdup (self->listen_spec);
  self->session = self->session_prop ?
      hxfr_host_session_ref (self->session_prop) : NULL;
  GST_OBJECT_UNLOCK (self);

  self->have_caps = FALSE;
  self->caps_dmabuf = FALSE;
  self->dmabuf_unusable = FALSE;
  self->pushed = FALSE;
  self->last_pts = GST_CLOCK_TIME_NONE;
  self->key_count = 0;
  self->standalone = self->session == NULL;

  if (self->session)
    return TRUE;
  if (!spec) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Nothing to read from: set \"listen\" (or hand over a session)"),
        (NULL));
    return FALSE;
  }
  addr = hxfr_address_parse (spec, &err);
  if (addr)
    self->listener = hxfr_listener_new (addr, 0, &err);
  if (!self->listener) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not listen on %s", spec), ("%s", err->message));
    g_error_free (err);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "listening on %s", spec);
  return TRUE;
}

static gboolean
gst_vsock_src_stop (GstBaseSrc * bsrc)
{
  GstVsockSrc *self = GST_VSOCK_SRC (bsrc);
  GstBufferPool *pool;

  if (self->session) {
    if (self->standalone)
      hxfr_host_session_shutdown (self->session);
    hxfr_host_session_unref (self->session);
    self->session = NULL;
  }
  g_clear_pointer (&self->listener, hxfr_listener_free);
  GST_OBJECT_LOCK (self);
  pool = self->pool;
  self->pool = NULL;
  GST_OBJECT_UNLOCK (self);
  if (pool) {
    gst_buffer_pool_set_active (pool, FALSE);
    gst_object_unref (pool);
  }
  return TRUE;
}

static void
set_pool_flushing (GstVsockSrc * self, gboolean flushing)
{
  GstBufferPool *pool;

  /* create() may be swapping the pool for one of another frame size */
  GST_OBJECT_LOCK (self);
  pool = self->pool ? gst_object_ref (self->pool) : NULL;
  GST_OBJECT_UNLOCK (self);
  if (pool) {
    gst_buffer_pool_set_flushing (pool, flushing);
    gst_object_unref (pool);
  }
}

static gboolean
gst_vsock_src_unlock (GstBaseSrc * bsrc)
{
  GstVsockSrc *self = GST_VSOCK_SRC (bsrc);

  g_cancellable_cancel (self->cancellable);
  set_pool_flushing (self, TRUE);
  return TRUE;
}

static gboolean
gst_vsock_src_unlock_stop (GstBaseSrc * bsrc)
{
  GstVsockSrc *self = GST_VSOCK_SRC (bsrc);

  g_object_unref (self->cancellable);
  self->cancellable = g_cancellable_new ();
  set_pool_flushing (self, FALSE);
  return TRUE;
}

/* Caps are set from create() once the first frame says what they are. */
static gboolean
gst_vsock_src_negotiate (GstBaseSrc * bsrc)
{
  return TRUE;
}

static GstFlowReturn
flow_for_error (GstVsockSrc * self, GError * err, const gchar * what)
{
  GstFlowReturn ret = GST_FLOW_ERROR;

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    ret = GST_FLOW_FLUSHING;
  } else {
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("%s: %s", what, err->message),
        ("HXFR error code %d (%s)", hxfr_host_error_code (err),
            hxfr_error_code_name (hxfr_host_error_code (err))));
  }
  g_error_free (err);
  return ret;
}

/* Standalone: wait for one guest and answer its handshake. */
static GstFlowReturn
accept_guest (GstVsockSrc * self)
{
  HxfrHostConfig cfg;
  HxfrConn *conn;
  GError *err = NULL;
  gboolean has_export;

  conn = hxfr_listener_accept (self->listener, -1, self->cancellable, &err);
  if (!conn)
    return flow_for_error (self, err, "Could not accept a guest");
  /* one guest per element: nobody else can connect from now on */
  g_clear_pointer (&self->listener, hxfr_listener_free);

  hxfr_host_config_init (&cfg);
  GST_OBJECT_LOCK (self);
  cfg.max_in_flight = self->max_in_flight;
  has_export = self->export_client != NULL;
  GST_OBJECT_UNLOCK (self);
  g_strlcpy (cfg.encoder, "vsocksrc-preview", sizeof (cfg.encoder));
  self->session = hxfr_host_session_new (conn, &cfg);
  hxfr_conn_unref (conn);
  /* standalone with an export client: resource ids are ours to resolve */
  if (has_export)
    hxfr_host_session_set_resolves_resources (self->session, 0);

  GST_INFO_OBJECT (self, "guest connected: %s",
      hxfr_host_session_get_peer (self->session));
  if (!hxfr_host_session_handshake (self->session, -1, self->cancellable, &err)) {
    if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)) {
      g_error_free (err);
      return GST_FLOW_EOS;
    }
    return flow_for_error (self, err, "Guest handshake failed");
  }
  GST_INFO_OBJECT (self, "guest speaks HXFR v%u",
      hxfr_host_session_get_version (self->session));
  return GST_FLOW_OK;
}

static gboolean
update_caps (GstVsockSrc * self, const HxfrFrameRequest * req, gboolean dmabuf)
{
  GstVideoFormat fmt = hxfr_video_format_from_fourcc (req->format);
  HxfrHostSettings st;
  GstVideoInfo info;
  GstCaps *caps;
  GstQuery *query;
  gboolean ok;

  if (self->have_caps && GST_VIDEO_INFO_FORMAT (&self->info) == fmt
      && (guint) GST_VIDEO_INFO_WIDTH (&self->info) == req->width
      && (guint) GST_VIDEO_INFO_HEIGHT (&self->info) == req->height
      && self->caps_dmabuf == dmabuf)
    return TRUE;

  hxfr_host_session_get_settings (self->session, &st);
  gst_video_info_set_format (&info, fmt, req->width, req->height);
  if (st.fps_n && st.fps_d && st.fps_n <= G_MAXINT && st.fps_d <= G_MAXINT) {
    GST_VIDEO_INFO_FPS_N (&info) = st.fps_n;
    GST_VIDEO_INFO_FPS_D (&info) = st.fps_d;
  } else {
    GST_OBJECT_LOCK (self);
    GST_VIDEO_INFO_FPS_N (&info) = self->default_fps_n;
    GST_VIDEO_INFO_FPS_D (&info) = self->default_fps_d;
    GST_OBJECT_UNLOCK (self);
  }
  caps = gst_video_info_to_caps (&info);
  if (dmabuf)
    gst_caps_set_features_simple (caps,
        gst_caps_features_new (GST_CAPS_FEATURE_MEMORY_DMABUF, NULL));
  GST_INFO_OBJECT (self, "guest frames are %" GST_PTR_FORMAT, caps);
  ok = gst_base_src_set_caps (GST_BASE_SRC (self), caps);
  if (ok) {
    /* can downstream read our strides, or must we hand it packed frames? */
    query = gst_query_new_allocation (caps, FALSE);
    self->downstream_meta = gst_pad_peer_query (GST_BASE_SRC_PAD (self),
        query) && gst_query_find_allocation_meta (query,
        GST_VIDEO_META_API_TYPE, NULL);
    gst_query_unref (query);
    self->info = info;
    self->have_caps = TRUE;
    self->caps_dmabuf = dmabuf;
    self->pushed = FALSE;
  }
  gst_caps_unref (caps);
  return ok;
}

static GstFlowReturn
acquire (GstVsockSrc * self, gsize size, GstBuffer ** buf)
{
  if (!self->pool || self->pool_buffer_size != size) {
    GstStructure *config;
    GstBufferPool *pool = gst_buffer_pool_new (), *old;
    guint n;

    GST_OBJECT_LOCK (self);
    n = MAX (self->pool_size, 2);
    old = self->pool;
    self->pool = pool;
    GST_OBJECT_UNLOCK (self);
    if (old) {
      gst_buffer_pool_set_active (old, FALSE);
      gst_object_unref (old);
    }
    config = gst_buffer_pool_get_config (pool);
    gst_buffer_pool_config_set_params (config, NULL, size, 0, n);
    if (!gst_buffer_pool_set_config (pool, config)
        || !gst_buffer_pool_set_active (pool, TRUE)) {
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Could not allocate frames of %" G_GSIZE_FORMAT " bytes", size),
          (NULL));
      return GST_FLOW_ERROR;
    }
    self->pool_buffer_size = size;
    if (g_cancellable_is_cancelled (self->cancellable))
      gst_buffer_pool_set_flushing (self->pool, TRUE);
  }
  return gst_buffer_pool_acquire_buffer (self->pool, buf, NULL);
}

/* A buffer packed the default way, for a downstream without video meta. */
static GstBuffer *
repack (GstVsockSrc * self, GstBuffer * in)
{
  GstVideoFrame src, dst;
  GstBuffer *out = gst_buffer_new_allocate (NULL,
      GST_VIDEO_INFO_SIZE (&self->info), NULL);
  GstVideoInfo in_info = self->info;
  GstVideoMeta *meta = gst_buffer_get_video_meta (in);
  guint i;

  for (i = 0; i < meta->n_planes; i++) {
    GST_VIDEO_INFO_PLANE_STRIDE (&in_info, i) = meta->stride[i];
    GST_VIDEO_INFO_PLANE_OFFSET (&in_info, i) = meta->offset[i];
  }
  if (gst_video_frame_map (&src, &in_info, in, GST_MAP_READ)) {
    if (gst_video_frame_map (&dst, &self->info, out, GST_MAP_WRITE)) {
      gst_video_frame_copy (&dst, &src);
      gst_video_frame_unmap (&dst);
    }
    gst_video_frame_unmap (&src);
  }
  gst_buffer_copy_into (out, in, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  gst_buffer_unref (in);
  return out;
}

static gboolean
layout_is_default (GstVsockSrc * self, const HxfrFrameRequest * req)
{
  guint i;

  for (i = 0; i < req->n_planes; i++)
    if (req->stride[i] != (guint) GST_VIDEO_INFO_PLANE_STRIDE (&self->info, i)
        || req->offset[i] != GST_VIDEO_INFO_PLANE_OFFSET (&self->info, i))
      return FALSE;
  return TRUE;
}

static void
push_force_key_unit (GstVsockSrc * self, GstClockTime pts)
{
  /* running time NONE: "the next frame", which is the one we push next */
  GstEvent *ev = gst_video_event_new_downstream_force_key_unit (pts,
      GST_CLOCK_TIME_NONE, GST_CLOCK_TIME_NONE, TRUE, ++self->key_count);

  GST_DEBUG_OBJECT (self, "force-key-unit before %" GST_TIME_FORMAT,
      GST_TIME_ARGS (pts));
  gst_pad_push_event (GST_BASE_SRC_PAD (self), ev);
}

#define RESOLVE_TIMEOUT_US (2 * G_USEC_PER_SEC)

/* Can downstream take @surface's frames as memory:DMABuf caps? (1.22
 * style: the plain format, linear or implicit modifier.) */
static gboolean
downstream_takes_dmabuf (GstVsockSrc * self, const HxexClientSurface * surface)
{
  GstVideoInfo info;
  GstCaps *caps, *peer;
  gboolean ok;

  if (!gst_video_info_set_format (&info,
          hxfr_video_format_from_fourcc (surface->fourcc), surface->width,
          surface->height))
    return FALSE;
  caps = gst_video_info_to_caps (&info);
  gst_caps_set_features_simple (caps,
      gst_caps_features_new (GST_CAPS_FEATURE_MEMORY_DMABUF, NULL));
  /* a caps query, not accept-caps: queues answer accept-caps for
   * anything, a caps query travels to the element that decides */
  peer = gst_pad_peer_query_caps (GST_BASE_SRC_PAD (self), caps);
  ok = peer && !gst_caps_is_empty (peer);
  gst_clear_caps (&peer);
  gst_caps_unref (caps);
  return ok;
}

/* The export client to resolve with, referenced (NULL: none set). */
static HxexClient *
ref_export_client (GstVsockSrc * self)
{
  HxexClient *client;

  GST_OBJECT_LOCK (self);
  client = self->export_client ? hxex_client_ref (self->export_client) : NULL;
  GST_OBJECT_UNLOCK (self);
  return client;
}

/* @err, from resolving @resource_id, as the guest's @failure (domain
 * HXFR_ERROR). Takes @err. */
static void
set_resolve_failure (GError ** failure, guint32 resource_id, GError * err)
{
  /* only an unknown resource is the guest's mistake; the rest is ours */
  if (err->domain == G_IO_ERROR && err->code != G_IO_ERROR_TIMED_OUT)
    g_set_error (failure, HXFR_ERROR, HXFR_ERR_INTERNAL, "resource %u: the "
        "VMM's helix export is gone (%s); frames named by resource id fail "
        "until a new session connects to it", resource_id, err->message);
  else
    g_set_error (failure, HXFR_ERROR, g_error_matches (err, HXEX_ERROR,
            HXEX_ERR_UNKNOWN_RESOURCE) ? HXFR_ERR_RESOURCE_NOT_FOUND :
        HXFR_ERR_INTERNAL, "resource %u: %s", resource_id, err->message);
  g_error_free (err);
}

/* @surface as a buffer (hxfr_surface_wrap(), takes @surface). A DMA-BUF
 * is imported when downstream takes it as memory:DMABuf (*dmabuf_caps),
 * else mapped. */
static GstBuffer *
wrap_surface (GstVsockSrc * self, HxexClientSurface * surface,
    gboolean * dmabuf_caps, GError ** error)
{
  *dmabuf_caps = surface->kind == HXEX_KIND_DMABUF
      && downstream_takes_dmabuf (self, surface);
  return hxfr_surface_wrap (surface, *dmabuf_caps ? HXFR_SURFACE_IMPORTED :
      HXFR_SURFACE_MAPPED, NULL, error);
}

/* Resolves @resource_id and wraps the surface. A DMA-BUF whose layout
 * cannot be read here (tiled, or implicit with nobody downstream
 * importing it) is asked for again as readback, and from then on so is
 * every frame of the session, rather than exporting each twice. NULL:
 * @failure (domain HXFR_ERROR, the code the guest gets) says why. */
static GstBuffer *
resolve_buffer (GstVsockSrc * self, HxexClient * client,
    guint32 resource_id, gboolean * dmabuf_caps, GError ** failure)
{
  HxexClientSurface *surface;
  GstBuffer *buf;
  GError *err = NULL;

  surface = hxex_client_resolve_kinds (client, resource_id,
      self->dmabuf_unusable ? HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT) : 0,
      RESOLVE_TIMEOUT_US, &err);
  if (!surface) {
    set_resolve_failure (failure, resource_id, err);
    return NULL;
  }
  buf = wrap_surface (self, surface, dmabuf_caps, &err);
  if (!buf && g_error_matches (err, HXFR_SURFACE_ERROR,
          HXFR_SURFACE_ERROR_MODIFIER)) {
    GST_INFO_OBJECT (self, "%s: readback from now on", err->message);
    self->dmabuf_unusable = TRUE;
    g_clear_error (&err);
    surface = hxex_client_resolve_kinds (client, resource_id,
        HXEX_KIND_BIT (HXEX_KIND_READBACK_SLOT), RESOLVE_TIMEOUT_US, &err);
    if (!surface) {
      set_resolve_failure (failure, resource_id, err);
      return NULL;
    }
    buf = wrap_surface (self, surface, dmabuf_caps, &err);
  }
  if (!buf) {
    g_set_error_literal (failure, HXFR_ERROR, HXFR_ERR_INTERNAL, err->message);
    g_error_free (err);
  }
  return buf;
}

/* @req (its seq, pts, flags kept) takes the geometry of @buf's frame. */
static void
take_geometry (HxfrFrameRequest * req, GstBuffer * buf)
{
  GstVideoMeta *meta = gst_buffer_get_video_meta (buf);
  guint i;

  req->width = meta->width;
  req->height = meta->height;
  /* v2's fourccs: one per format */
  req->format = hxfr_video_format_to_fourcc (meta->format, 2);
  req->n_planes = MIN (meta->n_planes, HXFR_MAX_PLANES);
  for (i = 0; i < req->n_planes; i++) {
    req->stride[i] = meta->stride[i];
    req->offset[i] = meta->offset[i];
  }
}

/* A frame named by resource id: resolved through the helix export and
 * wrapped without a copy (resolve_buffer()). Freeing the buffer gives
 * the surface back to the VMM. @req is updated to the surface's
 * geometry, *dmabuf_caps says whether to announce memory:DMABuf. NULL in
 * *out with GST_FLOW_OK: that frame failed (answered FAILED in its
 * turn), read the next one. */
static GstFlowReturn
resource_buffer (GstVsockSrc * self, HxfrFrameRequest * req, GstBuffer ** out,
    gboolean * dmabuf_caps)
{
  HxexClient *client = ref_export_client (self);
  GError *failure = NULL, *err = NULL;
  gboolean answered;

  *out = NULL;
  *dmabuf_caps = FALSE;
  if (client) {
    *out = resolve_buffer (self, client, req->resource_id, dmabuf_caps,
        &failure);
    hxex_client_unref (client);
  } else {
    g_set_error (&failure, HXFR_ERROR, HXFR_ERR_RESOURCE_NOT_FOUND,
        "resource %u: no helix export", req->resource_id);
  }
  if (*out) {
    take_geometry (req, *out);
    return GST_FLOW_OK;
  }

  GST_WARNING_OBJECT (self, "%s", failure->message);
  answered = hxfr_host_session_fail_frame (self->session, failure->code,
      failure->message, self->cancellable, &err);
  g_error_free (failure);
  return answered ? GST_FLOW_OK : flow_for_error (self, err,
      "Guest protocol error");
}

/* Reads the session's events up to the next frame it can make a buffer
 * of: a resource id resolved into *buf (frames whose resolution failed
 * were answered, the next is read), or pixels still to be read (*buf
 * NULL, ev->pixel_size of them). A KEYFRAME_REQ on the way is passed
 * downstream at once. GST_FLOW_EOS when the guest left. */
static GstFlowReturn
next_frame (GstVsockSrc * self, HxfrHostEvent * ev, GstBuffer ** buf,
    gboolean * dmabuf_caps)
{
  GError *err = NULL;
  GstFlowReturn ret;

  for (;;) {
    /* a resource frame that failed may have set it: this one decides */
    *dmabuf_caps = FALSE;
    if (!hxfr_host_session_next (self->session, ev, self->cancellable, &err))
      return flow_for_error (self, err, "Guest protocol error");
    if (ev->type == HXFR_HOST_EVENT_EOS) {
      GST_INFO_OBJECT (self, "guest left");
      return GST_FLOW_EOS;
    }
    if (ev->type == HXFR_HOST_EVENT_FRAME && ev->pixel_size == 0) {
      ret = resource_buffer (self, &ev->request, buf, dmabuf_caps);
      if (ret != GST_FLOW_OK || *buf)
        return ret;
      continue;
    }
    if (ev->type == HXFR_HOST_EVENT_FRAME)
      return GST_FLOW_OK;
    /* KEYFRAME_REQ: tell the encoder now, the next frame is flagged too */
    if (self->pushed)
      push_force_key_unit (self, GST_CLOCK_TIME_NONE);
  }
}

/* Caps for @req's frames (negotiated only when they change). A format
 * the protocol does not carry, or one downstream refuses, ends the
 * session: the guest is told why, the application gets the error. */
static GstFlowReturn
negotiate_frame (GstVsockSrc * self, const HxfrFrameRequest * req,
    gboolean dmabuf_caps)
{
  if (hxfr_video_format_from_fourcc (req->format) == GST_VIDEO_FORMAT_UNKNOWN) {
    hxfr_host_session_fail (self->session, HXFR_ERR_UNSUPPORTED,
        "unsupported pixel format");
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("Guest sent format 0x%08x",
            req->format), (NULL));
    return GST_FLOW_ERROR;
  }
  if (!update_caps (self, req, dmabuf_caps)) {
    hxfr_host_session_fail (self->session, HXFR_ERR_UNSUPPORTED,
        "the host pipeline cannot take this frame size or format");
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream refuses the guest's %ux%u %s frames", req->width,
            req->height, hxfr_format_to_string (req->format)), (NULL));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  return GST_FLOW_OK;
}

/* The guest's PTS, kept strictly increasing so that it also names the
 * request when the encoder's output comes back. */
static GstClockTime
frame_pts (GstVsockSrc * self, const HxfrFrameRequest * req)
{
  GstClockTime pts = req->pts >= 0 ? (GstClockTime) req->pts : 0;

  if (GST_CLOCK_TIME_IS_VALID (self->last_pts) && pts <= self->last_pts)
    pts = self->last_pts + 1;
  return pts;
}

/* The guest's duration, else one frame at the caps' framerate. */
static GstClockTime
frame_duration (GstVsockSrc * self, const HxfrFrameRequest * req)
{
  if (req->duration >= 0)
    return (GstClockTime) req->duration;
  if (!GST_VIDEO_INFO_FPS_N (&self->info))
    return GST_CLOCK_TIME_NONE;
  return gst_util_uint64_scale (GST_SECOND, GST_VIDEO_INFO_FPS_D (&self->info),
      GST_VIDEO_INFO_FPS_N (&self->info));
}

/* Ends reading the frame: queues the request as @pts, and for a pixel
 * frame (*buf NULL) reads its @pixel_size bytes into a pooled buffer. A
 * failure drops *buf. */
static GstFlowReturn
read_frame (GstVsockSrc * self, gsize pixel_size, GstClockTime pts,
    GstBuffer ** buf)
{
  GError *err = NULL;
  GstFlowReturn ret;
  GstMapInfo map;
  gboolean ok;

  if (*buf) {
    /* a resolved resource: nothing more to read, queue the request */
    ok = hxfr_host_session_read_pixels (self->session, NULL, pts,
        self->cancellable, &err);
  } else {
    ret = acquire (self, pixel_size, buf);
    if (ret != GST_FLOW_OK) {
      /* flushing: this request is lost with the pipeline; the guest's
       * connection goes down with it */
      hxfr_host_session_shutdown (self->session);
      return ret;
    }
    gst_buffer_map (*buf, &map, GST_MAP_WRITE);
    ok = hxfr_host_session_read_pixels (self->session, map.data, pts,
        self->cancellable, &err);
    gst_buffer_unmap (*buf, &map);
  }
  if (!ok) {
    gst_clear_buffer (buf);
    return flow_for_error (self, err, "Could not read a frame");
  }
  return GST_FLOW_OK;
}

/* The guest's plane layout on @buf, so downstream reads its strides. */
static void
add_video_meta (GstVsockSrc * self, GstBuffer * buf,
    const HxfrFrameRequest * req)
{
  gsize offset[GST_VIDEO_MAX_PLANES] = { 0, };
  gint stride[GST_VIDEO_MAX_PLANES] = { 0, };
  guint i;

  for (i = 0; i < req->n_planes && i < GST_VIDEO_MAX_PLANES; i++) {
    offset[i] = req->offset[i];
    stride[i] = req->stride[i];
  }
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_INFO_FORMAT (&self->info), req->width, req->height,
      req->n_planes, offset, stride);
}

static GstFlowReturn
gst_vsock_src_create (GstPushSrc * psrc, GstBuffer ** outbuf)
{
  GstVsockSrc *self = GST_VSOCK_SRC (psrc);
  HxfrHostEvent ev;
  GstBuffer *buf = NULL;
  GstFlowReturn ret;
  GstClockTime pts, duration;
  gboolean dmabuf_caps = FALSE;

  if (!self->session) {
    ret = accept_guest (self);
    if (ret != GST_FLOW_OK)
      return ret;
  }

  ret = next_frame (self, &ev, &buf, &dmabuf_caps);
  if (ret != GST_FLOW_OK)
    return ret;
  ret = negotiate_frame (self, &ev.request, dmabuf_caps);
  if (ret != GST_FLOW_OK) {
    gst_clear_buffer (&buf);
    return ret;
  }

  pts = frame_pts (self, &ev.request);
  duration = frame_duration (self, &ev.request);
  ret = read_frame (self, ev.pixel_size, pts, &buf);
  if (ret != GST_FLOW_OK)
    return ret;
  self->last_pts = pts;

  if (self->standalone)
    hxfr_host_session_answer (self->session, pts, HXFR_STATUS_DROPPED, NULL,
        0, FALSE, -1, 0, NULL, NULL);

  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (buf) = duration;
  /* a resolved resource carries the surface's already */
  if (!gst_buffer_get_video_meta (buf))
    add_video_meta (self, buf, &ev.request);
  if (!self->downstream_meta && !layout_is_default (self, &ev.request))
    buf = repack (self, buf);

  if (ev.force_keyframe && self->pushed)
    push_force_key_unit (self, pts);
  self->pushed = TRUE;

  GST_LOG_OBJECT (self, "frame %ux%u pts %" GST_TIME_FORMAT "%s",
      ev.request.width, ev.request.height, GST_TIME_ARGS (pts),
      ev.force_keyframe ? " (IDR)" : "");
  *outbuf = buf;
  return GST_FLOW_OK;
}

static void
gst_vsock_src_class_init (GstVsockSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *bsrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *psrc_class = GST_PUSH_SRC_CLASS (klass);

  gobject_class->finalize = gst_vsock_src_finalize;
  gobject_class->set_property = gst_vsock_src_set_property;
  gobject_class->get_property = gst_vsock_src_get_property;

  /**
   * GstVsockSrc:listen:
   *
   * Address to accept one guest on: `unix:PATH`, `tcp:HOST:PORT` or
   * `vsock:PORT`. Standalone use only; the element answers the guest itself.
   */
  properties[PROP_LISTEN] = g_param_spec_string ("listen", "Listen address",
      "Accept one guest on this address (unix:PATH, tcp:HOST:PORT, "
      "vsock:PORT) and answer it so that it keeps flowing (preview mode)",
      NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY);

  /**
   * GstVsockSrc:session:
   *
   * An `HxfrHostSession` (boxed) whose handshake is done (helix-host-bridge sets
   * it). The element reads the session's frames; whoever handed it over
   * answers them.
   */
  properties[PROP_SESSION] = g_param_spec_boxed ("session", "Session",
      "HxfrHostSession handed over by helix-host-bridge (API use only)",
      HXFR_TYPE_HOST_SESSION,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

  properties[PROP_MAX_IN_FLIGHT] = g_param_spec_uint ("max-in-flight",
      "Max in flight", "Requests a v2 guest may have unanswered "
      "(standalone mode)", 1, 64, HXFR_HOST_DEFAULT_MAX_IN_FLIGHT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

  properties[PROP_POOL_SIZE] = g_param_spec_uint ("pool-size", "Pool size",
      "Frame buffers at most (downstream holding them all stalls reading, "
      "which is the memory bound)", 2, 64, DEFAULT_POOL_SIZE,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

  /**
   * GstVsockSrc:default-framerate:
   *
   * Framerate put in the caps while the guest has not said one. 0/1 (the
   * default) is "variable"; some encoders (x264enc) then hold every frame
   * back until the next one arrives, so the bridge sets a fixed rate here.
   */
  properties[PROP_DEFAULT_FRAMERATE] = gst_param_spec_fraction
      ("default-framerate", "Default framerate",
      "Framerate of the caps when the guest sends none (0/1 = variable)",
      0, 1, G_MAXINT, 1, 0, 1,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

  /**
   * GstVsockSrc:export-client:
   *
   * An `HxexClient` (boxed) connected to the VMM's helix export
   * (helix-host-bridge --export sets it): frames the guest names by
   * virtio-gpu resource id are resolved through it and wrapped without a
   * copy (the shared readback slot itself), released back to the VMM when
   * the buffer is freed. Without it such frames fail one by one.
   */
  properties[PROP_EXPORT_CLIENT] = g_param_spec_boxed ("export-client",
      "Export client", "HxexClient resolving resource ids "
      "(API use only)", HXEX_TYPE_CLIENT,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

  g_object_class_install_properties (gobject_class, N_PROPERTIES, properties);

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "HXFR guest frame source", "Source/Video/Network",
      "Raw video frames sent by a guest over vsock, TCP or a UNIX socket "
      "(HXFR v1/v2)", "Helix encode offload");

  bsrc_class->start = GST_DEBUG_FUNCPTR (gst_vsock_src_start);
  bsrc_class->stop = GST_DEBUG_FUNCPTR (gst_vsock_src_stop);
  bsrc_class->unlock = GST_DEBUG_FUNCPTR (gst_vsock_src_unlock);
  bsrc_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_vsock_src_unlock_stop);
  bsrc_class->negotiate = GST_DEBUG_FUNCPTR (gst_vsock_src_negotiate);
  psrc_class->create = GST_DEBUG_FUNCPTR (gst_vsock_src_create);
}

gboolean
gst_vsock_src_register_in_process (void)
{
  return GST_ELEMENT_REGISTER (vsocksrc, NULL);
}
