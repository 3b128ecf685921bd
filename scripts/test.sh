#!/usr/bin/env bash
# README command 2: set up (if needed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A private DDS domain, so parallel runs on one machine do not hear each other.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
# -P: do not put the source tree first on sys.path; tests import the installed package.
exec .venv/bin/python -P -m pytest test "$@"
