#!/usr/bin/env bash
# Renders the contention dossier's HTML page headless, at a desktop and a phone width, to PNG
# screenshots next to it. Skips (exit 0, with a message) when no Chromium-family browser is
# installed. Usage: scripts/render-dossier.sh [target/dossier/dossier.html]
set -euo pipefail

html="${1:-target/dossier/dossier.html}"
if [[ ! -f "$html" ]]; then
    echo "render-dossier: $html not found (run \`just dossier\` first)" >&2
    exit 1
fi
browser=""
for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser="$candidate"
        break
    fi
done
if [[ -z "$browser" ]]; then
    echo "render-dossier: SKIPPED: no chromium/google-chrome installed (apt-get install -y chromium)"
    exit 0
fi
dir="$(cd "$(dirname "$html")" && pwd)"
page="$dir/$(basename "$html")"
for size in 1400,1000 420,900; do
    out="$dir/dossier-${size/,/x}.png"
    # --no-sandbox: containers run as root; the page is local and has no scripts.
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --screenshot="$out" --window-size="$size" "file://$page" >/dev/null 2>&1
    echo "render-dossier: $out"
done
