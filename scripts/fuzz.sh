#!/usr/bin/env bash
# Fuzzes every parser entry point (fuzz/fuzz_targets/*.rs), the time split evenly between them:
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 60 s in all, every target)
#
#   parse_line     one line through detection (and each forced format), extraction, rendering
#   whole_message  one Kafka message through the processor: gzip, UTF-8, line and envelope
#                  splitting, every format, extract, filter, dedup, score, record, DLQ budget
#   frame          decompression with its limit, the text check, line splitting
#   json_reader    the borrowed JSON reader, checked against serde_json
#   field_readers  key=value pairs, delimited pairs, CSV fields, spaced fields
#   syslog_header  syslog header stripping
#   stream_lines   the lines of one stream in order (W3C/Zeek/VPC header directives)
#   addresses      address tokens and `enrich`'s argument parsing
#
# The properties each target checks are in src/test_support/fuzz.rs. Corpora are seeded from
# the fixture lines (tests/fixtures/formats) and the demo events; they live in fuzz/corpus/ and
# crashes in fuzz/artifacts/TARGET/. Exits 1 when any target found a crash (after running all).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
all=(parse_line whole_message frame json_reader field_readers syslog_header stream_lines addresses)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.1 --locked
fi

python3 - fuzz/corpus <<'PY'
import gzip, hashlib, pathlib, re, sys
root = pathlib.Path(sys.argv[1])

def put(target, data):
    out = root / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)

files = {}
for path in sorted(pathlib.Path("tests/fixtures/formats").glob("*.txt")):
    lines = [raw[6:].replace("<TAB>", "\t").encode()
             for raw in path.read_text().splitlines() if raw.startswith("line: ")]
    files[path.stem] = lines
demo = [l.encode() for l in pathlib.Path("demo/events.jsonl").read_text().splitlines() if l.strip()]

for name, lines in files.items():
    put("stream_lines", b"\n".join(lines))
    put("whole_message", b"\x00" + b"\n".join(lines))
    put("whole_message", b"\x01" + b"\n".join(lines))
    put("frame", b"\n".join(lines))
    put("frame", gzip.compress(b"\n".join(lines)))
    for line in lines:
        put("parse_line", b"\x00" + line)
        put("whole_message", b"\x00" + line)
        put("syslog_header", line)
        put("field_readers", b"," + line)
        put("field_readers", b" " + line)
        if line.lstrip().startswith(b"{"):
            put("json_reader", line)
        for token in re.findall(rb"[0-9A-Fa-f:.\[\]/]{7,}", line):
            put("addresses", token)
for line in demo[:50]:
    put("whole_message", b"\x02" + line)
    put("json_reader", line)
    put("frame", line)
PY

# cargo-fuzz passes -Z flags; the machine's one (stable) toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir fuzz

each=$(( seconds / ${#targets[@]} ))
[ "$each" -ge 1 ] || each=1
failed=()
for target in "${targets[@]}"; do
    echo "fuzz.sh: $target for ${each} s" >&2
    if ! cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$each" -max_len=4096 -timeout=10 -print_final_stats=1; then
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${each} s each, no crash" >&2
