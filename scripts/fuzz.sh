#!/usr/bin/env bash
# A short fuzz run of the parse entry point (detection, every format, extraction):
#   scripts/fuzz.sh [SECONDS]        (default 60)
# Seeds the corpus with every fixture line. Crashes land in fuzz/artifacts/parse_line/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.1 --locked
fi

corpus=fuzz/corpus/parse_line
mkdir -p "$corpus"
python3 - "$corpus" <<'PY'
import hashlib, pathlib, sys
out = pathlib.Path(sys.argv[1])
for path in sorted(pathlib.Path("tests/fixtures/formats").glob("*.txt")):
    for raw in path.read_text().splitlines():
        if raw.startswith("line: "):
            data = b"\x00" + raw[6:].replace("<TAB>", "\t").encode()
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
PY

# cargo-fuzz passes -Z flags; the machine's one (stable) toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
cargo fuzz run --fuzz-dir fuzz parse_line "$corpus" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=5
