#!/usr/bin/python3
"""check_formats.py - validate agent output with real parsers.

  check_formats.py doctor-json SCHEMA FILE   JSON Schema validation
  check_formats.py prometheus FILE           parse with prometheus_client
                                             and print name{labels} value lines
Exit 0 when valid; otherwise 1 with the reason on stderr.
"""
import json
import sys


def doctor_json(schema_path, path):
    import jsonschema
    with open(schema_path) as f:
        schema = json.load(f)
    with open(path) as f:
        doc = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc),
                    key=lambda e: list(e.path))
    for e in errors:
        print("doctor-json: %s: %s" % ("/".join(map(str, e.path)), e.message),
              file=sys.stderr)
    return 1 if errors else 0


def prometheus(path):
    from prometheus_client.parser import text_string_to_metric_families
    with open(path) as f:
        text = f.read()
    seen = set()
    for fam in text_string_to_metric_families(text):
        if fam.name in seen:
            print("prometheus: metric %s appears twice" % fam.name, file=sys.stderr)
            return 1
        seen.add(fam.name)
        for s in fam.samples:
            labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
            print("%s%s %r" % (s.name, "{%s}" % labels if labels else "", s.value))
    return 0


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "doctor-json":
            return doctor_json(argv[2], argv[3])
        if len(argv) == 3 and argv[1] == "prometheus":
            return prometheus(argv[2])
    except Exception as e:  # any parse failure is a test failure
        print("%s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
