#!/usr/bin/env bash
# Idempotent: installs Debian's chromium for the report's headless-browser test
# (ReportTests.testReportRendersInHeadlessChromium). Without it that test skips.
# Safe to run any number of times; with chromium present it only checks.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "setup-report-test: chromium present ($(chromium --version 2>/dev/null || echo unknown version))"
  exit 0
fi
echo "setup-report-test: installing chromium"
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then $SUDO apt-get update -qq; fi
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
  || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }
echo "setup-report-test: installed $(chromium --version 2>/dev/null || echo chromium)"
