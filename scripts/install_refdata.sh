#!/bin/sh
# Install the optional reference data that Debian packages for the field (Bioconductor's
# org.Hs.eg.db: Entrez, Ensembl and symbol of every human gene, an SQLite file) when
# running as root and missing. `refs build` picks it up when installed. Never fails the
# build: without root (or when the install does not work) its tests skip with a reason.
have_orgdb() {
    dpkg -s r-bioc-org.hs.eg.db >/dev/null 2>&1
}
if have_orgdb; then
    echo "reference data: org.Hs.eg.db available"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "reference data: org.Hs.eg.db not installed and not root; its tests will be skipped." >&2
    exit 0
fi
echo "reference data: installing r-bioc-org.hs.eg.db (Debian) ..."
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends r-bioc-org.hs.eg.db >/dev/null; then
    have_orgdb && echo "reference data: org.Hs.eg.db installed"
else
    echo "reference data: could not install org.Hs.eg.db; its tests will be skipped." >&2
fi
exit 0
