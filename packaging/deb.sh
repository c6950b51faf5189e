#!/bin/sh
# deb.sh OUTDIR: build the ovs-agent Debian package into OUTDIR (make deb).
#
# It expects `make build` to have put ovs-agent, ovs-vmm and ovm in $BIN
# (default bin). It stages what the repository does not hold as files:
# stripped copies of the binaries, the manual pages the binaries write
# (ovs-agent gen-man, ovm gen-man, ovs-vmm --man: cobra's pages plus the
# exit codes, and agent.ini(5) rendered from config/agent.ini.example),
# cobra's bash and zsh completion, and a Debian changelog naming the
# commit; then `go tool nfpm` packs packaging/nfpm.yaml.
#
# DEB_VERSION  the package version (default: the tag v1.2.3 as 1.2.3, with
#              +gitN.HASH after it for N commits more; without a tag
#              0~gitYYYYMMDD.HASH of the last commit)
# DEB_ARCH     the Debian architecture (default: go env GOARCH)
# DEB_MAINTAINER  "Name <address>" (default: DEBFULLNAME and DEBEMAIL, else
#              git config user.name and user.email, else the last commit's
#              author)
set -eu
cd "$(dirname "$0")/.."

out=${1:?usage: packaging/deb.sh OUTDIR}
BIN=${BIN:-bin}
GO=${GO:-go}

for b in ovs-agent ovs-vmm ovm; do
	[ -x "$BIN/$b" ] || { echo "deb.sh: $BIN/$b is missing: run make build first" >&2; exit 1; }
done

if [ -z "${DEB_VERSION:-}" ]; then
	if tag=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		DEB_VERSION=$(echo "${tag#v}" | sed 's/-\([0-9][0-9]*\)-g\([0-9a-f]*\)$/+git\1.\2/')
	else
		DEB_VERSION=0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short HEAD)
	fi
fi
DEB_ARCH=${DEB_ARCH:-$($GO env GOARCH)}
if [ -z "${DEB_MAINTAINER:-}" ]; then
	if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
		DEB_MAINTAINER="$DEBFULLNAME <$DEBEMAIL>"
	elif name=$(git config user.name) && mail=$(git config user.email); then
		DEB_MAINTAINER="$name <$mail>"
	else
		DEB_MAINTAINER=$(git log -1 --format='%an <%ae>')
	fi
fi
# Reproducible: every date in the package is the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export DEB_VERSION DEB_ARCH DEB_MAINTAINER SOURCE_DATE_EPOCH

stage=$(mktemp -d "${TMPDIR:-/tmp}/ovs-agent-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
export DEB_STAGE="$stage"

for b in ovs-agent ovs-vmm ovm; do
	strip --strip-unneeded -o "$stage/$b" "$BIN/$b"
done
# The C library the binaries need (cgo: the resolver, os/user): the newest
# GLIBC_ symbol version any of them uses.
glibc=$(for b in ovs-agent ovs-vmm ovm; do objdump -T "$stage/$b"; done | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
DEB_DEPENDS_LIBC=
[ -z "$glibc" ] || DEB_DEPENDS_LIBC="libc6 (>= $glibc)"
export DEB_DEPENDS_LIBC

mkdir -p "$stage/man/man1" "$stage/man/man5" "$stage/man/man8" "$stage/completion/bash" "$stage/completion/zsh"
"$BIN/ovs-agent" gen-man "$stage/man/man8" >/dev/null
mv "$stage/man/man8/agent.ini.5" "$stage/man/man5/"
"$BIN/ovs-vmm" --man "$stage/man/man8" >/dev/null
"$BIN/ovm" gen-man "$stage/man/man1" >/dev/null
for f in "$stage"/man/man*/*; do
	gzip -9n "$f"
done
for b in ovm ovs-agent; do
	"$BIN/$b" completion bash >"$stage/completion/bash/$b"
	"$BIN/$b" completion zsh >"$stage/completion/zsh/_$b"
done

{
	echo "ovs-agent ($DEB_VERSION) unstable; urgency=medium"
	echo
	echo "  * Built from the ovs-agent repository at commit"
	echo "    $(git rev-parse HEAD)."
	echo
	echo " -- $DEB_MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$stage/changelog.gz"

mkdir -p "$out"
rm -f "$out"/ovs-agent_*.deb
$GO tool nfpm package --config packaging/nfpm.yaml --packager deb --target "$out/"
