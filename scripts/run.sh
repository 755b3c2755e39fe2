#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, then show the built-in EAST network and run it once.
# (Until a trained default model lands, the network runs with seeded random weights on a random image.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build/eastrt inspect --builtin east --input 1x672x1280x3
build/eastrt run --builtin east --input 1x672x1280x3
