#!/usr/bin/env bash
# The project's whole test run: install, build, lint, typecheck, unit tests, integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== lint" && npx biome check .
echo "== typecheck" && npx tsc -p tsconfig.json
echo "== unit tests" && npx vitest run --project unit
echo "== integration tests" && npx vitest run --project integration
