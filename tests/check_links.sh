#!/usr/bin/env bash
# Every relative link in README.md and docs/*.md names a file of the
# repository (tracked by git, so that it exists in a fresh clone), and every
# #anchor names a heading of the Markdown file it points into.
#   tests/check_links.sh [REPO_ROOT]      (default: the repository holding this script)
# Prints one line per broken link ("FILE:LINE: LINK: why") and exits 1 when
# there is one; web links (http, https, mailto) are not checked.
set -euo pipefail
root=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
cd "$root"

# The files a clone has: git's list when this is a checkout, else what is on disk.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files)
else
  files=$(find . -type f -not -path './build/*' -not -path './.git/*' | sed 's|^\./||')
fi
have() { grep -qxF -- "$1" <<<"$files"; }
have_dir() { grep -q "^$(printf '%s' "$1" | sed 's/[.[\*^$]/\\&/g')/" <<<"$files"; }

# Outside fenced code blocks: "LINE<TAB>TEXT" with inline code spans removed,
# for the lines that hold a link (the loop below forks per line).
prose() {
  awk '/^[[:space:]]*```/ { fenced = !fenced; next }
       !fenced { gsub(/`[^`]*`/, ""); if ($0 ~ /\]\(/) print NR "\t" $0 }' "$1"
}

# GitHub's anchor for a heading: link syntax reduced to its text, lower case,
# punctuation other than '-' and '_' dropped, spaces made '-'.
anchors() {
  grep -E '^#{1,6} ' "$1" | sed -E 's/^#+ +//; s/\[([^]]*)\]\([^)]*\)/\1/g; s/`//g' |
    tr '[:upper:]' '[:lower:]' | sed -E 's/[^[:alnum:] _-]//g; s/ /-/g'
}

status=0
broken() { echo "$1: $2: $3"; status=1; }

for md in README.md docs/*.md; do
  [ -f "$md" ] || continue
  dir=$(dirname "$md")
  while IFS=$'\t' read -r line text; do
    # Inline links and images: ](target) or ](target "title").
    while read -r link; do
      [ -n "$link" ] || continue
      target=${link%% *}
      case "$target" in
        http://* | https://* | mailto:*) continue ;;
      esac
      path=${target%%#*}
      anchor=""
      [[ "$target" == *"#"* ]] && anchor=${target#*#}
      if [ -z "$path" ]; then
        file=$md
      else
        # Resolved against the linking file's directory, normalised without touching the disk.
        file=$(realpath -m --relative-to=. -- "$dir/$path")
        case "$file" in
          ../* | ..) broken "$md:$line" "$target" "leaves the repository"; continue ;;
        esac
        if ! have "$file" && ! have_dir "$file"; then
          broken "$md:$line" "$target" "no such file in the repository"
          continue
        fi
      fi
      if [ -n "$anchor" ]; then
        if [[ "$file" != *.md ]] || ! grep -qxF -- "$anchor" <<<"$(anchors "$file")"; then
          broken "$md:$line" "$target" "no heading with anchor #$anchor in $file"
        fi
      fi
    done < <(grep -oE '\]\([^)]+\)' <<<"$text" | sed -E 's/^\]\(//; s/\)$//')
  done < <(prose "$md")
done
exit $status
