#!/bin/sh
# Build a Kontor release: the `kontor` binary (release profile, vendor keys
# only — never the dev-keys feature), `kontor-install`, a Debian package,
# and a signed update package for `kontor-install upgrade`.
#
#   packaging/release.sh --key vendor-signing.key --min-from 0.1.0 [--out dist]
#   packaging/release.sh --binary path/to/kontor --installer path/to/kontor-install --no-update-package
#
# --compression xz|gzip|none chooses the .deb's compression (default xz).
# --binary/--installer package existing binaries instead of building them
# (CI and the packaging check use this). The version is the workspace's.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist"
binary=""
installer=""
key=""
min_from=""
update=yes
compression=xz

while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --installer) installer=$2; shift 2 ;;
        --key) key=$2; shift 2 ;;
        --min-from) min_from=$2; shift 2 ;;
        --no-update-package) update=no; shift ;;
        --compression) compression=$2; shift 2 ;;
        *) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
mkdir -p "$out"

if [ -z "$binary" ] || [ -z "$installer" ]; then
    # Exactly the release build the license docs name: no dev-keys.
    (cd "$root" && cargo build --release --locked -p kontor --bin kontor -p kontor-install --bin kontor-install)
    binary="$root/target/release/kontor"
    installer="$root/target/release/kontor-install"
fi

# The Debian package: binaries, the unit, the example config.
pkg="$out/deb-root"
rm -rf "$pkg"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
    "$pkg/etc/kontor" "$pkg/usr/share/doc/kontor/examples"
install -m 0755 "$binary" "$pkg/usr/bin/kontor"
install -m 0755 "$installer" "$pkg/usr/bin/kontor-install"
install -m 0644 "$root/packaging/kontor.service" "$pkg/lib/systemd/system/kontor.service"
install -m 0640 "$root/packaging/kontor.toml.example" "$pkg/etc/kontor/kontor.toml.example"
install -m 0644 "$root/packaging/nginx.conf.example" "$pkg/usr/share/doc/kontor/examples/nginx.conf.example"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: kontor
Version: $version
Architecture: $arch
Maintainer: Kontor <packaging@example.invalid>
Section: web
Priority: optional
Depends: libc6, adduser
Description: Kontor, the modular CRM for service and hosting businesses
 The core host with its bundled modules, the kontor-install installer,
 a hardened systemd unit and an example configuration.
CONTROL
install -m 0755 "$root/packaging/debian/postinst" "$pkg/DEBIAN/postinst"
echo "/etc/kontor/kontor.toml.example" > "$pkg/DEBIAN/conffiles"
deb="$out/kontor_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$pkg" "$deb" >/dev/null
rm -rf "$pkg"
echo "built $deb"

if [ "$update" = yes ]; then
    if [ -z "$key" ] || [ -z "$min_from" ]; then
        echo "release.sh: the update package needs --key and --min-from (or pass --no-update-package)" >&2
        exit 2
    fi
    "$installer" pack-update --binary "$binary" --version "$version" \
        --min-from "$min_from" --key "$key" --out "$out/kontor-$version.kupd"
fi
