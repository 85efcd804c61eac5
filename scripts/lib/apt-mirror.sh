# Sourced by the scripts that make Debian roots (scripts/vm-test,
# check-newer-gst, test-packages, cross-arm64).
#
# apt_mirror: prints the Debian archive this machine's apt is configured
# with: the first URI of an enabled "deb" source whose suite is a release
# (bookworm, trixie, stable; not bookworm-security or -updates), from
# /etc/apt/sources.list.d/*.sources (deb822), else from
# /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line).
# The same URI serves any suite (a trixie root from a bookworm host). With
# none configured it says so and fails: no built-in host name.
# APT_MIRROR_ETC: another directory than /etc/apt (to try the parsing).
apt_mirror() {
  local etc=${APT_MIRROR_ETC:-/etc/apt} uri
  # deb822: one stanza per paragraph
  uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
    {
      types = ""; uris = ""; suites = ""; enabled = "yes"
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^[ \t]*#/) continue
        key = tolower(line); sub(/:.*/, "", key)
        val = line; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled") enabled = tolower(val)
      }
      if (enabled == "no" || (" " types " ") !~ / deb /) next
      n = split(suites, s, /[ \t]+/)
      for (j = 1; j <= n; j++)
        if (s[j] != "" && s[j] !~ /[-\/]/) {
          split(uris, u, /[ \t]+/); print u[1]; exit
        }
    }' "$etc"/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    # one-line: deb [options] URI SUITE COMPONENT...
    uri=$(cat "$etc/sources.list" "$etc"/sources.list.d/*.list 2>/dev/null | awk '
      $1 != "deb" { next }
      {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) != "" && $(i + 1) !~ /[-\/]/) { print $i; exit }
      }' || true)
  fi
  if [ -z "$uri" ]; then
    echo "no Debian mirror configured for apt: no enabled 'deb' source of a" \
      "release suite in $etc/sources.list.d/*.sources or $etc/sources.list" \
      "(give this machine one, e.g. with 'URIs:' in a .sources file)" >&2
    return 1
  fi
  echo "$uri"
}
