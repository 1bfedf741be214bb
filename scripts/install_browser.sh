#!/bin/sh
# Install Debian's chromium when running as root and missing, for the headless-browser
# test of the HTML report. Never fails the build: without root (or when the install does
# not work) the browser test skips with a clear reason.
have_chromium() {
    command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]
}
if have_chromium; then
    echo "browser: available ($(chromium --version 2>/dev/null | head -n 1))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "browser: chromium not installed and not root; the report browser test will be skipped." >&2
    exit 0
fi
echo "browser: installing chromium (Debian) ..."
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    have_chromium && echo "browser: installed"
else
    echo "browser: could not install chromium; the report browser test will be skipped." >&2
fi
exit 0
