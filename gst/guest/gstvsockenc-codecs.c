/* vsockh265enc and vsockav1enc: vsockenc for H.265 and AV1
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-vsockh265enc
 * @title: vsockh265enc
 *
 * vsockenc for H.265: the same element, properties and transports (see
 * vsockenc), asking the host bridge for H.265 (HXFR v2 HELLO codec
 * `H265`). A host bridge with no H.265 encoder refuses the session with
 * an error that says so; an HXFR v1 host cannot be asked (v1 is H.264).
 * Outputs byte-stream access units with VPS, SPS and PPS before every
 * keyframe; the caps carry the profile, tier and level of the first SPS.
 * The aud property applies to H.264 only.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=NV12 ! vsockh265enc socket-path=/run/hx.sock ! h265parse ! avdec_h265 ! autovideosink
 * ]|
 */
/**
 * SECTION:element-vsockav1enc
 * @title: vsockav1enc
 *
 * vsockenc for AV1: the same element, properties and transports (see
 * vsockenc), asking the host bridge for AV1 (HXFR v2 HELLO codec `AV01`).
 * A host bridge with no AV1 encoder refuses the session with an error
 * that says so; an HXFR v1 host cannot be asked (v1 is H.264). Outputs
 * an OBU stream, one temporal unit per buffer, with a sequence header on
 * every keyframe. The aud property applies to H.264 only.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=NV12 ! vsockav1enc socket-path=/run/hx.sock ! av1parse ! av1dec ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstvsockenc-priv.h"

#define GST_TYPE_VSOCK_H265_ENC (gst_vsock_h265_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstVsockH265Enc, gst_vsock_h265_enc, GST,
    VSOCK_H265_ENC, GstVsockEnc);
struct _GstVsockH265Enc
{
  GstVsockEnc parent;
};

#define GST_TYPE_VSOCK_AV1_ENC (gst_vsock_av1_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstVsockAV1Enc, gst_vsock_av1_enc, GST,
    VSOCK_AV1_ENC, GstVsockEnc);
struct _GstVsockAV1Enc
{
  GstVsockEnc parent;
};

G_DEFINE_TYPE (GstVsockH265Enc, gst_vsock_h265_enc, GST_TYPE_VSOCK_ENC);
G_DEFINE_TYPE (GstVsockAV1Enc, gst_vsock_av1_enc, GST_TYPE_VSOCK_ENC);
GST_ELEMENT_REGISTER_DECLARE (vsockh265enc);
GST_ELEMENT_REGISTER_DECLARE (vsockav1enc);
GST_ELEMENT_REGISTER_DEFINE (vsockh265enc, "vsockh265enc", GST_RANK_NONE,
    GST_TYPE_VSOCK_H265_ENC);
GST_ELEMENT_REGISTER_DEFINE (vsockav1enc, "vsockav1enc", GST_RANK_NONE,
    GST_TYPE_VSOCK_AV1_ENC);

/* (the parent's "src" template is replaced: same name) */
static GstStaticPadTemplate h265_src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-h265, stream-format = (string) byte-stream, "
        "alignment = (string) au"));

static GstStaticPadTemplate av1_src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-av1, stream-format = (string) obu-stream, "
        "alignment = (string) tu"));

/* What makes a subclass: its codec, its output caps and its name */
static void
codec_class_init (GstElementClass * element_class, guint32 codec,
    GstStaticPadTemplate * src_template, const gchar * codec_name)
{
  gchar *longname = g_strdup_printf ("Host-offloaded %s encoder", codec_name);
  gchar *description = g_strdup_printf ("Encodes %s on the VM host over "
      "vsock, TCP or a UNIX socket (HXFR)", codec_name);

  GST_VSOCK_ENC_CLASS (element_class)->codec = codec;
  gst_element_class_add_static_pad_template (element_class, src_template);
  gst_element_class_set_metadata (element_class, longname,
      "Codec/Encoder/Video/Hardware", description, "Helix encode offload");
  g_free (longname);
  g_free (description);
}

static void
gst_vsock_h265_enc_class_init (GstVsockH265EncClass * klass)
{
  codec_class_init (GST_ELEMENT_CLASS (klass), HXFR_CODEC_H265,
      &h265_src_template, "H.265");
}

static void
gst_vsock_h265_enc_init (GstVsockH265Enc * self)
{
}

static void
gst_vsock_av1_enc_class_init (GstVsockAV1EncClass * klass)
{
  codec_class_init (GST_ELEMENT_CLASS (klass), HXFR_CODEC_AV1,
      &av1_src_template, "AV1");
}

static void
gst_vsock_av1_enc_init (GstVsockAV1Enc * self)
{
}
