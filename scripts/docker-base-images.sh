#!/usr/bin/env bash
# Makes sure the base image that the Dockerfile builds from exists locally.
#
# The Dockerfile starts from golang:1.26-bookworm. Where a registry can be
# reached, `docker-compose build` pulls it and this script is not needed.
# Where no registry can be reached, this script makes an image under that
# very name from this machine's own Go toolchain (DESIGN.md section 7): the
# Go tree, a static busybox for the RUN steps, /tmp and the CA bundle. The
# final image is FROM scratch, so it needs nothing at all.
#
# Idempotent: when the image already exists (pulled or made earlier) it does
# nothing. Environment: GO_IMAGE overrides the image name (default
# golang:1.26-bookworm).
set -euo pipefail

image=${GO_IMAGE:-golang:1.26-bookworm}
say() { printf 'docker-base-images: %s\n' "$*"; }
die() { printf 'docker-base-images: error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed"

if docker image inspect "$image" >/dev/null 2>&1; then
	say "$image is present, nothing to do"
	exit 0
fi

# --- the Go toolchain -------------------------------------------------------
command -v go >/dev/null 2>&1 || die "$image is absent and there is no Go toolchain to make it from"
goroot=$(go env GOROOT)
goversion=$(go env GOVERSION)                  # e.g. go1.26.8
tag=${image##*:}                               # e.g. 1.26-bookworm
want=${tag%%-*}                                # e.g. 1.26
case "$goversion" in
go"$want" | go"$want".*) ;;
*) die "$image needs Go $want, but this machine has $goversion" ;;
esac
[ -x "$goroot/bin/go" ] || die "no go binary under GOROOT $goroot"

# --- a static busybox for the Dockerfile's RUN steps ------------------------
is_static() {
	local out
	[ -x "$1" ] || return 1
	out=$(LC_ALL=C ldd "$1" 2>&1) || true # ldd fails on a static binary
	case "$out" in *'not a dynamic executable'* | *'statically linked'*) return 0 ;; esac
	return 1
}
busybox=/bin/busybox
if ! is_static "$busybox"; then
	say "installing busybox-static (a static shell for RUN steps)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq busybox-static >/dev/null
	is_static "$busybox" || die "$busybox is still missing or not static after installing busybox-static"
fi

cacerts=/etc/ssl/certs/ca-certificates.crt
[ -f "$cacerts" ] || die "no CA bundle at $cacerts (apt-get install ca-certificates)"

# GOPROXY as this machine uses it, so that `go mod download` in the build goes
# where the host's does. A value carrying credentials is not baked in.
goproxy=$(go env GOPROXY)
case "$goproxy" in
*@*) say "GOPROXY holds credentials: not baked into the image, Go's default applies"; goproxy= ;;
esac

# --- the root file system ---------------------------------------------------
root=$(mktemp -d "${TMPDIR:-/tmp}/replog-goimage.XXXXXX")
trap 'rm -rf "$root"' EXIT
say "making $image from $goroot ($goversion) in $root"

mkdir -p "$root/usr/local/go" "$root/bin" "$root/etc/ssl/certs" "$root/go" "$root/root" "$root/tmp"
chmod 1777 "$root/tmp"
# The Go tree minus its own test suite and docs, which no build reads.
tar -C "$goroot" --exclude=./test --exclude=./doc -cf - . | tar -C "$root/usr/local/go" -xf -
cp "$busybox" "$root/bin/busybox"
for applet in sh ls cat mkdir cp rm env; do
	ln -s busybox "$root/bin/$applet"
done
cp "$cacerts" "$root/etc/ssl/certs/ca-certificates.crt"

changes=(
	--change 'ENV PATH=/go/bin:/usr/local/go/bin:/bin'
	--change 'ENV GOPATH=/go'
	--change 'ENV GOTOOLCHAIN=local'
	--change "ENV GOLANG_VERSION=${goversion#go}"
	--change 'WORKDIR /go'
	--change 'LABEL org.replog.base-image=made-locally-from-host-go'
)
if [ -n "$goproxy" ]; then
	changes+=(--change "ENV GOPROXY=$goproxy")
fi

id=$(tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
	docker import "${changes[@]}" --message "made by scripts/docker-base-images.sh from $goversion" - "$image")
say "made $image (${id#sha256:}) from $goversion${goproxy:+, GOPROXY=$goproxy}"
