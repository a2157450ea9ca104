#!/usr/bin/env bash
# A fresh clone as a new user meets it: `make test` (set-up and the whole suite), then every headless command of the
# "Everything is also headless" blocks (README.md, docs/command-line.md), typed as written (after activating .venv).
#   bash benchmarks/fresh_clone.sh [OUT]      (default: benchmarks/results/fresh_clone.txt)
#   bash benchmarks/fresh_clone.sh --small    (the test suite's run: the clone, the Makefile's targets and every
#                                              README command's subcommand, against this checkout's venv; nothing
#                                              installed, trained or written to results/)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
headless() {  # the headless blocks of the README and the guide's command-line page, a command a line, once each
  for page in README.md docs/command-line.md; do
    sed -n '/^Everything is also headless:/,/^```$/p' "$page" | sed '1,3d;$d' | sed 's/ *#.*$//' | grep -v '^ *$'
  done | awk '!seen[$0]++'
}
if [ "${1:-}" = "--small" ]; then
  git clone -q "$here" "$work/clone" && cd "$work/clone" || exit 1
  make -n test > /dev/null && make -n run > /dev/null ||
    { echo "fresh_clone: the Makefile's targets do not resolve"; exit 1; }
  commands=$(headless)
  [ -n "$commands" ] || { echo "fresh_clone: no headless block found in the README"; exit 1; }
  known=$("$here/.venv/bin/digit-workbench" --help 2>&1) || known=$(python -m workbench --help 2>&1)
  echo "$commands" | while IFS= read -r line; do
    sub=$(echo "$line" | awk '{print $2}')
    echo "$known" | grep -q "^    $sub " || { echo "fresh_clone: the README's \`$line\` names no command"; exit 1; }
  done || exit 1
  echo "fresh clone: $(echo "$commands" | wc -l) headless commands, every one a command of digit-workbench"
  exit 0
fi
out=${1:-$here/benchmarks/results/fresh_clone.txt}
git clone -q "$here" "$work/clone" && cd "$work/clone" || exit 1
log=$work/log.txt
{
  echo "fresh clone of $(git rev-parse --short HEAD) on $(hostname), $(nproc) cores, $(date -u +%F)"
  start=$(date +%s)
  make test > "$work/make-test.txt" 2>&1
  status=$?
  end=$(date +%s)
  echo "make test: exit $status in $((end - start)) s; $(grep -E '^[0-9]+ passed|passed' "$work/make-test.txt" | tail -1)"
  grep -E '^(FAILED|ERROR) ' "$work/make-test.txt"  # which, when one fails: the clone and its log go at the end
  . .venv/bin/activate
  headless | while IFS= read -r line; do
    t0=$(date +%s%N)
    bash -c "$line" > "$work/cmd.txt" 2>&1 < /dev/null
    code=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '%s: exit %d in %d.%d s; %s\n' "$line" "$code" $((ms / 1000)) $((ms % 1000 / 100)) \
      "$(grep -v '^ *$' "$work/cmd.txt" | tail -1 | cut -c1-100)"
  done
} | tee "$log"
cp "$log" "$out"
