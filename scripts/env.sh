# shellcheck shell=bash
# Sourced (never run) by the scripts in this folder: puts the project's own tools first on
# PATH and prepares the environment the build and the tests expect. It only affects the
# shell that sources it; nothing is written to profiles or exported globally.
#
#   node_modules/.bin   npm's wasm-opt (binaryen 132; Debian's binaryen 108 breaks the app)
#                       and playwright-core, pinned in package.json / package-lock.json
#   ~/.cargo/bin        trunk and wasm-bindgen / wasm-bindgen-test-runner (cargo install)
#   XDG_RUNTIME_DIR     a private (0700) folder; Chromium and the Vulkan loader used by
#                       native wgpu tests warn without one

CLIPSEEK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CLIPSEEK_ROOT

_clipseek_cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
  ":$CLIPSEEK_ROOT/node_modules/.bin:$_clipseek_cargo_bin:"*) ;;
  *) PATH="$CLIPSEEK_ROOT/node_modules/.bin:$_clipseek_cargo_bin:$PATH" ;;
esac
export PATH
unset _clipseek_cargo_bin

# Keep an existing runtime dir when it is ours and private; otherwise make one.
if [[ -z "${XDG_RUNTIME_DIR:-}" || ! -d "$XDG_RUNTIME_DIR" || ! -O "$XDG_RUNTIME_DIR" \
      || "$(stat -c %a "$XDG_RUNTIME_DIR" 2>/dev/null)" != "700" ]]; then
  XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/clipseek-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR"
  chmod 700 "$XDG_RUNTIME_DIR"
fi
export XDG_RUNTIME_DIR

# Chromium for the browser tests (Debian's package, installed by scripts/setup).
export CLIPSEEK_CHROMIUM="${CLIPSEEK_CHROMIUM:-/usr/bin/chromium}"
# wasm-bindgen-test-runner drives this one if a wasm test ever asks for a browser.
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
