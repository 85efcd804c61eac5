/* The bridge's encoder table against GStreamer's own documentation of the
 * encoders (gst_plugins_cache.json of one version, fetched from Debian's
 * source packages by scripts/fetch-gst-docs and reduced by
 * tests/encoders/gst-docs-extract.py; HELIX_STANDIN_DOCS names the result):
 * every setting names a documented property with a value in its range or
 * among its enum's nicks, the bitrate is in the documented unit, the
 * keyframe interval's "unlimited" is a documented value, and the caps the
 * bridge feeds intersect the documented sink caps. Each element is an
 * instance of its stand-in (tests/encoders), so the check runs the
 * bridge's own bridge_encoder_configure() on an object with exactly the
 * documented properties.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <stdio.h>
#include <gst/check/gstcheck.h>

#include "bridge-encoder.h"
#include "standin-encoder.h"

GST_DEBUG_CATEGORY (bridge_debug);

/* the encoders that only real hardware runs: each must be documented in
 * the GStreamer versions that have it (@since: the first one) */
static const struct
{
  const gchar *name;
  guint since;                  /* minor version of 1.x */
} hardware[] = {
  {"vtenc_h264_hw", 0}, {"nvh264enc", 0}, {"vah264enc", 0},
  {"vah264lpenc", 0}, {"qsvh264enc", 0},
  {"nvh265enc", 0}, {"qsvh265enc", 0}, {"qsvav1enc", 0},
  /* not in 1.22's documentation */
  {"vtenc_h265_hw", 24}, {"vah265enc", 24}, {"vah265lpenc", 24},
  {"nvav1enc", 24}, {"vaav1enc", 24},
};

/* -1: not a hardware encoder; else the minor version that has it */
static gint
hardware_since (const gchar * name)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (hardware); i++)
    if (g_str_equal (hardware[i].name, name))
      return hardware[i].since;
  return -1;
}

/* Properties an element registers only at run time, from what the device
 * offers, so that a documentation generated without that device has no
 * entry: the bridge sets them only where they exist, and only real
 * hardware can check them. */
static const struct
{
  const gchar *element;
  const gchar *property;
  const gchar *why;
} device_properties[] = {
  {"vah264enc", "rate-control", "its enum is made from the VA driver's "
        "rate controls"},
  {"vah264lpenc", "rate-control", "its enum is made from the VA driver's "
        "rate controls"},
};

/* bit/s the guests ask for: from a thin link to a LAN desktop */
static const gint64 bitrates[] = { 100000, 2000000, 50000000 };

static GKeyFile *docs;
static gchar *version;

static void
problem (GString * out, const gchar * element, const gchar * prop,
    const gchar * format, ...)
G_GNUC_PRINTF (4, 5);

     static void
         problem (GString * out, const gchar * element, const gchar * prop,
    const gchar * format, ...)
{
  va_list args;

  g_string_append_printf (out, "%s (GStreamer %s) %s: ", element, version,
      prop);
  va_start (args, format);
  g_string_append_vprintf (out, format, args);
  va_end (args);
  g_string_append_c (out, '\n');
}

static gchar *
nicks_of (GParamSpec * pspec)
{
  GString *s = g_string_new (NULL);
  GEnumClass *c = G_PARAM_SPEC_ENUM (pspec)->enum_class;
  guint i;

  for (i = 0; i < c->n_values; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", c->values[i].value_nick);
  return g_string_free (s, FALSE);
}

/* "property=value" against the documented property */
static void
check_setting (GString * out, GstElement * enc, const gchar * element,
    const gchar * setting)
{
  gchar **kv = g_strsplit (setting, "=", 2);
  GParamSpec *pspec =
      g_object_class_find_property (G_OBJECT_GET_CLASS (enc), kv[0]);
  GValue v = G_VALUE_INIT;

  if (!pspec) {
    guint i;

    for (i = 0; i < G_N_ELEMENTS (device_properties); i++)
      if (g_str_equal (device_properties[i].element, element)
          && g_str_equal (device_properties[i].property, kv[0]))
        break;
    if (i < G_N_ELEMENTS (device_properties))
      g_print ("%s (GStreamer %s) %s: not documented (%s): %s not checked\n",
          element, version, kv[0], device_properties[i].why, setting);
    else
      problem (out, element, kv[0], "not a documented property (setting %s)",
          setting);
  } else if (!(pspec->flags & G_PARAM_WRITABLE)) {
    problem (out, element, kv[0], "documented read-only");
  } else if (G_IS_PARAM_SPEC_ENUM (pspec)
      && !g_enum_get_value_by_nick (G_PARAM_SPEC_ENUM (pspec)->enum_class,
          kv[1])) {
    gchar *nicks = nicks_of (pspec);

    problem (out, element, kv[0], "\"%s\" is not one of the documented "
        "nicks (%s)", kv[1], nicks);
    g_free (nicks);
  } else {
    g_value_init (&v, pspec->value_type);
    if (!gst_value_deserialize_with_pspec (&v, kv[1], pspec))
      problem (out, element, kv[0], "\"%s\" is not a %s", kv[1],
          g_type_name (pspec->value_type));
    else if (g_param_value_validate (pspec, &v))
      problem (out, element, kv[0], "%s is outside the documented range",
          kv[1]);
    g_value_unset (&v);
  }
  g_strfreev (kv);
}

static gboolean
number_in_range (GParamSpec * pspec, gint64 value)
{
  GValue v = G_VALUE_INIT, n = G_VALUE_INIT;
  gboolean ok;

  /* negative into an unsigned property: out of range, not wrapped */
  if (value < 0 && (G_IS_PARAM_SPEC_UINT (pspec)
          || G_IS_PARAM_SPEC_UINT64 (pspec)))
    return FALSE;
  g_value_init (&n, G_TYPE_INT64);
  g_value_set_int64 (&n, value);
  g_value_init (&v, pspec->value_type);
  ok = g_value_transform (&n, &v) && !g_param_value_validate (pspec, &v);
  g_value_unset (&v);
  return ok;
}

static gint64
get_number (GstElement * enc, const gchar * prop)
{
  GValue v = G_VALUE_INIT, n = G_VALUE_INIT;
  gint64 out;

  g_value_init (&n, G_TYPE_INT64);
  g_object_get_property (G_OBJECT (enc), prop, &v);
  g_value_transform (&v, &n);
  out = g_value_get_int64 (&n);
  g_value_unset (&v);
  return out;
}

/* The bitrate: documented unit, range, and what bridge_encoder_configure
 * and bridge_encoder_set_bitrate leave in the property. */
static void
check_bitrate (GString * out, GstElement * enc, const BridgeEncoder * desc,
    const gchar * element)
{
  GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (enc),
      desc->bitrate_prop);
  gchar *unit = standin_docs_bitrate_unit (docs, element);
  const gchar *assumed = desc->bitrate_divisor == 1000 ? "kbit/s" :
      desc->bitrate_divisor == 1 ? "bit/s" : "?";
  guint i;

  if (!pspec) {
    problem (out, element, desc->bitrate_prop, "not a documented property");
    g_free (unit);
    return;
  }
  if (g_strcmp0 (unit, assumed) != 0)
    problem (out, element, desc->bitrate_prop, "the bridge gives %s (divides "
        "bit/s by %u), the documentation says %s (\"%s\")", assumed,
        desc->bitrate_divisor, unit ? unit : "no unit", pspec->_blurb);
  for (i = 0; i < G_N_ELEMENTS (bitrates); i++) {
    gint64 want = bitrates[i] / desc->bitrate_divisor;

    if (!number_in_range (pspec, want)) {
      problem (out, element, desc->bitrate_prop, "%" G_GINT64_FORMAT
          " (for %" G_GINT64_FORMAT " bit/s) is outside the documented "
          "range", want, bitrates[i]);
      continue;
    }
    bridge_encoder_set_bitrate (enc, desc, bitrates[i]);
    if (get_number (enc, desc->bitrate_prop) != want)
      problem (out, element, desc->bitrate_prop, "%" G_GINT64_FORMAT
          " bit/s became %" G_GINT64_FORMAT ", not %" G_GINT64_FORMAT,
          bitrates[i], get_number (enc, desc->bitrate_prop), want);
  }
  g_free (unit);
}

/* The keyframe interval the bridge sets: a documented value meaning "no
 * IDR unless forced", or the documented maximum. */
static void
check_gop (GString * out, GstElement * enc, const BridgeEncoder * desc,
    const gchar * element)
{
  GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (enc),
      desc->gop_prop);
  gchar *said;

  if (!pspec) {
    problem (out, element, desc->gop_prop, "not a documented property");
    return;
  }
  if (desc->gop_unlimited == G_MAXINT64)
    return;
  if (!number_in_range (pspec, desc->gop_unlimited)) {
    problem (out, element, desc->gop_prop, "%" G_GINT64_FORMAT " is outside "
        "the documented range", desc->gop_unlimited);
    return;
  }
  /* below 1 a value is a special case: the documentation must say so */
  said = g_strdup_printf ("%" G_GINT64_FORMAT " = infinite",
      desc->gop_unlimited);
  if (desc->gop_unlimited < 1 && !strstr (pspec->_blurb, said))
    problem (out, element, desc->gop_prop, "the documentation does not say "
        "\"%s\" (\"%s\")", said, pspec->_blurb);
  g_free (said);
}

/* What the bridge feeds the encoder: the guest's format (system memory, or
 * memory:DMABuf from vsocksrc) when the encoder takes every guest format,
 * else NV12 or I420 from videoconvert. */
static void
check_caps (GString * out, GType type, const gchar * element,
    const BridgeEncoder * desc)
{
  static const struct
  {
    guint32 codec;
    const gchar *caps, *parser;
  } coded_as[] = {
    {HXFR_CODEC_H264, "video/x-h264", "h264parse"},
    {HXFR_CODEC_H265, "video/x-h265", "h265parse"},
    {HXFR_CODEC_AV1, "video/x-av1", "av1parse"},
  };
  static const gchar *const guest_formats[] = {
    "NV12", "I420", "BGRA", "BGRx", "RGBA", "RGBx"
  };
  gchar *fname = g_strdup_printf ("helixcheck-%s", element);
  GstElementFactory *factory;
  GstPadTemplate *templ;
  GstCaps *sink, *fed, *coded;
  gboolean direct;
  guint i;

  gst_element_register (NULL, fname, GST_RANK_NONE, type);
  factory = gst_element_factory_find (fname);
  direct = bridge_encoder_takes_all_formats (factory);
  templ = gst_element_class_get_pad_template (g_type_class_peek (type), "sink");
  sink = gst_pad_template_get_caps (templ);
  if (direct) {
    for (i = 0; i < G_N_ELEMENTS (guest_formats); i++) {
      fed = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING,
          guest_formats[i], "width", G_TYPE_INT, 1280, "height", G_TYPE_INT,
          720, NULL);
      if (!gst_caps_can_intersect (fed, sink))
        problem (out, element, "sink caps", "%s 1280x720 is fed directly "
            "and not documented", guest_formats[i]);
      gst_caps_unref (fed);
    }
  } else {
    fed = gst_caps_from_string ("video/x-raw,format={NV12,I420},"
        "width=1280,height=720");
    if (!gst_caps_can_intersect (fed, sink))
      problem (out, element, "sink caps", "neither NV12 nor I420 in system "
          "memory is documented");
    gst_caps_unref (fed);
  }
  fed = gst_caps_from_string ("video/x-raw(memory:DMABuf)");
  g_print ("%s (GStreamer %s): %s; DMA-BUF frames %s\n", element, version,
      direct ? "guest formats fed directly" : "videoconvert to NV12/I420 "
      "in front", direct && gst_caps_can_intersect (fed, sink) ?
      "passed as memory:DMABuf" : "mapped (system memory)");
  gst_caps_unref (fed);
  templ = gst_element_class_get_pad_template (g_type_class_peek (type), "src");
  for (i = 0; i < G_N_ELEMENTS (coded_as); i++)
    if (coded_as[i].codec == desc->codec)
      break;
  fail_unless (i < G_N_ELEMENTS (coded_as), "%s: codec 0x%08x", element,
      desc->codec);
  coded = gst_caps_from_string (coded_as[i].caps);
  fed = gst_pad_template_get_caps (templ);
  if (!gst_caps_can_intersect (fed, coded))
    problem (out, element, "src caps", "no %s for %s", coded_as[i].caps,
        coded_as[i].parser);
  gst_caps_unref (fed);
  gst_caps_unref (coded);
  gst_caps_unref (sink);
  gst_object_unref (factory);
  g_free (fname);
}

/* Every problem of @desc's settings for @element, one line each naming
 * the element, the version and the property; "" if none. */
static gchar *
check_encoder (const BridgeEncoder * desc, const gchar * element)
{
  GString *out = g_string_new (NULL);
  GError *err = NULL;
  gchar *skipped = NULL;
  GType type = standin_encoder_get_type (docs, element, &skipped, &err);
  GstElement *enc;
  const gchar *const *s;

  if (!type) {
    problem (out, element, "-", "%s", err->message);
    g_error_free (err);
    return g_string_free (out, FALSE);
  }
  if (skipped)
    g_print ("%s (GStreamer %s): properties of undocumented types, not "
        "checked: %s\n", element, version, skipped);
  g_free (skipped);
  enc = gst_object_ref_sink (g_object_new (type, NULL));
  for (s = desc->settings; *s; s++)
    check_setting (out, enc, element, *s);
  check_gop (out, enc, desc, element);
  /* the bridge's own code on the documented interface (unless a setting is
   * already known bad: GLib would warn): every setting it makes must then
   * read back as given */
  if (out->len == 0)
    bridge_encoder_configure (enc, desc, 2000000);
  for (s = desc->settings; out->len == 0 && *s; s++) {
    gchar **kv = g_strsplit (*s, "=", 2);
    GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (enc),
        kv[0]);
    GValue v = G_VALUE_INIT, want = G_VALUE_INIT;

    if (pspec && G_IS_PARAM_SPEC_ENUM (pspec)) {
      g_value_init (&v, pspec->value_type);
      g_value_init (&want, pspec->value_type);
      g_object_get_property (G_OBJECT (enc), kv[0], &v);
      if (gst_value_deserialize_with_pspec (&want, kv[1], pspec)
          && gst_value_compare (&v, &want) != GST_VALUE_EQUAL)
        problem (out, element, kv[0], "bridge_encoder_configure did not set "
            "%s", kv[1]);
      g_value_unset (&v);
      g_value_unset (&want);
    }
    g_strfreev (kv);
  }
  check_bitrate (out, enc, desc, element);
  check_caps (out, type, element, desc);
  gst_object_unref (enc);
  return g_string_free (out, FALSE);
}

GST_START_TEST (test_table_matches_docs)
{
  GString *all = g_string_new (NULL);
  gchar **missing = standin_docs_missing (docs);
  const BridgeEncoder *desc;
  guint i, checked = 0, hw_due = 0;
  guint minor = 0;

  fail_unless (sscanf (version, "1.%u", &minor) == 1, "version %s", version);
  for (i = 0; i < G_N_ELEMENTS (hardware); i++)
    if (hardware[i].since <= minor)
      hw_due++;
  for (i = 0; (desc = bridge_encoder_get (i)); i++) {
    gint since = hardware_since (desc->name);
    gchar *problems;

    if (g_strv_contains ((const gchar * const *) missing, desc->name)) {
      fail_if (since >= 0 && (guint) since <= minor,
          "%s is not documented in GStreamer %s", desc->name, version);
      if (since >= 0)
        g_print ("%s: a GStreamer 1.%d element, not in the %s docs: not "
            "checked against %s\n", desc->name, since, version, version);
      else
        g_print ("%s: not in the fetched GStreamer %s docs, not checked "
            "(software: where it is installed the bridge suites exercise "
            "it)\n", desc->name, version);
      continue;
    }
    problems = check_encoder (desc, desc->name);
    g_string_append (all, problems);
    g_free (problems);
    checked++;
  }
  g_print ("GStreamer %s: %u encoders checked against their documentation\n",
      version, checked);
  fail_unless (all->len == 0, "\n%s", all->str);
  fail_unless (checked >= hw_due - 1);
  g_string_free (all, TRUE);
  g_strfreev (missing);
}

GST_END_TEST;

/* The check finds a setting broken on purpose, naming the element, the
 * version and the property. */
static void
expect_problem (const BridgeEncoder * broken, const gchar * prop,
    const gchar * what)
{
  gchar *problems = check_encoder (broken, broken->name);
  gchar *where = g_strdup_printf ("%s (GStreamer %s) %s: ", broken->name,
      version, prop);

  g_print ("broken on purpose (%s):\n%s", what, problems);
  fail_unless (strstr (problems, where) != NULL, "%s: not caught (%s)", what,
      problems);
  fail_unless (strstr (problems, what) != NULL, "%s: not caught (%s)", what,
      problems);
  g_free (where);
  g_free (problems);
}

GST_START_TEST (test_broken_settings_fail)
{
  const BridgeEncoder *nv = bridge_encoder_lookup ("nvh264enc");
  const BridgeEncoder *oh = bridge_encoder_lookup ("openh264enc");
  static const gchar *const typo_property[] = { "zero-latency=true", NULL };
  static const gchar *const typo_nick[] = { "preset=low-latency-hq-x", NULL };
  static const gchar *const out_of_range[] = { "bframes=5", NULL };
  BridgeEncoder broken;

  fail_unless (nv && oh);
  broken = *nv;
  broken.settings = typo_property;
  expect_problem (&broken, "zero-latency", "not a documented property");
  broken.settings = typo_nick;
  expect_problem (&broken, "preset", "not one of the documented nicks");
  broken.settings = out_of_range;
  expect_problem (&broken, "bframes", "outside the documented range");
  /* nvh264enc's bitrate taken for bit/s: 1000 times too much */
  broken = *nv;
  broken.bitrate_divisor = 1;
  expect_problem (&broken, "bitrate", "the documentation says kbit/s");
  broken = *nv;
  broken.gop_unlimited = 0;
  expect_problem (&broken, "gop-size", "does not say \"0 = infinite\"");
  /* openh264enc's bit/s taken for kbit/s: 1000 times too little */
  broken = *oh;
  broken.bitrate_divisor = 1000;
  expect_problem (&broken, "bitrate", "the documentation says bit/s");
}

GST_END_TEST;

static Suite *
encoders_suite (void)
{
  Suite *s = suite_create ("encoders");
  TCase *tc = tcase_create ("general");
  const gchar *path = g_getenv ("HELIX_STANDIN_DOCS");
  GError *err = NULL;

  GST_DEBUG_CATEGORY_INIT (bridge_debug, "bridge", 0, "bridge");
  if (!path)
    g_error ("HELIX_STANDIN_DOCS is not set: run through "
        "tests/encoders/run-encoder-checks");
  docs = standin_docs_load (path, &err);
  if (!docs)
    g_error ("%s: %s", path, err->message);
  version = g_key_file_get_string (docs, "docs", "version", NULL);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_table_matches_docs);
  tcase_add_test (tc, test_broken_settings_fail);
  return s;
}

GST_CHECK_MAIN (encoders);
