#!/usr/bin/env bash
# Copies a selection of Latin TTF/OTF fonts from the Debian font packages into train/.carry/fonts/, subset to
# printable ASCII + Latin-1 with pyftsubset (fonttools) so ~100 fonts take a few MiB; stops at FONT_BUDGET.
# Needs: apt-get install fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35
#        fonts-crosextra-carlito fonts-crosextra-caladea fonts-open-sans fonts-roboto-unhinted fonts-lato
#        fonts-noto-core fonts-cantarell fonts-linuxlibertine fonts-ebgaramond
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/.carry/fonts"
budget="${FONT_BUDGET:-6291456}"  # 6 MiB
subset="${PYFTSUBSET:-$here/../.venv-train/bin/pyftsubset}"
rm -rf "$dest"; mkdir -p "$dest"
mapfile -t fonts < <(find /usr/share/fonts -type f \( -name '*.ttf' -o -name '*.otf' \) |
  grep -v -i -E 'math|symbol|emoji|dingbat|awesome|D050000L|Z003|ExtraLight' |
  grep -E '/(dejavu|liberation|freefont|crosextra|open-sans|roboto|lato|cantarell|ebgaramond|linux-libertine|urw-base35)/|/noto/Noto(Sans|Serif|SansMono|SansDisplay|SerifDisplay)-' |
  sort)
total=0; n=0
for f in "${fonts[@]}"; do
  out="$dest/$(basename "${f%.*}").ttf"
  if [ -x "$subset" ]; then
    # printable ASCII, Latin-1 supplement, a few typographic signs; no hinting, no layout tables beyond kern
    "$subset" "$f" --unicodes='U+0020-007E,U+00A0-00FF,U+2013-2014,U+2018-201D,U+20AC' --no-hinting \
      --layout-features='kern,liga' --output-file="$out" 2>/dev/null || { rm -f "$out"; continue; }
  else
    cp "$f" "$out"
  fi
  sz=$(stat -c %s "$out")
  if [ $((total + sz)) -gt "$budget" ]; then rm -f "$out"; continue; fi
  total=$((total + sz)); n=$((n + 1))
done
echo "pack_fonts: $n fonts, $total bytes in $dest"
