#!/usr/bin/env bash
# Refresh the vendored front-end libraries from the npm registry (issue 16). Not run at build or run time:
# its output is committed, so a fresh clone serves the pages without node, npm or a CDN.
#
#   bash api/web/static/vendor/refresh.sh
#
# Each library lands in api/web/static/vendor/<name>/<version>/ with its minified build and its licence;
# SHA256SUMS lists every vendored file (tests/web/test_vendor.py checks them, and that the pages name
# exactly these versions). axe-core is for the browser tests only and goes to tests/web/vendor/.
#
# nhsuk-frontend's published CSS loads the Frutiger font from assets.nhs.uk and its icons from /assets/:
# the CSS here is compiled from the package's own Sass (with the pinned `sass`) with the font face left
# out (Arial, the design system's fallback) and the icons beside the stylesheet, so nothing is fetched
# from another site.
set -euo pipefail
HTMX=2.0.11          # the 2.x line: 4.0 changed attribute inheritance and request defaults
BPMN_JS=18.31.1
NHSUK=10.6.1
AXE=4.14.1
SASS=1.108.2

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
tests_vendor="$repo/tests/web/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for spec in "htmx.org@$HTMX" "bpmn-js@$BPMN_JS" "nhsuk-frontend@$NHSUK" "axe-core@$AXE"; do
  npm pack -q "$spec" >/dev/null
done
for tarball in *.tgz; do mkdir -p "${tarball%.tgz}" && tar xzf "$tarball" -C "${tarball%.tgz}"; done

rm -rf "$here/htmx.org" "$here/bpmn-js" "$here/nhsuk-frontend" "$tests_vendor/axe-core"

out="$here/htmx.org/$HTMX"; mkdir -p "$out"
cp "htmx.org-$HTMX/package/dist/htmx.min.js" "htmx.org-$HTMX/package/LICENSE" "$out/"

out="$here/bpmn-js/$BPMN_JS"; mkdir -p "$out"
# The viewer for every diagram; the modeler (and its icon font, embedded in its CSS) where authors edit.
cp "bpmn-js-$BPMN_JS/package/dist/bpmn-navigated-viewer.production.min.js" \
   "bpmn-js-$BPMN_JS/package/dist/bpmn-modeler.production.min.js" \
   "bpmn-js-$BPMN_JS/package/dist/assets/diagram-js.css" "bpmn-js-$BPMN_JS/package/dist/assets/bpmn-js.css" \
   "bpmn-js-$BPMN_JS/package/dist/assets/bpmn-font/css/bpmn-embedded.css" \
   "bpmn-js-$BPMN_JS/package/LICENSE" "$out/"

out="$here/nhsuk-frontend/$NHSUK"; mkdir -p "$out/assets/images"
mkdir build && (cd build && npm init -y >/dev/null && npm install -q --no-audit --no-fund "sass@$SASS" "../nhsuk-frontend-$NHSUK.tgz" >/dev/null)
printf '%s\n' '@use "pkg:nhsuk-frontend" with ($nhsuk-include-default-font-face: false, $nhsuk-font-family: (arial, sans-serif), $nhsuk-assets-path: "assets/");' > build/carepath.scss
(cd build && npx sass --pkg-importer=node --style=compressed --no-source-map carepath.scss "$out/nhsuk-frontend.min.css")
# The published script ends with a source-map comment naming a file that is not vendored.
sed 's|//# sourceMappingURL=.*$||' "nhsuk-frontend-$NHSUK/package/dist/nhsuk/nhsuk-frontend.min.js" > "$out/nhsuk-frontend.min.js"
grep -o 'assets/images/[a-z0-9-]*\.svg' "$out/nhsuk-frontend.min.css" | sort -u | while read -r image; do
  cp "nhsuk-frontend-$NHSUK/package/dist/nhsuk/$image" "$out/$image"
done
cp "nhsuk-frontend-$NHSUK/package/dist/nhsuk/assets/images/favicon.svg" "$out/assets/images/"
# The npm package declares MIT but carries no licence file: this is the upstream repository's LICENSE.
cp "$here/nhsuk-frontend.LICENSE" "$out/LICENSE"

out="$tests_vendor/axe-core/$AXE"; mkdir -p "$out"
cp "axe-core-$AXE/package/axe.min.js" "axe-core-$AXE/package/LICENSE" "$out/"

(cd "$here" && find . -type f ! -name SHA256SUMS ! -name refresh.sh ! -name nhsuk-frontend.LICENSE | sort | xargs sha256sum > SHA256SUMS)
(cd "$tests_vendor" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "vendored: htmx.org $HTMX, bpmn-js $BPMN_JS, nhsuk-frontend $NHSUK (sass $SASS); tests: axe-core $AXE"
