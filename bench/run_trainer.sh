#!/usr/bin/env bash
# Trainer against scikit-learn: `credito-trainer fit` and bench/sklearn_train.py on the same
# synthetic German Credit files (bench/gen_credit.py, 100k and 1M rows, seed 0), each run
# REPEAT times under /usr/bin/time -v; prints wall seconds (median and range), peak RSS and the
# hold-out AUC. Cross-validation is off on both sides (--cv-folds 1; the script has none).
# scikit-learn also refits once, untimed, on the trainer's own hold-out (--test-rows) so the AUCs
# compare on identical rows.
# Usage: bench/run_trainer.sh [CACHE_DIR]   (data files are kept there; default a temp dir)
# Environment: CREDITO_TRAINER (default build/services/trainer/credito-trainer; build it first,
# Release or RelWithDebInfo), PYTHON (default /usr/bin/python3, with Debian's python3-sklearn),
# SIZES (default "100000 1000000"), SOLVERS (default "lbfgs newton-cg newton-cholesky"),
# REPEAT (default 3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
trainer=${CREDITO_TRAINER:-$root/build/services/trainer/credito-trainer}
py=${PYTHON:-/usr/bin/python3}
sizes=${SIZES:-100000 1000000}
solvers=${SOLVERS:-lbfgs newton-cg newton-cholesky}
repeat=${REPEAT:-3}
[ -x "$trainer" ] || { echo "no trainer at $trainer (set CREDITO_TRAINER)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (Debian: apt-get install time)" >&2; exit 1; }

if [ $# -ge 1 ]; then
  cache=$1 tmp_cache=
  mkdir -p "$cache"
else
  cache=$(mktemp -d) tmp_cache=$cache
fi
work=$(mktemp -d)
trap 'rm -rf "$work" $tmp_cache' EXIT
results=$work/results.tsv
: >"$results"

# One timed run: appends "rows tool wall_s rss_kb fit_s auc iterations" to the results.
timed() {
  local rows=$1 tool=$2
  shift 2
  /usr/bin/time -v -o "$work/time" "$@" >"$work/out" 2>"$work/err"
  local wall rss fit auc iters
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0;
           for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$work/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  if [ "$tool" = credito ]; then
    fit=$(sed -n 's/^fit: load .* prepare .* fit \([0-9.]*\) s,.*/\1/p' "$work/err")
    auc=$(sed -n 's/^ *"test_roc_auc": \([0-9.]*\),*$/\1/p' "$work/fit/metrics.json" | head -1)
    iters=$(sed -n 's/^ *"iterations": \([0-9]*\),*$/\1/p' "$work/fit/metrics.json" | head -1)
  else
    fit=$(sed -n 's/.* fit=\([0-9.]*\) .*/\1/p' "$work/out")
    auc=$(sed -n 's/.* test_auc=\([0-9.]*\).*/\1/p' "$work/out")
    iters=$(sed -n 's/.* iterations=\([0-9]*\) .*/\1/p' "$work/out")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rows" "$tool" "$wall" "$rss" "$fit" "$auc" \
    "$iters" >>"$results"
}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' \
  /proc/meminfo)"
echo "trainer: $trainer ($(stat -c %y "$trainer" | cut -d. -f1))"
echo "scikit-learn: $("$py" -c 'import sklearn, numpy; print(sklearn.__version__, "numpy",
  numpy.__version__)')"
for rows in $sizes; do
  data=$cache/credit-$rows.arff
  [ -s "$data" ] || "$py" "$root/bench/gen_credit.py" "$rows" "$data" --seed 0
done
echo "start: $(date '+%Y-%m-%d %H:%M:%S'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A same_auc
for rows in $sizes; do
  data=$cache/credit-$rows.arff
  for _ in $(seq "$repeat"); do
    rm -rf "$work/fit"
    timed "$rows" credito "$trainer" fit "$data" --cv-folds 1 --no-processed --out "$work/fit"
  done
  for s in $solvers; do
    for _ in $(seq "$repeat"); do
      timed "$rows" "sklearn-$s" "$py" "$root/bench/sklearn_train.py" "$data" --solver "$s"
    done
    # Untimed: the same solver on the trainer's hold-out rows.
    same_auc[$rows,$s]=$("$py" "$root/bench/sklearn_train.py" "$data" --solver "$s" \
      --test-rows "$work/fit/test_scores.csv" | sed -n 's/.* test_auc=\([0-9.]*\).*/\1/p')
    printf '%s\tsame-%s\t%s\n' "$rows" "$s" "${same_auc[$rows,$s]}" >>"$results"
  done
done
echo "end: $(date '+%Y-%m-%d %H:%M:%S'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

"$py" - "$results" "$repeat" <<'EOF'
import statistics, sys
runs, same = {}, {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[1].startswith("same-"):
        same[(f[0], "sklearn-" + f[1][5:])] = float(f[2])
        continue
    runs.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:]])
print(f"\nmedian of {sys.argv[2]} runs; AUC: each tool's own 80/20 split, and scikit-learn "
      "refitted on credito's hold-out rows")
print("| rows | tool | wall s (median) | wall s (range) | peak RSS MB | fit s | iterations "
      "| test AUC | AUC on credito's split |")
print("|---|---|---|---|---|---|---|---|---|")
ours = {}
for (rows, tool), rs in runs.items():
    med = lambda k: statistics.median(r[k] for r in rs)
    wall = med(0)
    if tool == "credito":
        ours[rows] = (wall, rs[0][3])
    same_split = same.get((rows, tool), rs[0][3] if tool == "credito" else float("nan"))
    print(f"| {int(rows):,} | {tool} | {wall:.2f} | {min(r[0] for r in rs):.2f} - "
          f"{max(r[0] for r in rs):.2f} | {med(1) / 1024:.0f} | {med(2):.2f} | {med(4):.0f} "
          f"| {rs[0][3]:.6f} | {same_split:.6f} |")
print()
for (rows, tool), rs in runs.items():
    if tool != "credito" and rows in ours:
        wall = statistics.median(r[0] for r in rs)
        fit = statistics.median(r[2] for r in rs)
        fit_ours = statistics.median(r[2] for r in runs[(rows, "credito")])
        d = abs(ours[rows][1] - same[(rows, tool)]) if (rows, tool) in same else float("nan")
        print(f"{int(rows):,} rows: credito is {wall / ours[rows][0]:.1f}x faster than {tool} "
              f"(wall), {fit / fit_ours:.1f}x (fit only); |AUC difference| on the same "
              f"split {d:.1e}")
EOF
