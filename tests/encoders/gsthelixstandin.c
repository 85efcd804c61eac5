/* helixstandin: the test-only plugin of stand-in hardware encoders (see
 * standin-encoder.h). Loaded only through GST_PLUGIN_PATH in the test
 * environment, with HELIX_STANDIN_DOCS naming the docs file of the
 * GStreamer version under test and HELIX_STANDIN_ENCODERS (optional,
 * comma-separated) the names to register. A name that another plugin
 * already registered is left to that plugin: a real element always wins.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"
#include "standin-encoder.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  const gchar *path = g_getenv ("HELIX_STANDIN_DOCS");
  const gchar *only = g_getenv ("HELIX_STANDIN_ENCODERS");
  const gchar *env[] = { "HELIX_STANDIN_DOCS", "HELIX_STANDIN_ENCODERS",
    NULL
  };
  gchar **wanted = only ? g_strsplit (only, ",", -1) : NULL;
  GError *err = NULL;
  GKeyFile *docs;
  gchar **names;
  guint i;

  /* the registry cache is redone when the docs or the names change */
  gst_plugin_add_dependency (plugin, env, NULL, NULL,
      GST_PLUGIN_DEPENDENCY_FLAG_NONE);
  if (!path) {
    g_strfreev (wanted);
    return TRUE;
  }
  docs = standin_docs_load (path, &err);
  if (!docs) {
    g_printerr ("helixstandin: %s: %s\n", path, err->message);
    g_error_free (err);
    g_strfreev (wanted);
    return TRUE;
  }
  names = standin_docs_elements (docs);
  for (i = 0; names[i]; i++) {
    GstPluginFeature *other;
    GType t;

    if (wanted && !g_strv_contains ((const gchar * const *) wanted, names[i]))
      continue;
    /* (from the registry cache, the feature may be our own) */
    other = gst_registry_lookup_feature (gst_registry_get (), names[i]);
    if (other) {
      gboolean ours = g_strcmp0 (gst_plugin_feature_get_plugin_name (other),
          "helixstandin") == 0;

      gst_object_unref (other);
      if (!ours)
        continue;
    }
    t = standin_encoder_get_type (docs, names[i], NULL, &err);
    if (!t) {
      g_printerr ("helixstandin: %s\n", err->message);
      g_clear_error (&err);
      continue;
    }
    gst_element_register (plugin, names[i], GST_RANK_NONE, t);
  }
  g_strfreev (names);
  g_strfreev (wanted);
  g_key_file_unref (docs);
  return TRUE;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, helixstandin,
    "Test-only stand-ins for hardware encoders", plugin_init, VERSION,
    "LGPL", "helix", "https://example.invalid/helix")
