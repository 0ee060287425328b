#!/usr/bin/python3
"""write-files.py CLOUD_CONFIG ROOT - do what cloud-init's write_files does
with CLOUD_CONFIG, under ROOT instead of /: each entry's content at
ROOT/path with its permissions (plain text content only), so the tests can
check the files (shellcheck, systemd-analyze verify) and run the installer."""
import os
import sys

import yaml

doc = yaml.safe_load(open(sys.argv[1]))
for w in doc.get("write_files", []):
    dest = os.path.join(sys.argv[2], w["path"].lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as f:
        f.write(w.get("content", ""))
    os.chmod(dest, int(str(w.get("permissions", "0644")), 8))
