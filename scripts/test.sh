#!/usr/bin/env bash
# The whole test suite, as .ci/run and developers run it: installs what the tests need (Debian
# packages, rustfmt/clippy), then checks formatting and lints and runs every test, the VM and
# spice-gtk ones included. Under CI=true nothing may skip for lack of a package.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    scripts/install-test-deps.sh
elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI=true needs root to install test dependencies" >&2
    exit 1
else
    echo "test.sh: not root; assuming test dependencies are installed (scripts/install-test-deps.sh)" >&2
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
