#!/usr/bin/env bash
# cmake/version_stamp.cmake in a scratch git repository: the commit after a
# commit, "-dirty" with a changed tracked file, the version alone outside git,
# and the output file left untouched (same mtime) when nothing changed.
set -euo pipefail
script=$1
command -v git > /dev/null || { echo "version_stamp: no git here, skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stamp() { cmake -DSOURCE_DIR="$1" -DVERSION=9.8.7 -DOUT="$work/out.cpp" -P "$script"; grep -o '"[^"]*"' "$work/out.cpp"; }
fail() { echo "version_stamp: $*" >&2; exit 1; }

mkdir "$work/none"
[ "$(stamp "$work/none")" = '"9.8.7"' ] || fail "outside git: $(stamp "$work/none")"

repo=$work/repo
git init -q "$repo"
echo a > "$repo/f"
git -C "$repo" add f
git -C "$repo" -c user.name=t -c user.email=t@t commit -qm one
one=$(git -C "$repo" rev-parse --short=7 HEAD)
[ "$(stamp "$repo")" = "\"9.8.7 ($one)\"" ] || fail "after a commit: $(stamp "$repo"), want $one"
before=$(stat -c %Y.%y "$work/out.cpp")
sleep 1
stamp "$repo" > /dev/null
[ "$(stat -c %Y.%y "$work/out.cpp")" = "$before" ] || fail "rewritten although unchanged"

echo b > "$repo/f"
[ "$(stamp "$repo")" = "\"9.8.7 ($one-dirty)\"" ] || fail "with a change: $(stamp "$repo")"
git -C "$repo" -c user.name=t -c user.email=t@t commit -qam two
two=$(git -C "$repo" rev-parse --short=7 HEAD)
[ "$(stamp "$repo")" = "\"9.8.7 ($two)\"" ] || fail "after the second commit: $(stamp "$repo"), want $two"
echo "version_stamp: ok ($one, $one-dirty, $two, none)"
