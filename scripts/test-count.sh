#!/usr/bin/env bash
# Prints how many tests (subtests included) passed, failed and were skipped, from the
# `go test -json` logs make test keeps. The same tests run on every machine: the figures of a
# local run and of CI match.
set -euo pipefail

awk '
/"Test":"/ && /"Action":"(pass|fail|skip)"/ {
    match($0, /"Action":"[a-z]+"/); action = substr($0, RSTART + 10, RLENGTH - 11)
    count[action]++
}
END {
    total = count["pass"] + count["fail"] + count["skip"]
    printf "tests run: %d (passed %d, failed %d, skipped %d)\n", total, count["pass"], count["fail"], count["skip"]
}
' "$@"
