#!/usr/bin/env bash
# Instructions per line of `threatsift parse`, per format fixture file, for two builds of the
# binary (callgrind counts instructions, so the figures do not depend on machine load, unlike
# the wall-clock criterion benches on a shared machine).
#
#   scripts/bench-formats-callgrind.sh OLD_BIN NEW_BIN [FIXTURES_DIR]
#
# OLD_BIN, NEW_BIN: release builds of `threatsift` (`cargo build --release --bin threatsift`).
# FIXTURES_DIR: the `tests/fixtures/formats` to read (default: this checkout's). To compare only
#   the formats the old build knew, pass the old tree's directory.
# Env: LINES (default 20000) lines per input file; FORCE_FORMAT=1 also measures each file with
#   `--format <file name>` (detection skipped; files named after no format are left out);
#   OUT (default a temp dir) keeps inputs, outputs and callgrind files for callgrind_annotate;
#   REUSE=1 reads the callgrind files already in OUT instead of running again.
#
# Per fixture file: its `line:` values in order (W3C/Zeek/Windows Firewall header directives
# kept, since they prime the stream; `error:` cases left out), repeated to about LINES lines.
# Instructions per line = (Ir of the run - Ir of a run on an empty file) / lines; the empty run
# removes start-up (settings, registry, clap). `parse` also writes one JSON object per line, the
# same code in both builds, but a line that now yields more addresses writes more JSON.
# The parse columns count detection and parsing alone (inclusive Ir of the registry's
# `parse_with`, behind `parse_line` and `parse_line_as`), without extraction and output.
# The last column, "out", flags files whose outputs differ (formats claimed, addresses, roles),
# so a change in cost can be told from a change in result.
set -euo pipefail

old_bin=${1:?usage: $0 OLD_BIN NEW_BIN [FIXTURES_DIR]}
new_bin=${2:?usage: $0 OLD_BIN NEW_BIN [FIXTURES_DIR]}
fixtures=${3:-"$(dirname "${BASH_SOURCE[0]}")/../tests/fixtures/formats"}
lines=${LINES:-20000}
out=${OUT:-$(mktemp -d -t bench-callgrind.XXXXXX)}
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }

# Total instructions (Ir) of one run: `callgrind_ir BIN OUTFILE ARGS...`.
callgrind_ir() {
    local bin=$1 cg=$2
    shift 2
    if [ "${REUSE:-0}" != 1 ] || [ ! -s "$cg" ]; then
        valgrind --tool=callgrind --callgrind-out-file="$cg" "$bin" parse "$@" \
            >"$cg.stdout" 2>"$cg.log"
    fi
    awk '/^totals:/ {print $2}' "$cg"
}

# Inclusive Ir of `FormatRegistry::parse_with` (behind `parse_line` and `parse_line_as`) in one
# callgrind file: detection and parsing alone, without address extraction, JSON output and
# start-up. `parse_line` where a build inlined `parse_with`.
parse_ir() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null | awk '
        /FormatRegistry::parse_with \[/ { gsub(/,/, "", $1); with += $1 }
        /FormatRegistry::parse_line \[/ { gsub(/,/, "", $1); line += $1 }
        END { print (with > 0 ? with : line) + 0 }'
}

# The event and directive lines of one fixture file, in order, `<TAB>` as a tab.
fixture_lines() {
    awk '
        function flush() { if (have && !error) print line; have = 0; error = 0 }
        /^line: / { flush(); line = substr($0, 7); gsub(/<TAB>/, "\t", line); have = 1; next }
        /^error:/ { error = 1 }
        END { flush() }
    ' "$1"
}

: >"$out/empty.txt"
old_start=$(callgrind_ir "$old_bin" "$out/old.empty.cg" "$out/empty.txt")
new_start=$(callgrind_ir "$new_bin" "$out/new.empty.cg" "$out/empty.txt")
echo "start-up (empty file): old $old_start Ir, new $new_start Ir; inputs and callgrind files in $out"
echo
echo "| fixture file | lines | old Ir/line | new Ir/line | change | parse old | parse new | change | out |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"

measure() { # label tag input extra-args... ; prints a table row
    local label=$1 name=$2 input=$3
    shift 3
    local n o_ir n_ir
    n=$(wc -l <"$input")
    o_ir=$(callgrind_ir "$old_bin" "$out/old.$name.cg" "$@" "$input")
    n_ir=$(callgrind_ir "$new_bin" "$out/new.$name.cg" "$@" "$input")
    local same=same
    cmp -s "$out/old.$name.cg.stdout" "$out/new.$name.cg.stdout" || same=differs
    local o_p n_p
    o_p=$(parse_ir "$out/old.$name.cg")
    n_p=$(parse_ir "$out/new.$name.cg")
    awk -v name="$label" -v n="$n" -v o="$o_ir" -v w="$n_ir" -v os="$old_start" -v ns="$new_start" \
        -v op="$o_p" -v np="$n_p" -v same="$same" 'BEGIN {
            a = (o - os) / n; b = (w - ns) / n; c = op / n; d = np / n
            printf "| %s | %d | %.0f | %.0f | %+.1f%% | %.0f | %.0f | %+.1f%% | %s |\n",
                name, n, a, b, (b - a) * 100 / a, c, d, (c > 0 ? (d - c) * 100 / c : 0), same
        }'
}

for file in "$fixtures"/*.txt; do
    name=$(basename "$file" .txt)
    fixture_lines "$file" >"$out/$name.one"
    per=$(wc -l <"$out/$name.one")
    [ "$per" -gt 0 ] || continue
    reps=$(((lines + per - 1) / per))
    for _ in $(seq "$reps"); do cat "$out/$name.one"; done >"$out/$name.input"
    measure "$name" "$name" "$out/$name.input"
    if [ "${FORCE_FORMAT:-0}" = 1 ] && "$old_bin" parse --format "$name" /dev/null 2>/dev/null \
        && "$new_bin" parse --format "$name" /dev/null 2>/dev/null; then
        measure "$name (--format)" "$name.forced" "$out/$name.input" --format "$name"
    fi
done
