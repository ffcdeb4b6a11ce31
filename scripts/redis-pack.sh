#!/usr/bin/env bash
# Packs this machine's Debian redis-server and the shared libraries it links (ldd) into .redis/ (git-ignored),
# for a machine without Redis or network (bench/gpu/scaling.sh runs .redis/run.sh). Needs
# `apt-get install -y redis-server` here first. About a second.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(command -v redis-server || true)
[ -n "$BIN" ] || { echo "redis-server not found: apt-get install -y redis-server" >&2; exit 1; }
BIN=$(readlink -f "$BIN")
rm -rf .redis && mkdir -p .redis/lib
cp "$BIN" .redis/redis-server
# Every resolved library except the loader and libc's own family, which the target machine has.
ldd "$BIN" | awk '/=> \//{print $3}' | grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" .redis/lib/; done
cat > .redis/run.sh <<'SH'
#!/usr/bin/env bash
# Runs the packed redis-server with its own libraries: .redis/run.sh --port 6390 ...
D=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$D/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$D/redis-server" "$@"
SH
chmod +x .redis/run.sh
echo "packed redis-server ($(.redis/run.sh --version | grep -o "v=[0-9.]*")) and $(ls .redis/lib | wc -l) libraries into .redis/"
