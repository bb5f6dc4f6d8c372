#!/usr/bin/env bash
# Builds the callgate appliance disk image: a GPT disk that boots under
# UEFI (systemd-boot) and legacy BIOS (syslinux), made from Debian
# bookworm packages and the callgate release binary. No loop devices, no
# mounts: mmdebstrap makes the tree, mkfs.ext4 -d and mkfs.vfat + mtools
# make the file systems, sfdisk the partition table, dd puts them together.
#
#   bash image/build.sh [OUTPUT.raw]
#
# Writes OUTPUT.raw (default image/out/callgate-amd64.raw) and
# OUTPUT.raw.zst. Runs as root; installs the Debian packages it needs.
#
# Environment:
#   ARCH           amd64 (default) or arm64 (see build-arm64.sh)
#   CALLGATE_BIN   use this binary instead of `cargo build --release`
#   MIRROR, SECURITY_MIRROR   Debian mirrors (default deb.debian.org)
#   APT_CACHE      .deb cache kept between builds
#                  (default /var/cache/callgate-image/<arch>; "" = none)
#   ZSTD_LEVEL     compression level of OUTPUT.raw.zst (default 12)
#   KEEP_WORK=1    keep the work directory (rootfs, partition images)
set -euo pipefail

# Everything done inside the root file system; runs as an mmdebstrap
# customize hook (see the --customize entry point below).
customize() {
  in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
  KVER=$(basename "$(ls -d "$R"/usr/lib/modules/*/ | tail -n 1)")

  step "callgate binary, units and configuration"
  # Debug info stays in the build tree; symbol names stay for backtraces.
  OBJCOPY=objcopy
  [ "$ARCH" = arm64 ] && OBJCOPY=aarch64-linux-gnu-objcopy
  $OBJCOPY --strip-debug "$BIN" "$R/usr/bin/callgate"
  chmod 0755 "$R/usr/bin/callgate"
  install -m 0644 "$ROOT/systemd/callgate.service" "$R/usr/lib/systemd/system/callgate.service"
  install -m 0644 "$ROOT/systemd/callgate.sysusers" "$R/usr/lib/sysusers.d/callgate.conf"
  install -m 0644 "$ROOT/systemd/callgate.tmpfiles" "$R/usr/lib/tmpfiles.d/callgate.conf"
  # The overlay: network, first-boot units, console text, test port.
  cp -a --no-preserve=ownership "$ROOT/image/rootfs/." "$R/"
  in_root systemd-sysusers
  in_root systemd-tmpfiles --create /usr/lib/tmpfiles.d/callgate.conf
  in_root chown root:callgate /etc/callgate/callgate.toml
  in_root chmod 0640 /etc/callgate/callgate.toml
  # The configuration must be one the binary accepts.
  in_root /usr/bin/callgate --config /etc/callgate/callgate.toml print-config >/dev/null \
    || die "callgate refuses image/rootfs/etc/callgate/callgate.toml"

  in_root systemctl enable callgate.service callgate-issue.service callgate-issue.path \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service >/dev/null 2>&1
  # Asks for locale, time zone and root password on the console otherwise.
  in_root systemctl mask systemd-firstboot.service >/dev/null 2>&1
  # The appliance is updated as a whole (A/B), never with apt.
  in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
  echo callgate > "$R/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tcallgate\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
  # systemd 252 treats "uninitialized" as first boot: ConditionFirstBoot=,
  # presets, a fresh machine id.
  echo uninitialized > "$R/etc/machine-id"
  rm -f "$R/var/lib/dbus/machine-id"
  # Root is locked: no password login at all, and never an empty one.
  in_root usermod -p '!*' root
  grep -q '^root:[!*]' "$R/etc/shadow" || die "root is not locked"
  if awk -F: '$2 == ""' "$R/etc/shadow" | grep -q .; then die "an account has an empty password"; fi

  # --- pruning ------------------------------------------------------------------
  step "pruning kernel modules, docs and caches"
  # init-system-helpers (essential) pulled in usrmerge and with it perl;
  # the tree is merged already and usr-is-merged says so.
  # dpkg refuses if anything else still needs one of them.
  in_root dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl \
    libtext-glob-perl perl perl-modules-5.36 libperl5.36 >/dev/null
  if in_root dpkg-query -W -f='${Status}' perl 2>/dev/null | grep -q ' installed'; then
    die "perl is still in the image"
  fi
  M=$R/usr/lib/modules/$KVER/kernel
  # What a server appliance does not drive: sound, video, radios, cameras,
  # GPUs, exotic buses and storage networks, and file systems it never
  # mounts. Storage controllers, NICs, USB keyboards and storage, virtio,
  # Hyper-V/Xen/VMware guests, watchdogs, TPM and IPMI stay.
  rm -rf "$M"/sound "$M"/drivers/gpu "$M"/drivers/media "$M"/drivers/staging \
    "$M"/drivers/net/wireless "$M"/drivers/bluetooth "$M"/net/bluetooth \
    "$M"/net/wireless "$M"/net/mac80211 "$M"/net/mac802154 "$M"/net/ieee802154 \
    "$M"/drivers/net/ieee802154 "$M"/net/nfc "$M"/drivers/nfc \
    "$M"/drivers/infiniband "$M"/net/rds "$M"/net/sunrpc "$M"/net/ceph \
    "$M"/drivers/isdn "$M"/drivers/iio "$M"/drivers/input/joystick \
    "$M"/drivers/input/touchscreen "$M"/drivers/input/tablet "$M"/drivers/input/misc \
    "$M"/drivers/net/can "$M"/net/can "$M"/drivers/net/hamradio "$M"/net/ax25 \
    "$M"/net/netrom "$M"/net/rose "$M"/drivers/atm "$M"/net/atm \
    "$M"/drivers/net/wan "$M"/drivers/net/arcnet "$M"/drivers/net/fddi \
    "$M"/drivers/net/plip "$M"/drivers/parport "$M"/drivers/pcmcia \
    "$M"/drivers/memstick "$M"/drivers/mmc "$M"/drivers/w1 \
    "$M"/drivers/fpga "$M"/drivers/accel "$M"/drivers/comedi \
    "$M"/drivers/platform/chrome "$M"/drivers/platform/surface \
    "$M"/drivers/usb/gadget "$M"/drivers/usb/musb \
    "$M"/drivers/scsi/qla2xxx "$M"/drivers/scsi/qla4xxx "$M"/drivers/scsi/lpfc \
    "$M"/drivers/scsi/bfa "$M"/drivers/scsi/fnic "$M"/drivers/scsi/qedf \
    "$M"/drivers/scsi/qedi "$M"/drivers/scsi/cxgbi "$M"/drivers/scsi/bnx2fc \
    "$M"/drivers/scsi/bnx2i "$M"/drivers/scsi/be2iscsi "$M"/drivers/scsi/csiostor \
    "$M"/drivers/scsi/fcoe "$M"/drivers/scsi/libfc "$M"/drivers/target \
    "$M"/drivers/thunderbolt "$M"/drivers/firewire "$M"/drivers/uwb \
    "$M"/drivers/video/fbdev \
    "$M"/fs/nfs "$M"/fs/nfsd "$M"/fs/nfs_common "$M"/fs/lockd "$M"/fs/ceph \
    "$M"/fs/smb "$M"/fs/cifs "$M"/fs/ocfs2 "$M"/fs/gfs2 "$M"/fs/dlm "$M"/fs/jfs \
    "$M"/fs/reiserfs "$M"/fs/nilfs2 "$M"/fs/ubifs "$M"/fs/hfs "$M"/fs/hfsplus \
    "$M"/fs/ufs "$M"/fs/udf "$M"/fs/afs "$M"/fs/coda "$M"/fs/9p "$M"/fs/orangefs \
    "$M"/fs/xfs "$M"/fs/btrfs "$M"/fs/f2fs "$M"/fs/ntfs3 "$M"/fs/ntfs \
    "$M"/fs/befs "$M"/fs/minix "$M"/fs/omfs "$M"/fs/qnx4 "$M"/fs/qnx6 \
    "$M"/fs/romfs "$M"/fs/sysv "$M"/fs/adfs "$M"/fs/affs "$M"/fs/hpfs \
    "$M"/fs/efs "$M"/fs/freevxfs "$M"/fs/cramfs "$M"/fs/gfs2 "$M"/fs/zonefs
  # Keyboards on a server console speak plain HID.
  find "$M/drivers/hid" -maxdepth 1 -name 'hid-*.ko*' ! -name 'hid-generic.ko*' \
    ! -name 'hid-hyperv.ko*' -delete 2>/dev/null || true
  # Modules that need a pruned one would fail to load anyway: drop them
  # too (the "depends=" of each module's .modinfo, to a fixed point).
  python3 - "$R/usr/lib/modules/$KVER/kernel" <<'PY'
import os, re, sys
mods = {}
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if ".ko" in f:
            name = f.split(".ko")[0].replace("-", "_")
            data = open(os.path.join(d, f), "rb").read()
            m = re.search(rb"(?:^|\x00)depends=([^\x00]*)", data)
            deps = [x.replace("-", "_") for x in m.group(1).decode().split(",") if x] if m else []
            mods[name] = (os.path.join(d, f), deps)
removed = True
while removed:
    removed = False
    for name, (path, deps) in list(mods.items()):
        if any(dep not in mods for dep in deps):
            print("removing (needs a pruned module):", path.split("/kernel/", 1)[1])
            os.remove(path)
            del mods[name]
            removed = True
print(len(mods), "modules kept")
PY
  in_root depmod -a "$KVER"
  step "initramfs"
  in_root update-initramfs -u -k "$KVER" >/dev/null
  rm -rf "$R"/usr/share/man "$R"/usr/share/info "$R"/usr/share/lintian \
    "$R"/usr/share/locale "$R"/usr/share/bash-completion \
    "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/var/cache/debconf/*-old \
    "$R"/var/log/*.log "$R"/var/log/apt/* "$R"/tmp/* "$R"/usr/share/perl/*/pod
  find "$R/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$R/usr/share/doc" -mindepth 1 -type d -empty -delete
  # No compilers and no docs ended up in the image.
  for f in usr/bin/gcc usr/bin/cc usr/bin/cargo usr/bin/rustc usr/bin/as usr/bin/ld; do
    if [ -e "$R/$f" ]; then die "$f is in the image"; fi
  done
}

# Called back by mmdebstrap as a customize hook (the chroot then has /proc,
# /sys and /dev mounted): bash build.sh --customize ROOTFS ARCH BIN
if [ "${1:-}" = --customize ]; then
  R=$2 ARCH=$3 BIN=$4
  ROOT=$(cd "$(dirname "$0")/.." && pwd)
  START=${START:-$(date +%s)}
  step() { printf '\n==> [%ss] %s\n' "$(($(date +%s) - START))" "$*"; }
  die() { echo "build.sh: $*" >&2; exit 1; }
  customize
  exit 0
fi

START=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${ARCH:-amd64}
OUT=${1:-${OUT:-$ROOT/image/out/callgate-$ARCH.raw}}
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
APT_CACHE=${APT_CACHE-/var/cache/callgate-image/$ARCH}
ZSTD_LEVEL=${ZSTD_LEVEL:-12}

# Partition sizes in MiB. The two /usr slots are the A/B pair for updates
# (image/README.md); root holds /etc and /var and grows at first boot.
ESP_MB=256
USR_MB=1024
ROOT_MB=256

step() { printf '\n==> [%ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap and chroot need it)"

case "$ARCH" in
  amd64)
    KERNEL_PKG=linux-image-amd64
    EFI_ARCH=x64; EFI_BOOT=BOOTX64.EFI
    ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709   # root x86-64
    USR_TYPE=8484680C-9521-48C6-9C11-B0720656F69E    # usr x86-64
    BIOS=1 RUST_TARGET=""
    CONSOLE="console=tty0 console=ttyS0,115200n8"
    ;;
  arm64)
    KERNEL_PKG=linux-image-arm64
    EFI_ARCH=aa64; EFI_BOOT=BOOTAA64.EFI
    ROOT_TYPE=B921B045-1DF0-41C3-AF44-4C6F280D3FAE   # root arm64
    USR_TYPE=B0E01050-EE5F-4390-949A-9101B17104E9    # usr arm64
    BIOS=0 RUST_TARGET=aarch64-unknown-linux-gnu
    CONSOLE="console=tty0 console=ttyAMA0,115200n8"
    ;;
  *) die "ARCH must be amd64 or arm64" ;;
esac
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B

# --- host tools -------------------------------------------------------------
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have mmdebstrap || need+=(mmdebstrap)
have mcopy || need+=(mtools)
have mkfs.vfat || need+=(dosfstools)
have sfdisk || need+=(fdisk)
have mkfs.ext4 || need+=(e2fsprogs)
have zstd || need+=(zstd)
have objcopy || need+=(binutils)
have python3 || need+=(python3)
if [ "$BIOS" = 1 ]; then
  have syslinux || need+=(syslinux)
  [ -e /usr/lib/syslinux/mbr/gptmbr.bin ] || need+=(syslinux-common)
else
  # Foreign-architecture packages run their maintainer scripts under qemu.
  [ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || have qemu-aarch64-static || need+=(qemu-user-static binfmt-support)
  have aarch64-linux-gnu-objcopy || need+=(binutils-aarch64-linux-gnu)
fi
if [ ${#need[@]} -gt 0 ]; then
  step "apt: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$ARCH" = arm64 ]; then
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt_misc has no qemu-aarch64 entry"
fi

# --- the binary -------------------------------------------------------------
if [ -n "${CALLGATE_BIN:-}" ]; then
  BIN=$CALLGATE_BIN
else
  step "cargo build --release"
  if [ -n "$RUST_TARGET" ]; then
    (cd "$ROOT" && cargo build --release --locked -p callgate --target "$RUST_TARGET")
    BIN=$ROOT/target/$RUST_TARGET/release/callgate
  else
    (cd "$ROOT" && cargo build --release --locked -p callgate)
    BIN=$ROOT/target/release/callgate
  fi
fi
[ -x "$BIN" ] || die "no binary at $BIN"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/callgate-image.XXXXXX")
cleanup() { [ "${KEEP_WORK:-0}" = 1 ] && echo "work directory kept: $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
R=$WORK/rootfs

# --- root file system -------------------------------------------------------
PACKAGES=(
  systemd systemd-sysv udev dbus systemd-resolved systemd-timesyncd
  "$KERNEL_PKG" initramfs-tools zstd e2fsprogs kmod systemd-boot-efi
  # Satisfies init-system-helpers without usrmerge, which pulls in perl.
  usr-is-merged
)
cache_hooks=()
if [ -n "$APT_CACHE" ]; then
  mkdir -p "$APT_CACHE"
  cache_hooks=(
    --skip=download/empty
    --setup-hook="mkdir -p \"\$1/var/cache/apt/archives/\""
    --setup-hook="sync-in '$APT_CACHE' /var/cache/apt/archives/"
    --customize-hook="sync-out /var/cache/apt/archives '$APT_CACHE'"
    --customize-hook="rm -f \"\$1\"/var/cache/apt/archives/*.deb"
  )
fi
step "mmdebstrap $SUITE $ARCH (minbase)"
mmdebstrap --variant=minbase --arch="$ARCH" --mode=root --format=directory \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/bash-completion/*' \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && printf "COMPRESS=zstd\nMODULES=most\n" > "$1/etc/initramfs-tools/conf.d/callgate.conf"' \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  "${cache_hooks[@]}" \
  --customize-hook="START=$START bash '$ROOT/image/build.sh' --customize \"\$1\" '$ARCH' '$BIN'" \
  "$SUITE" "$R" \
  "deb $MIRROR $SUITE main" \
  "deb $MIRROR $SUITE-updates main" \
  "deb $SECURITY_MIRROR $SUITE-security main"

KVER=$(basename "$(ls -d "$R"/usr/lib/modules/*/ | tail -n 1)")

# --- partitions ---------------------------------------------------------------
uuid() { cat /proc/sys/kernel/random/uuid; }
DISK_UUID=$(uuid); ESP_UUID=$(uuid); USR_A_UUID=$(uuid); USR_B_UUID=$(uuid); ROOT_UUID=$(uuid)
USR_FS_UUID=$(uuid); ROOT_FS_UUID=$(uuid)
ESP_START=1; USR_A_START=$((ESP_START + ESP_MB)); USR_B_START=$((USR_A_START + USR_MB))
ROOT_START=$((USR_B_START + USR_MB)); DISK_MB=$((ROOT_START + ROOT_MB + 1))

CMDLINE="root=PARTUUID=$ROOT_UUID ro $CONSOLE quiet systemd.show_status=auto rootwait"
cat > "$R/etc/fstab" <<EOF
# <device>                                  <mount> <type> <options>                     <dump> <pass>
PARTUUID=$ROOT_UUID /       ext4   rw,noatime,x-systemd.growfs   0 1
# The booted /usr slot; the initramfs mounts it. An update switches this
# line and the boot entry to the other slot (image/README.md).
PARTUUID=$USR_A_UUID /usr    ext4   ro,noatime                    0 2
PARTUUID=$ESP_UUID /boot/efi vfat umask=0077,noauto,nofail,x-systemd.automount 0 2
EOF
mkdir -p "$R/boot/efi"
cp "$R/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$WORK/initrd.img"
# The kernel and initramfs live on the ESP only (per slot).
rm -f "$R"/boot/vmlinuz* "$R"/boot/initrd.img* "$R"/vmlinuz* "$R"/initrd.img*
EFI_STUB_DIR=$R/usr/lib/systemd/boot/efi
cp "$EFI_STUB_DIR/systemd-boot$EFI_ARCH.efi" "$WORK/systemd-boot.efi"

step "file systems"
mv "$R/usr" "$WORK/usr"
mkdir "$R/usr"
mkfs.ext4 -q -F -L usr-a -U "$USR_FS_UUID" -O ^has_journal -d "$WORK/usr" "$WORK/usr.img" "${USR_MB}M"
mkfs.ext4 -q -F -L root -U "$ROOT_FS_UUID" -d "$R" "$WORK/root.img" "${ROOT_MB}M"
rmdir "$R/usr"; mv "$WORK/usr" "$R/usr"

mkfs.vfat -C -F 32 -n ESP "$WORK/esp.img" $((ESP_MB * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
E="-i $WORK/esp.img"
mmd $E ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/callgate-a
mcopy $E "$WORK/systemd-boot.efi" "::/EFI/BOOT/$EFI_BOOT"
mcopy $E "$WORK/systemd-boot.efi" "::/EFI/systemd/systemd-boot$EFI_ARCH.efi"
mcopy $E "$WORK/vmlinuz" ::/callgate-a/vmlinuz
mcopy $E "$WORK/initrd.img" ::/callgate-a/initrd.img
printf 'default callgate-a.conf\ntimeout 0\nconsole-mode keep\neditor no\n' > "$WORK/loader.conf"
cat > "$WORK/callgate-a.conf" <<EOF
title   callgate (slot a)
linux   /callgate-a/vmlinuz
initrd  /callgate-a/initrd.img
options $CMDLINE
EOF
mcopy $E "$WORK/loader.conf" ::/loader/loader.conf
mcopy $E "$WORK/callgate-a.conf" ::/loader/entries/callgate-a.conf
if [ "$BIOS" = 1 ]; then
  mmd $E ::/syslinux
  cat > "$WORK/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT callgate-a
PROMPT 0
TIMEOUT 0
LABEL callgate-a
  LINUX /callgate-a/vmlinuz
  INITRD /callgate-a/initrd.img
  APPEND $CMDLINE
EOF
  mcopy $E "$WORK/syslinux.cfg" ::/syslinux/syslinux.cfg
fi

step "GPT disk"
IMG=$WORK/disk.raw
truncate -s "${DISK_MB}M" "$IMG"
mib() { echo $(($1 * 2048)); }
sfdisk -q "$IMG" <<EOF
label: gpt
label-id: $DISK_UUID
unit: sectors
first-lba: 2048
start=$(mib $ESP_START), size=$(mib $ESP_MB), type=$ESP_TYPE, uuid=$ESP_UUID, name="esp", attrs="LegacyBIOSBootable"
start=$(mib $USR_A_START), size=$(mib $USR_MB), type=$USR_TYPE, uuid=$USR_A_UUID, name="usr-a"
start=$(mib $USR_B_START), size=$(mib $USR_MB), type=$USR_TYPE, uuid=$USR_B_UUID, name="_empty"
start=$(mib $ROOT_START), size=$(mib $ROOT_MB), type=$ROOT_TYPE, uuid=$ROOT_UUID, name="root"
EOF
dd if="$WORK/esp.img" of="$IMG" bs=1M seek=$ESP_START conv=notrunc,sparse status=none
dd if="$WORK/usr.img" of="$IMG" bs=1M seek=$USR_A_START conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$IMG" bs=1M seek=$ROOT_START conv=notrunc,sparse status=none
if [ "$BIOS" = 1 ]; then
  # Legacy BIOS: gptmbr.bin boots the partition marked LegacyBIOSBootable
  # (the ESP), where syslinux sits next to systemd-boot.
  dd if=/usr/lib/syslinux/mbr/gptmbr.bin of="$IMG" bs=440 count=1 conv=notrunc status=none
  syslinux --install --offset $((ESP_START * 1024 * 1024)) --directory /syslinux "$IMG"
fi

step "compressing"
mkdir -p "$(dirname "$OUT")"
mv "$IMG" "$OUT"
zstd -q -f -T0 "-$ZSTD_LEVEL" "$OUT" -o "$OUT.zst"

END=$(date +%s)
raw=$(stat -c %s "$OUT"); zst=$(stat -c %s "$OUT.zst")
usr_used=$(du -sm --apparent-size "$R/usr" | cut -f1)
printf '\nimage: %s\n' "$OUT"
printf '  raw %d MiB (usr %d MiB used), zstd %d bytes = %s MiB (%s)\n' \
  $((raw / 1048576)) "$usr_used" "$zst" "$(awk -v b="$zst" 'BEGIN { printf "%.1f", b / 1048576 }')" "$OUT.zst"
printf '  kernel %s, build time %d s\n' "$KVER" $((END - START))
