#!/usr/bin/env bash
# run-tests.sh - self-tests of the fake Google server (tests/fakegcs/).
# The tests start server.py themselves on a free port (--port 0
# --port-file) and stop it with SIGTERM. Needs Debian's python3-crcmod and
# python3-cryptography (apt-get install -y python3-crcmod python3-cryptography).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
if ! "$py" -c 'import crcmod.predefined, cryptography' 2>/dev/null; then
	echo "fakegcs: missing python3-crcmod / python3-cryptography:" \
		"apt-get install -y python3-crcmod python3-cryptography" >&2
	exit 77
fi
cd "$here"
exec "$py" -B -m unittest "$@" test_server
