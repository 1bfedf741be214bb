#!/bin/sh
# Install R with limma, edgeR and statmod from Debian when running as root and missing.
# Without root the R oracle tests skip with a clear reason.
set -eu
have_r() {
    command -v Rscript >/dev/null 2>&1 &&
        Rscript -e 'suppressMessages({library(limma); library(edgeR); library(statmod)})' \
            >/dev/null 2>&1
}
if have_r; then
    echo "R oracle: available ($(Rscript --version 2>&1 | head -n 1))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "R oracle: not installed and not root; the R parity tests will be skipped." >&2
    exit 0
fi
echo "R oracle: installing r-base-core r-bioc-limma r-bioc-edger r-cran-statmod (Debian) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    r-base-core r-bioc-limma r-bioc-edger r-cran-statmod >/dev/null
have_r && echo "R oracle: installed"
