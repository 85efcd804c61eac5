/* Stand-in hardware encoders. See standin-encoder.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "standin-encoder.h"

#include <gst/video/video.h>

typedef struct
{
  gchar *element;
  gchar *version;
  gchar *bitrate_unit;
  gchar *keyframe_prop;
  GstCaps *sink_caps;
  GstCaps *src_caps;
  GPtrArray *pspecs;
} StandinInfo;

typedef struct
{
  GstBin parent;
  GstElement *convert;
  GstElement *x264;
  GHashTable *values;           /* property name -> GValue */
} StandinEnc;

typedef struct
{
  GstBinClass parent_class;
  StandinInfo *info;
} StandinEncClass;

#define STANDIN_INFO(obj) (((StandinEncClass *) G_OBJECT_GET_CLASS (obj))->info)

GKeyFile *
standin_docs_load (const gchar * path, GError ** error)
{
  GKeyFile *docs = g_key_file_new ();

  if (!g_key_file_load_from_file (docs, path, G_KEY_FILE_NONE, error)) {
    g_key_file_unref (docs);
    return NULL;
  }
  return docs;
}

gchar **
standin_docs_elements (GKeyFile * docs)
{
  gchar **l = g_key_file_get_string_list (docs, "docs", "elements", NULL,
      NULL);

  return l ? l : g_new0 (gchar *, 1);
}

gchar **
standin_docs_missing (GKeyFile * docs)
{
  gchar **l = g_key_file_get_string_list (docs, "docs", "missing", NULL,
      NULL);

  return l ? l : g_new0 (gchar *, 1);
}

gchar *
standin_docs_bitrate_unit (GKeyFile * docs, const gchar * element)
{
  gchar *group = g_strdup_printf ("element %s", element);
  gchar *unit = g_key_file_get_string (docs, group, "bitrate-unit", NULL);

  g_free (group);
  return unit;
}

/* Enums and flags */

static GType
register_enum (GKeyFile * docs, const gchar * tname)
{
  gchar *group = g_strdup_printf ("type %s", tname);
  gchar *our_name = g_strconcat ("HelixStandin", tname, NULL);
  GType t = g_type_from_name (our_name);
  gchar *kind;
  gchar **nicks, **values, **descs;
  gsize n, i;

  if (t || !g_key_file_has_group (docs, group)) {
    g_free (group);
    g_free (our_name);
    return t;
  }
  kind = g_key_file_get_string (docs, group, "kind", NULL);
  nicks = g_key_file_get_string_list (docs, group, "nicks", &n, NULL);
  values = g_key_file_get_string_list (docs, group, "values", NULL, NULL);
  descs = g_key_file_get_string_list (docs, group, "descriptions", NULL, NULL);
  /* the type system keeps the value tables for the life of the process */
  if (g_strcmp0 (kind, "flags") == 0) {
    GFlagsValue *v = g_new0 (GFlagsValue, n + 1);

    for (i = 0; i < n; i++) {
      v[i].value = g_ascii_strtoull (values[i], NULL, 0);
      v[i].value_name = g_strdup (descs[i]);
      v[i].value_nick = g_strdup (nicks[i]);
    }
    t = g_flags_register_static (g_intern_string (our_name), v);
  } else {
    GEnumValue *v = g_new0 (GEnumValue, n + 1);

    for (i = 0; i < n; i++) {
      v[i].value = g_ascii_strtoll (values[i], NULL, 0);
      v[i].value_name = g_strdup (descs[i]);
      v[i].value_nick = g_strdup (nicks[i]);
    }
    t = g_enum_register_static (g_intern_string (our_name), v);
  }
  g_strfreev (nicks);
  g_strfreev (values);
  g_strfreev (descs);
  g_free (kind);
  g_free (group);
  g_free (our_name);
  return t;
}

/* The leading nick of a documented enum default ("cbr (2)") */
static gint
enum_default (GType t, const gchar * text)
{
  GEnumClass *c = g_type_class_ref (t);
  gchar **parts = g_strsplit (text ? text : "", " ", 2);
  GEnumValue *v = g_enum_get_value_by_nick (c, parts[0] ? parts[0] : "");
  gint def = v ? v->value : c->values[0].value;

  g_strfreev (parts);
  g_type_class_unref (c);
  return def;
}

static guint
flags_default (GType t, const gchar * text)
{
  GValue v = G_VALUE_INIT;
  guint def = 0;
  gchar *nicks = g_strdup (text ? text : "");
  gchar *paren = strchr (nicks, '(');

  /* "a+b (3)" */
  if (paren)
    *paren = '\0';
  g_strstrip (nicks);
  g_value_init (&v, t);
  if (*nicks && gst_value_deserialize (&v, nicks))
    def = g_value_get_flags (&v);
  g_value_unset (&v);
  g_free (nicks);
  return def;
}

/* One documented property as a GParamSpec, NULL if its type is not one
 * the docs describe. */
static GParamSpec *
make_pspec (GKeyFile * docs, const gchar * element, const gchar * name)
{
  gchar *group = g_strdup_printf ("property %s %s", element, name);
  gchar *type = g_key_file_get_string (docs, group, "type", NULL);
  gchar *min = g_key_file_get_string (docs, group, "min", NULL);
  gchar *max = g_key_file_get_string (docs, group, "max", NULL);
  gchar *def = g_key_file_get_string (docs, group, "default", NULL);
  gchar *blurb = g_key_file_get_string (docs, group, "blurb", NULL);
  const gchar *interned_blurb;
  GParamFlags flags = 0;
  GParamSpec *p = NULL;
  GType t;

  if (g_key_file_get_boolean (docs, group, "readable", NULL))
    flags |= G_PARAM_READABLE;
  if (g_key_file_get_boolean (docs, group, "writable", NULL))
    flags |= G_PARAM_WRITABLE;
  if (g_key_file_get_boolean (docs, group, "construct-only", NULL))
    flags |= G_PARAM_CONSTRUCT_ONLY;
  flags |= G_PARAM_STATIC_STRINGS;
  name = g_intern_string (name);
  /* GParamSpec keeps pointers to nick and blurb with STATIC_STRINGS */
  interned_blurb = g_intern_string (blurb ? blurb : "");
  g_free (blurb);

#define NUM(x) ((x) ? (x) : "0")
  if (!type) {
  } else if (g_str_equal (type, "gboolean")) {
    p = g_param_spec_boolean (name, name, interned_blurb, g_strcmp0 (def,
            "true") == 0, flags);
  } else if (g_str_equal (type, "gint")) {
    p = g_param_spec_int (name, name, interned_blurb,
        g_ascii_strtoll (NUM (min), NULL, 10), g_ascii_strtoll (NUM (max), NULL,
            10), g_ascii_strtoll (NUM (def), NULL, 10), flags);
  } else if (g_str_equal (type, "guint")) {
    /* the cache prints G_MAXUINT as -1 */
    p = g_param_spec_uint (name, name, interned_blurb,
        (guint) g_ascii_strtoll (NUM (min), NULL, 10),
        (guint) g_ascii_strtoll (NUM (max), NULL, 10),
        (guint) g_ascii_strtoll (NUM (def), NULL, 10), flags);
  } else if (g_str_equal (type, "gint64")) {
    p = g_param_spec_int64 (name, name, interned_blurb,
        g_ascii_strtoll (NUM (min), NULL, 10), g_ascii_strtoll (NUM (max), NULL,
            10), g_ascii_strtoll (NUM (def), NULL, 10), flags);
  } else if (g_str_equal (type, "guint64")) {
    p = g_param_spec_uint64 (name, name, interned_blurb,
        g_ascii_strtoull (NUM (min), NULL, 10), g_ascii_strtoull (NUM (max),
            NULL, 10), g_ascii_strtoull (NUM (def), NULL, 10), flags);
  } else if (g_str_equal (type, "gfloat")) {
    p = g_param_spec_float (name, name, interned_blurb,
        g_ascii_strtod (NUM (min), NULL), g_ascii_strtod (NUM (max), NULL),
        g_ascii_strtod (NUM (def), NULL), flags);
  } else if (g_str_equal (type, "gdouble")) {
    p = g_param_spec_double (name, name, interned_blurb,
        g_ascii_strtod (NUM (min), NULL), g_ascii_strtod (NUM (max), NULL),
        g_ascii_strtod (NUM (def), NULL), flags);
  } else if (g_str_equal (type, "gchararray")) {
    p = g_param_spec_string (name, name, interned_blurb, g_strcmp0 (def,
            "NULL") == 0 ? NULL : def, flags);
  } else if ((t = register_enum (docs, type))) {
    if (G_TYPE_IS_FLAGS (t))
      p = g_param_spec_flags (name, name, interned_blurb, t, flags_default (t,
              def), flags);
    else
      p = g_param_spec_enum (name, name, interned_blurb, t, enum_default (t,
              def), flags);
  } else if ((t = g_type_from_name (type)) && G_TYPE_IS_BOXED (t)) {
    p = g_param_spec_boxed (name, name, interned_blurb, t, flags);
  } else if (t && G_TYPE_IS_OBJECT (t)) {
    p = g_param_spec_object (name, name, interned_blurb, t, flags);
  }
#undef NUM
  g_free (group);
  g_free (type);
  g_free (min);
  g_free (max);
  g_free (def);
  return p;
}

/* The element */

static GstElementClass *parent_class;

static void
log_value (StandinEnc * self, const gchar * name, const GValue * value)
{
  gchar *s = gst_value_serialize (value);

  g_printerr ("standin %s: %s=%s (%s)\n", STANDIN_INFO (self)->element, name,
      s ? s : "?", G_VALUE_TYPE_NAME (value));
  g_free (s);
}

/* The documented value in x264enc's terms: kbit/s, frames between IDRs */
static void
apply_to_x264 (StandinEnc * self, const gchar * name, const GValue * value)
{
  StandinInfo *info = STANDIN_INFO (self);
  GValue as_int64 = G_VALUE_INIT;
  gint64 v;

  if (g_strcmp0 (name, "bitrate") != 0
      && g_strcmp0 (name, info->keyframe_prop) != 0)
    return;
  g_value_init (&as_int64, G_TYPE_INT64);
  if (!g_value_transform (value, &as_int64))
    return;
  v = g_value_get_int64 (&as_int64);
  if (g_str_equal (name, "bitrate")) {
    if (g_strcmp0 (info->bitrate_unit, "bit/s") == 0)
      v /= 1000;
    /* 0 means "the encoder's own choice" for every documented encoder */
    if (v > 0)
      g_object_set (self->x264, "bitrate", (guint) MIN (v, 2048000), NULL);
  } else {
    /* below 1: infinite or automatic; the bridge forces every IDR */
    g_object_set (self->x264, "key-int-max", (guint) (v > 0 ? MIN (v,
                G_MAXINT) : G_MAXINT), NULL);
  }
}

static void
standin_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  StandinEnc *self = (StandinEnc *) object;
  GValue *copy = g_new0 (GValue, 1);

  g_value_init (copy, G_VALUE_TYPE (value));
  g_value_copy (value, copy);
  g_hash_table_replace (self->values, (gpointer) pspec->name, copy);
  log_value (self, pspec->name, value);
  apply_to_x264 (self, pspec->name, value);
}

static void
standin_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  StandinEnc *self = (StandinEnc *) object;
  GValue *v = g_hash_table_lookup (self->values, pspec->name);

  if (v)
    g_value_copy (v, value);
  else
    g_param_value_set_default (pspec, value);
}

static void
free_value (gpointer p)
{
  g_value_unset (p);
  g_free (p);
}

static void
standin_finalize (GObject * object)
{
  g_hash_table_unref (((StandinEnc *) object)->values);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static GstPadProbeReturn
on_event (GstPad * pad, GstPadProbeInfo * pinfo, gpointer user_data)
{
  StandinEnc *self = user_data;
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (pinfo);

  if (gst_video_event_is_force_key_unit (ev))
    g_printerr ("standin %s: force-key-unit (%s)\n",
        STANDIN_INFO (self)->element,
        GST_EVENT_IS_UPSTREAM (ev) ? "upstream" : "downstream");
  return GST_PAD_PROBE_OK;
}

/* The ghost pads answer with what x264 inside takes or gives, narrowed to
 * the documented caps, so that negotiation fails where it would fail on
 * the real element. */
static gboolean
standin_pad_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstPadTemplate *templ = GST_PAD_PAD_TEMPLATE (pad);
  GstCaps *documented = gst_pad_template_get_caps (templ);
  gboolean ok;

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *inner, *result;

      ok = gst_pad_query_default (pad, parent, query);
      if (ok) {
        gst_query_parse_caps_result (query, &inner);
        result = gst_caps_intersect_full (documented, inner,
            GST_CAPS_INTERSECT_FIRST);
        gst_query_set_caps_result (query, result);
        gst_caps_unref (result);
      }
      break;
    }
    case GST_QUERY_ACCEPT_CAPS:{
      GstCaps *caps;

      gst_query_parse_accept_caps (query, &caps);
      if (!gst_caps_is_subset (caps, documented)) {
        gst_query_set_accept_caps_result (query, FALSE);
        ok = TRUE;
        break;
      }
      ok = gst_pad_query_default (pad, parent, query);
      break;
    }
    default:
      ok = gst_pad_query_default (pad, parent, query);
      break;
  }
  gst_caps_unref (documented);
  return ok;
}

static GstPad *
add_ghost (StandinEnc * self, GstElement * inner, const gchar * name)
{
  GstPad *target = gst_element_get_static_pad (inner, name);
  GstPadTemplate *templ =
      gst_element_class_get_pad_template (GST_ELEMENT_GET_CLASS (self), name);
  GstPad *ghost = gst_ghost_pad_new_from_template (name, target, templ);

  gst_pad_set_query_function (ghost, standin_pad_query);
  /* the requests the element receives, not the ones x264enc passes on */
  gst_pad_add_probe (ghost, GST_PAD_IS_SINK (ghost) ?
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM : GST_PAD_PROBE_TYPE_EVENT_UPSTREAM,
      on_event, self, NULL);
  gst_element_add_pad (GST_ELEMENT (self), ghost);
  gst_object_unref (target);
  return ghost;
}

static void
standin_init (GTypeInstance * instance, gpointer g_class)
{
  StandinEnc *self = (StandinEnc *) instance;
  StandinInfo *info = ((StandinEncClass *) g_class)->info;

  self->values = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      free_value);
  self->convert = gst_element_factory_make ("videoconvert", NULL);
  self->x264 = gst_element_factory_make ("x264enc", NULL);
  if (!self->convert || !self->x264) {
    g_printerr ("standin %s: videoconvert or x264enc missing\n", info->element);
    gst_clear_object (&self->convert);
    gst_clear_object (&self->x264);
    return;
  }
  /* low latency, one frame in one access unit out, no B-frames */
  gst_util_set_object_arg (G_OBJECT (self->x264), "tune", "zerolatency");
  gst_util_set_object_arg (G_OBJECT (self->x264), "speed-preset", "ultrafast");
  g_object_set (self->x264, "bframes", 0, "sliced-threads", TRUE, NULL);
  gst_bin_add_many (GST_BIN (self), self->convert, self->x264, NULL);
  gst_element_link (self->convert, self->x264);
  add_ghost (self, self->convert, "sink");
  add_ghost (self, self->x264, "src");
  g_printerr ("standin %s: made from GStreamer %s docs\n", info->element,
      info->version);
}

static void
standin_class_init (gpointer g_class, gpointer class_data)
{
  GObjectClass *gobject_class = g_class;
  GstElementClass *element_class = g_class;
  StandinInfo *info = class_data;
  gchar *longname;
  guint i;

  ((StandinEncClass *) g_class)->info = info;
  parent_class = g_type_class_peek_parent (g_class);
  gobject_class->set_property = standin_set_property;
  gobject_class->get_property = standin_get_property;
  gobject_class->finalize = standin_finalize;
  for (i = 0; i < info->pspecs->len; i++)
    g_object_class_install_property (gobject_class, i + 1,
        g_param_spec_ref_sink (g_ptr_array_index (info->pspecs, i)));
  longname = g_strdup_printf ("Stand-in %s (GStreamer %s docs, x264 inside)",
      info->element, info->version);
  gst_element_class_set_metadata (element_class, longname,
      "Codec/Encoder/Video", "Test-only stand-in with the documented "
      "interface of a hardware encoder", "helix");
  g_free (longname);
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
          info->sink_caps));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
          info->src_caps));
}

static GstCaps *
docs_caps (GKeyFile * docs, const gchar * group, const gchar * key)
{
  gchar *text = g_key_file_get_string (docs, group, key, NULL);
  GstCaps *caps = text ? gst_caps_from_string (text) : NULL;

  g_free (text);
  return caps;
}

GType
standin_encoder_get_type (GKeyFile * docs, const gchar * element,
    gchar ** skipped, GError ** error)
{
  gchar *version = g_key_file_get_string (docs, "docs", "version", NULL);
  gchar *group = g_strdup_printf ("element %s", element);
  gchar *tname = g_strdup_printf ("HelixStandin_%s", element);
  GString *left_out = g_string_new (NULL);
  GTypeInfo tinfo = {
    sizeof (StandinEncClass), NULL, NULL, standin_class_init, NULL, NULL,
    sizeof (StandinEnc), 0, standin_init, NULL
  };
  StandinInfo *info;
  gchar **props = NULL;
  GType t = g_type_from_name (tname);
  guint i;

  if (t || !g_key_file_has_group (docs, group)) {
    if (!t)
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
          "%s is not documented in GStreamer %s", element, version);
    goto out;
  }
  info = g_new0 (StandinInfo, 1);
  info->element = g_strdup (element);
  info->version = g_strdup (version);
  info->bitrate_unit = g_key_file_get_string (docs, group, "bitrate-unit",
      NULL);
  info->keyframe_prop = g_key_file_get_string (docs, group,
      "keyframe-interval-property", NULL);
  info->sink_caps = docs_caps (docs, group, "sink-caps");
  info->src_caps = docs_caps (docs, group, "src-caps");
  if (!info->sink_caps || !info->src_caps) {
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
        "%s (GStreamer %s): documented caps do not parse", element, version);
    goto out;
  }
  info->pspecs = g_ptr_array_new ();
  props = g_key_file_get_string_list (docs, group, "properties", NULL, NULL);
  for (i = 0; props && props[i]; i++) {
    GParamSpec *p = make_pspec (docs, element, props[i]);

    if (p)
      g_ptr_array_add (info->pspecs, p);
    else
      g_string_append_printf (left_out, "%s%s", left_out->len ? ", " : "",
          props[i]);
  }
  /* a static type's class lives as long as the process: it keeps @info */
  tinfo.class_data = info;
  t = g_type_register_static (GST_TYPE_BIN, tname, &tinfo, 0);

out:
  if (skipped)
    *skipped = g_string_free (left_out, left_out->len == 0);
  else
    g_string_free (left_out, TRUE);
  g_strfreev (props);
  g_free (version);
  g_free (group);
  g_free (tname);
  return t;
}
