#!/usr/bin/env bash
# CI: the lab works from an installed wheel, outside the checkout (issue #12, item 5 "Installable lab").
#
# Builds the wheel from the working tree, installs it with --no-deps into a fresh virtual environment under a
# temporary folder that reuses the dependencies already in $VENV (torch is not downloaded again: a .pth file
# appends $VENV's site-packages as a plain folder, so $VENV's editable install of vicinal is NOT activated), then,
# from a folder outside the repository: lists the shipped configs, plans `vicinal reproduce cifar --scale cpu`,
# trains a shipped config by name for one step (digits: no data folder; CIFAR-10 on a 20-per-class copy of
# ../shared/data when it exists), and checks the one-line error of a command that needs data and has none.
# Takes seconds; `make test` runs it after pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PY=$VENV/bin/python
t0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vicinal-wheel-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "wheel-check: FAILED: $*" >&2; exit 1; }

# 1. The wheel, built from a copy of the sources (no stale build/ folder, nothing written into the checkout) and
#    without build isolation (the setuptools of $VENV: nothing downloaded).
mkdir "$WORK/src"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md LICENSE MANIFEST.in src | tar -C "$WORK/src" -xf -
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheel" "$WORK/src" >"$WORK/build.log" 2>&1 \
  || fail "pip wheel: $(cat "$WORK/build.log")"
WHEEL=$(ls "$WORK"/wheel/vicinal-*.whl)
shipped=$(find "$ROOT/src/vicinal/experiments/configs" -name '*.yaml' | wc -l)
in_wheel=$("$PY" -c 'import sys, zipfile; print(sum(n.startswith("vicinal/experiments/configs/") and n.endswith(".yaml") for n in zipfile.ZipFile(sys.argv[1]).namelist()))' "$WHEEL")
[ "$shipped" -gt 0 ] && [ "$in_wheel" -eq "$shipped" ] || fail "the wheel holds $in_wheel config files, the source $shipped"
# The licence travels with the wheel: its SPDX expression in the metadata and the text under dist-info/licenses.
"$PY" - "$WHEEL" <<'EOF' || fail "the wheel's licence metadata"
import sys
import zipfile

wheel = zipfile.ZipFile(sys.argv[1])
names = wheel.namelist()
meta = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
assert "License-Expression: MIT" in meta.splitlines(), "no License-Expression: MIT"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE in the wheel"
EOF
# The sdist: what builds the wheel (every config, the licence, the console entry), and no part of the test suite.
# Built from a copy that holds tests/ and benchmarks/ as a checkout does (MANIFEST.in must keep them out).
mkdir "$WORK/sdist-src"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.egg-info' --exclude='benchmarks/results' \
  -cf - pyproject.toml README.md LICENSE MANIFEST.in src tests benchmarks | tar -C "$WORK/sdist-src" -xf -
(cd "$WORK/sdist-src" && "$PY" -c 'from setuptools import build_meta; build_meta.build_sdist("../sdist")') \
  >"$WORK/sdist.log" 2>&1 || fail "sdist: $(cat "$WORK/sdist.log")"
"$PY" - "$WORK"/sdist/vicinal-*.tar.gz "$shipped" <<'EOF' || fail "the sdist's contents"
import sys
import tarfile

names = [n.split("/", 1)[1] for n in tarfile.open(sys.argv[1]).getnames() if "/" in n]
configs = sum(n.startswith("src/vicinal/experiments/configs/") and n.endswith(".yaml") for n in names)
assert configs == int(sys.argv[2]), f"{configs} configs in the sdist, {sys.argv[2]} in the source"
assert {"LICENSE", "README.md", "src/vicinal_cli.py"} <= set(names), "LICENSE, README.md or vicinal_cli.py missing"
assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))], "a partial test suite in the sdist"
EOF

# 2. A fresh environment outside the checkout, the dependencies of $VENV appended to its path, the wheel installed.
"$PY" -m venv --without-pip "$WORK/venv"
NEW=$WORK/venv/bin/python
site_new=$("$NEW" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site_old=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site_old" >"$site_new/_vicinal_ci_reuse_deps.pth"
env -u PYTHONPATH "$NEW" -m pip install -q --no-deps --no-index "$WHEEL"

# 3. From a folder outside the repository, with no VICINAL_DATA.
mkdir "$WORK/run"
cd "$WORK/run"
unset PYTHONPATH VICINAL_DATA
export VICINAL_CACHE=$WORK/cache OMP_NUM_THREADS=1
VICINAL=$WORK/venv/bin/vicinal
"$NEW" - "$WORK/venv" <<'EOF' || fail "vicinal is not imported from the new environment"
import sys
from pathlib import Path

import vicinal
from vicinal.experiments import paths

venv = Path(sys.argv[1]).resolve()
assert Path(vicinal.__file__).resolve().is_relative_to(venv), vicinal.__file__
assert not paths.SOURCE_CHECKOUT and paths.source_root() is None
assert paths.configs_dir().is_relative_to(venv), paths.configs_dir()
EOF
[ "$("$VICINAL" configs cifar/cpu)" = "$(printf 'cifar/cpu/cifar10-preact_resnet18-erm\ncifar/cpu/cifar10-preact_resnet18-mixup')" ] \
  || fail "vicinal configs cifar/cpu"
"$VICINAL" reproduce cifar --scale cpu --dry-run >"$WORK/plan.txt" || fail "vicinal reproduce cifar --scale cpu --dry-run"
grep -q "dry run: .* runs would be trained" "$WORK/plan.txt" || fail "no plan: $(cat "$WORK/plan.txt")"
OPTS=(--quiet --out "$WORK/run/runs")
STEP=(train.max_steps=1 train.epochs=1)
"$VICINAL" train demo/digits "${OPTS[@]}" --set "${STEP[@]}" >/dev/null || fail "vicinal train demo/digits (no data folder needed)"
# A command that needs the data and has no data root: one line naming VICINAL_DATA and --data, exit 2.
set +e
"$VICINAL" train cifar/cpu/cifar10-preact_resnet18-erm "${OPTS[@]}" --set "${STEP[@]}" >/dev/null 2>"$WORK/err.txt"
code=$?
set -e
[ "$code" -eq 2 ] && [ "$(wc -l <"$WORK/err.txt")" -eq 1 ] && grep -q "VICINAL_DATA.*--data" "$WORK/err.txt" \
  || fail "without a data root: exit $code, $(cat "$WORK/err.txt")"
SHARED=$ROOT/../shared/data/cifar10-jpeg
if [ -d "$SHARED/train" ] && [ -d "$SHARED/test" ]; then
  # A tiny CIFAR-10: links to the first 20 images of each class of the shared (read-only) copy.
  "$PY" - "$SHARED" "$WORK/data/cifar10-jpeg" <<'EOF'
import sys
from pathlib import Path

shared, tiny = Path(sys.argv[1]), Path(sys.argv[2])
for class_dir in sorted(p for split in ("train", "test") for p in (shared / split).iterdir() if p.is_dir()):
    out = tiny / class_dir.parent.name / class_dir.name
    out.mkdir(parents=True)
    for image in sorted(class_dir.glob("*.jpg"))[:20]:
        (out / image.name).symlink_to(image)
EOF
  "$VICINAL" train cifar/cpu/cifar10-preact_resnet18-erm --data "$WORK/data" "${OPTS[@]}" \
    --set "${STEP[@]}" data.subset_per_class=null >/dev/null || fail "vicinal train cifar/cpu/cifar10-preact_resnet18-erm --data"
  VICINAL_DATA=$WORK/data "$VICINAL" train cifar/cpu/cifar10-preact_resnet18-erm.yaml --overwrite "${OPTS[@]}" \
    --set "${STEP[@]}" data.subset_per_class=null >/dev/null || fail "VICINAL_DATA=... vicinal train cifar/cpu/...erm.yaml"
  cifar="CIFAR-10 (20 images per class) via --data and VICINAL_DATA"
else
  cifar="no CIFAR-10 (../shared/data/cifar10-jpeg absent)"
fi
echo "wheel-check: ok in $(($(date +%s) - t0)) s: $(basename "$WHEEL") ($in_wheel configs) in a fresh venv outside the checkout; configs, reproduce --dry-run, train by name on digits and $cifar"
