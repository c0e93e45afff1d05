#!/usr/bin/env bash
# The layers are enforced by the build (CMakeLists.txt): every probe named
# sgs_probe_<layer>_<other> includes a header of layer <other> and is built
# with the flags of <layer>; it must fail on that include. The probes
# sgs_probe_<layer>_ok include a header of core and must compile (the probes
# are built right). Also: no source of core, data, plugins or analysis reaches
# another folder by a relative path ("../"), which include paths cannot stop.
#   tests/layering/check.sh BUILD_DIR SOURCE_DIR PROBE...
set -uo pipefail
build=$1 source=$2
shift 2
status=0
# All probes in one build (-k 0: go on past failures); ninja prints each
# failed step as "FAILED: <object>" followed by the compiler's messages.
out=$(cmake --build "$build" --target "$@" -- -k 0 2>&1)
# The messages of one probe's failed compile ("" when it compiled).
failure() {
  awk -v p="/$1.dir/" '/^FAILED: / { on = index($0, p) > 0; next }
                       /^\[[0-9]+\/[0-9]+\] |^ninja: / { on = 0 }
                       on' <<<"$out"
}
compiled() { ! grep -q "^FAILED: .*/$1\.dir/" <<<"$out"; }
for probe in "$@"; do
  case "$probe" in
    *_ok)
      if ! compiled "$probe"; then echo "FAIL: $probe does not compile:"; failure "$probe" | tail -5; status=1; fi ;;
    *)
      if compiled "$probe"; then
        echo "FAIL: $probe compiled: a header of another layer is visible there"; status=1
      elif ! failure "$probe" | grep -q "No such file or directory"; then
        echo "FAIL: $probe failed for another reason:"; failure "$probe" | tail -5; status=1
      else
        echo "ok: $probe refused ($(failure "$probe" | grep -o '[a-z_/]*\.h: No such file' | head -1))"
      fi ;;
  esac
done
if grep -rnE '#include[[:space:]]+"\.\./' "$source/core" "$source/data" "$source/plugins" "$source/analysis"; then
  echo "FAIL: an include reaches another folder by a relative path"; status=1
fi
if grep -rnE '#include[[:space:]]+[<"](plugins|data|analysis|app)/' "$source/core"; then
  echo "FAIL: core includes another layer"; status=1
fi
exit $status
