#!/usr/bin/env python3
"""Extracts what GStreamer documents about some elements (properties with
their types, ranges, defaults and enum nicks, inherited ones included, and
pad template caps) from the gst_plugins_cache.json files of one version,
as a GKeyFile the stand-in encoders and the interface check read.

  gst-docs-extract.py VERSION_DIR OUT ELEMENT[=DOCUMENTED_AS]...

VERSION_DIR holds the json files (scripts/fetch-gst-docs). ELEMENT=OTHER
describes ELEMENT with OTHER's documentation (an element registered only on
hardware that has it, of the same class as OTHER). An element no file
documents is listed under [docs] missing=.
"""
import json
import pathlib
import re
import sys

# what the interval between keyframes is called, by element family
KEYFRAME_PROPERTIES = ("gop-size", "key-int-max", "max-keyframe-interval",
                       "keyframe-max-dist", "intra-period-length")
# and the bitrate (av1enc, svtav1enc: target-bitrate)
BITRATE_PROPERTIES = ("bitrate", "target-bitrate")


def caps_string(text):
    """The cache's caps ("name:\\n  field: value\\n\\n...") as
    gst_caps_from_string() text."""
    text = text.strip()
    if text in ("ANY", "EMPTY", "NONE"):
        return text
    structs = []
    # a structure's name starts a line, its fields are indented
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            structs.append([line.strip().rstrip(":")])
        else:
            key, _, value = line.strip().partition(": ")
            structs[-1].append("%s=%s" % (key.strip(), value.strip()))
    return "; ".join(", ".join(s) for s in structs)


def bitrate_unit(blurb):
    """What a bitrate property's description says it counts in."""
    blurb = blurb.lower()
    if re.search(r"kbit|kbps|kb/s|kilobits", blurb):
        return "kbit/s"
    if re.search(r"bits per second|bit/s|bits/s|\bbps\b", blurb):
        return "bit/s"
    return None


def escape(value):
    return (str(value).replace("\\", "\\\\").replace("\n", "\\n")
            .replace("\t", "\\t"))


def main():
    version_dir, out = pathlib.Path(sys.argv[1]), sys.argv[2]
    documented_as = dict(arg.partition("=")[::2] for arg in sys.argv[3:])
    wanted = list(documented_as)
    elements, types, plugin_of = {}, {}, {}
    for path in sorted(version_dir.glob("*.json")):
        for pname, plugin in json.loads(path.read_text()).items():
            types.update(plugin.get("other-types", {}))
            for ename, element in plugin.get("elements", {}).items():
                elements[ename] = element
                plugin_of[ename] = pname

    for ename in wanted:
        # (an alias of an element this version does not document is missing
        # too)
        if documented_as[ename] and documented_as[ename] in elements:
            elements[ename] = elements.get(documented_as[ename])
            plugin_of[ename] = plugin_of.get(documented_as[ename])
    lines = ["[docs]", "version=%s" % version_dir.name,
             "elements=%s;" % ";".join(e for e in wanted if e in elements),
             "missing=%s;" % ";".join(e for e in wanted if e not in elements),
             ""]
    enums = set()
    for ename in wanted:
        element = elements.get(ename)
        if not element:
            continue
        # a base class's own properties are documented with the class, in
        # other-types; the element's own entry overrides them
        props = {}
        for ancestor in reversed(element["hierarchy"][1:]):
            props.update(types.get(ancestor, {}).get("properties", {}))
        props.update(element.get("properties", {}))
        pads = element.get("pad-templates", {})
        lines += ["[element %s]" % ename, "plugin=%s" % plugin_of[ename],
                  "rank=%s" % element.get("rank", "none"),
                  "properties=%s;" % ";".join(sorted(props))]
        if documented_as[ename]:
            lines.append("documented-as=%s" % documented_as[ename])
        for name in BITRATE_PROPERTIES:
            if name in props and bitrate_unit(props[name]["blurb"]):
                lines.append("bitrate-unit=%s" % bitrate_unit(
                    props[name]["blurb"]))
                break
        for name in KEYFRAME_PROPERTIES:
            if name in props:
                lines.append("keyframe-interval-property=%s" % name)
                break
        for direction in ("sink", "src"):
            caps = [p["caps"] for p in pads.values()
                    if p.get("direction") == direction]
            if caps:
                lines.append("%s-caps=%s" % (direction, escape(
                    "; ".join(caps_string(c) for c in caps))))
        lines.append("")
        for pname in sorted(props):
            p = props[pname]
            lines.append("[property %s %s]" % (ename, pname))
            for key in ("type", "min", "max", "default", "blurb", "readable",
                        "writable", "construct-only", "mutable"):
                if key in p:
                    value = p[key]
                    if isinstance(value, bool):
                        value = "true" if value else "false"
                    lines.append("%s=%s" % (key, escape(value)))
            lines.append("")
            if p["type"] in types and "values" in types[p["type"]]:
                enums.add(p["type"])
    for tname in sorted(enums):
        t = types[tname]
        vals = t["values"]
        lines += ["[type %s]" % tname, "kind=%s" % t["kind"],
                  "nicks=%s;" % ";".join(escape(v["name"]) for v in vals),
                  "values=%s;" % ";".join(str(v["value"]) for v in vals),
                  "descriptions=%s;" % ";".join(
                      escape(v["desc"]).replace(";", ",") for v in vals),
                  ""]
    pathlib.Path(out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
