#!/usr/bin/env bash
# Installs what the tests need, builds everything, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

echo "==> build"
swift build --build-tests

echo "==> the template's files against the JSON Schema that 'flotilla schema' prints"
/usr/bin/python3 hack/check-schema.py .build/debug/flotilla fleet-repo-template

echo "==> swift test"
swift test --skip-build --disable-xctest
