/* RGB pictures made I420 by libyuv: a scanout's, once per frame, and a
 * frame session's, by its element (bridge-convert.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bridge-convert.h"

#ifdef HAVE_LIBYUV
#include <libyuv/convert.h>
#endif

struct _BridgeConvert
{
  GstBufferPool *pool;          /* of I420 frames of pool_info's size */
  GstVideoInfo pool_info;
};

#ifdef HAVE_LIBYUV
typedef int (*ToI420) (const uint8_t * src, int src_stride, uint8_t * y,
    int y_stride, uint8_t * u, int u_stride, uint8_t * v, int v_stride,
    int width, int height);

/* libyuv names a format by its 32-bit word, GStreamer by its bytes in
 * memory: libyuv's ARGB is GStreamer's BGRA */
static ToI420
converter_for (GstVideoFormat format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_BGRA:
    case GST_VIDEO_FORMAT_BGRx:
      return ARGBToI420;
    case GST_VIDEO_FORMAT_RGBA:
    case GST_VIDEO_FORMAT_RGBx:
      return ABGRToI420;
    case GST_VIDEO_FORMAT_ARGB:
    case GST_VIDEO_FORMAT_xRGB:
      return BGRAToI420;
    case GST_VIDEO_FORMAT_ABGR:
    case GST_VIDEO_FORMAT_xBGR:
      return RGBAToI420;
    default:
      return NULL;
  }
}
#endif

gboolean
bridge_convert_handles (GstVideoFormat format)
{
#ifdef HAVE_LIBYUV
  return converter_for (format) != NULL;
#else
  return FALSE;
#endif
}

gboolean
bridge_convert_frame (const GstVideoFrame * in, GstVideoFrame * out)
{
#ifdef HAVE_LIBYUV
  ToI420 to_i420 = converter_for (GST_VIDEO_FRAME_FORMAT (in));

  if (!to_i420 || GST_VIDEO_FRAME_FORMAT (out) != GST_VIDEO_FORMAT_I420
      || GST_VIDEO_FRAME_WIDTH (in) != GST_VIDEO_FRAME_WIDTH (out)
      || GST_VIDEO_FRAME_HEIGHT (in) != GST_VIDEO_FRAME_HEIGHT (out))
    return FALSE;
  to_i420 (GST_VIDEO_FRAME_PLANE_DATA (in, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (in, 0),
      GST_VIDEO_FRAME_PLANE_DATA (out, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (out, 0),
      GST_VIDEO_FRAME_PLANE_DATA (out, 1),
      GST_VIDEO_FRAME_PLANE_STRIDE (out, 1),
      GST_VIDEO_FRAME_PLANE_DATA (out, 2),
      GST_VIDEO_FRAME_PLANE_STRIDE (out, 2),
      GST_VIDEO_FRAME_WIDTH (in), GST_VIDEO_FRAME_HEIGHT (in));
  return TRUE;
#else
  return FALSE;
#endif
}

gboolean
bridge_convert_available (void)
{
#ifdef HAVE_LIBYUV
  return TRUE;
#else
  return FALSE;
#endif
}

BridgeConvert *
bridge_convert_new (void)
{
  return g_new0 (BridgeConvert, 1);
}

static void
drop_pool (BridgeConvert * convert)
{
  if (!convert->pool)
    return;
  /* buffers still in an encoder keep the old pool until they come back */
  gst_buffer_pool_set_active (convert->pool, FALSE);
  g_clear_object (&convert->pool);
}

void
bridge_convert_free (BridgeConvert * convert)
{
  if (!convert)
    return;
  drop_pool (convert);
  g_free (convert);
}

#ifdef HAVE_LIBYUV
/* A pool of @info's frames, made anew when the size changes. Not bounded
 * here: the caller bounds the frames it keeps out (the scanout thread:
 * ENCODER_DEPTH per rendition, encoders_have_room()). */
static gboolean
ensure_pool (BridgeConvert * convert, const GstVideoInfo * info)
{
  GstStructure *config;
  GstCaps *caps;

  if (convert->pool && gst_video_info_is_equal (info, &convert->pool_info))
    return TRUE;
  drop_pool (convert);
  convert->pool = gst_video_buffer_pool_new ();
  config = gst_buffer_pool_get_config (convert->pool);
  caps = gst_video_info_to_caps (info);
  gst_buffer_pool_config_set_params (config, caps,
      (guint) GST_VIDEO_INFO_SIZE (info), 0, 0);
  gst_caps_unref (caps);
  if (!gst_buffer_pool_set_config (convert->pool, config)
      || !gst_buffer_pool_set_active (convert->pool, TRUE)) {
    g_clear_object (&convert->pool);
    return FALSE;
  }
  convert->pool_info = *info;
  return TRUE;
}
#endif

GstBuffer *
bridge_convert_to_i420 (BridgeConvert * convert, GstBuffer * buf,
    const GstVideoInfo * info, GstVideoInfo * out_info)
{
#ifdef HAVE_LIBYUV
  GstVideoFrame in, out;
  GstBuffer *yuv = NULL;
  gboolean done;

  if (!bridge_convert_handles (GST_VIDEO_INFO_FORMAT (info)))
    return NULL;
  gst_video_info_set_format (out_info, GST_VIDEO_FORMAT_I420,
      GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info));
  /* the matrix libyuv converts with, and what the stream says it is */
  gst_video_colorimetry_from_string (&out_info->colorimetry,
      GST_VIDEO_COLORIMETRY_BT601);
  GST_VIDEO_INFO_FPS_N (out_info) = GST_VIDEO_INFO_FPS_N (info);
  GST_VIDEO_INFO_FPS_D (out_info) = GST_VIDEO_INFO_FPS_D (info);
  if (!ensure_pool (convert, out_info)
      || gst_buffer_pool_acquire_buffer (convert->pool, &yuv, NULL)
      != GST_FLOW_OK)
    return NULL;
  if (!gst_video_frame_map (&in, (GstVideoInfo *) info, buf, GST_MAP_READ)) {
    gst_buffer_unref (yuv);
    return NULL;
  }
  if (!gst_video_frame_map (&out, out_info, yuv, GST_MAP_WRITE)) {
    gst_video_frame_unmap (&in);
    gst_buffer_unref (yuv);
    return NULL;
  }
  done = bridge_convert_frame (&in, &out);
  gst_video_frame_unmap (&out);
  gst_video_frame_unmap (&in);
  if (!done)
    g_clear_pointer (&yuv, gst_buffer_unref);
  return yuv;
#else
  return NULL;
#endif
}
