#!/usr/bin/env bash
# Installs what tests/e2e needs to show the course in a browser: Debian's chromium (never a browser
# that Playwright downloads) and fonts, so that text, math and the lessons' emoji render as a
# learner sees them. Called by `make test` before pytest; quick when all is there already.
#
# Missing packages are installed with apt-get (without recommends) when this runs as root on a
# Debian-like system. Otherwise it says why not, and the browser test skips with a reason when
# /usr/bin/chromium is missing. It never fails `make test` by itself.
set -uo pipefail

PACKAGES=(chromium fonts-liberation fonts-dejavu-core fonts-noto-color-emoji)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  [ -x /usr/bin/chromium ] || echo "install_browser: /usr/bin/chromium is missing and this system has no apt-get;" \
    "the browser test will skip"
  exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install_browser: missing ${missing[*]}; run 'sudo apt-get install --no-install-recommends ${missing[*]}'" \
       "(without chromium the browser test skips)"
  exit 0
fi
echo "install_browser: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "install_browser: apt-get could not install ${missing[*]} (without chromium the browser test skips)"
fi
exit 0
