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
for probe in "$@"; do
  out=$(cmake --build "$build" --target "$probe" 2>&1)
  rc=$?
  case "$probe" in
    *_ok)
      if [ $rc -ne 0 ]; then echo "FAIL: $probe does not compile:"; echo "$out" | tail -5; status=1; fi ;;
    *)
      if [ $rc -eq 0 ]; then
        echo "FAIL: $probe compiled: a header of another layer is visible there"; status=1
      elif ! grep -q "No such file or directory" <<<"$out"; then
        echo "FAIL: $probe failed for another reason:"; echo "$out" | tail -5; status=1
      else
        echo "ok: $probe refused ($(grep -o '[a-z_/]*\.h: No such file' <<<"$out" | head -1))"
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
