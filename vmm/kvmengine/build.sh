#!/bin/sh
# Builds the workload guest (src/) into the flat binary workload.bin that
# generate.go embeds, and records the toolchain and a hash of the sources in
# workload.bin.info. Run via `go generate ./vmm/kvmengine` after changing src/.
# TestGuestBinaryUpToDate fails when workload.bin is stale.
set -eu
cd "$(dirname "$0")"
CC=${CC:-gcc}
OUT=${1:-workload.bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CFLAGS="-m64 -ffreestanding -nostdlib -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only
  -mcmodel=small -O2 -std=gnu11 -Wall -Wextra -Werror -fno-stack-protector
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fcf-protection=none
  -fno-builtin -fno-common -fno-ident -ffile-prefix-map=$PWD=."
$CC $CFLAGS -c src/entry.S -o "$tmp/entry.o"
$CC $CFLAGS -c src/workload.c -o "$tmp/workload.o"
$CC $CFLAGS -static -Wl,--build-id=none -Wl,-T,src/guest.ld -Wl,-z,noexecstack \
  -o "$tmp/workload.elf" "$tmp/entry.o" "$tmp/workload.o"
objcopy -O binary "$tmp/workload.elf" "$OUT"
if [ "$OUT" = workload.bin ]; then
  {
    echo "compiler: $($CC --version | head -n1)"
    echo "sources: $(cat src/abi.h src/entry.S src/workload.c src/guest.ld build.sh | sha256sum | cut -d' ' -f1)"
    echo "binary: $(sha256sum workload.bin | cut -d' ' -f1)"
  } > workload.bin.info
fi
