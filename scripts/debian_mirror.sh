# Sourced by scripts/check_debian13.sh and scripts/gpu_bundle.sh.
# debian_mirror NAME: the Debian archive this machine's apt uses (its first
# source that is not a security one) on stdout, so that no host name is
# written in the scripts; with none, "NAME: no Debian archive found ..." on
# stderr and status 1.
debian_mirror() {
  local uri
  uri=$(grep -hs -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n 1)
  [ -n "$uri" ] || uri=$(grep -hs -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
                          awk '{for (i = 2; i <= NF; ++i) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' |
                          grep -v -- '-security' | head -n 1)
  [ -n "$uri" ] || { echo "$1: no Debian archive found in /etc/apt/sources.list*" >&2; return 1; }
  echo "$uri"
}
