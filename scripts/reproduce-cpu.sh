#!/usr/bin/env bash
# The CPU-scale suite, one table after another, into one folder of run folders. Start it twice on a 2-core machine
# (each process trains with one thread); the processes share each table's plan by claiming runs, a stopped suite
# resumes where it stopped, and the last process to finish a table writes its report.
#   nohup scripts/reproduce-cpu.sh > suite-0.log 2>&1 &
#   nohup scripts/reproduce-cpu.sh > suite-1.log 2>&1 &
# RUNS (default runs) is the output root (tables go to RUNS/TABLE-cpu, as `vicinal reproduce` defaults to, except
# adversarial and datasize, which reuse the cifar table's models in RUNS/cifar-cpu); arguments, when given, replace
# the list of tables, each TABLE or TABLE:SEEDS (default: the table's own seed count). The default list is the
# published suite (Table 3 with 3 seeds, as in results/README.md). The uci and gan tables train in one process each
# (no shared plans): run `vicinal reproduce uci --scale cpu` and `... gan --scale cpu` once, not from two suites.
# VICINAL (default .venv/bin/vicinal, what `make install` makes) is the command run: VICINAL=vicinal where vicinal is
# installed with pip instead.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
VICINAL=${VICINAL:-.venv/bin/vicinal}
export OMP_NUM_THREADS=1
tables=("$@")
if [ ${#tables[@]} -eq 0 ]; then
  tables=(cifar adversarial:3 corrupted-labels ablation datasize speech)
fi
for item in "${tables[@]}"; do
  table=${item%%:*}
  seeds=()
  [ "$item" != "$table" ] && seeds=(--seeds "${item#*:}")
  out="$RUNS/$table-cpu"
  # Table 3 attacks the cifar table's models and the data-size curve reuses them as its 2,000-image point: both
  # share the cifar table's folder.
  case "$table" in adversarial | datasize) out="$RUNS/cifar-cpu" ;; esac
  echo "== $(date -u +%FT%TZ) $table -> $out"
  "$VICINAL" reproduce "$table" --scale cpu --out "$out" --quiet "${seeds[@]}"
done
echo "== $(date -u +%FT%TZ) suite done"
