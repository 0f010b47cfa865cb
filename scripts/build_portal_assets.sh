#!/usr/bin/env bash
# Build the practitioner portal's static assets from npm, once, by a maintainer; the results are committed,
# so a fresh clone runs the portal (and its accessibility tests) with no npm and no network.
#
#   broker/portal/static/govuk/   GOV.UK Frontend's compiled CSS, JS, fonts and images, with VERSION and LICENCE
#   tests/portal/vendor/          axe-core's axe.min.js (the accessibility checks), with VERSION and LICENCE
#
# Versions are pinned in scripts/portal_assets/package.json and package-lock.json; `npm ci` installs exactly
# those. To upgrade: change package.json, run `npm install` there, then this script, and commit all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=scripts/portal_assets
(cd "$pkg" && npm ci --no-audit --no-fund --ignore-scripts)

govuk="$pkg/node_modules/govuk-frontend"
out=broker/portal/static/govuk
rm -rf "$out"
mkdir -p "$out"
cp "$govuk/dist/govuk/govuk-frontend.min.js" "$out/"
# The CSS names its fonts and images under /assets/; the portal serves them under /portal/assets/.
sed 's#url(/assets/#url(/portal/assets/#g' "$govuk/dist/govuk/govuk-frontend.min.css" > "$out/govuk-frontend.min.css"
cp -R "$govuk/dist/govuk/assets/fonts" "$govuk/dist/govuk/assets/images" "$govuk/dist/govuk/assets/manifest.json" "$out/"
# The portal's own few lines that start GOV.UK Frontend's components (pages work without them).
cp "$pkg/init.mjs" "$out/init.mjs"
node -p "require('./$govuk/package.json').version" > "$out/VERSION"
# The npm package ships no licence file; its package.json says MIT and its README the rest, so both are kept.
{
    echo "govuk-frontend $(cat "$out/VERSION"): \"license\": \"$(node -p "require('./$govuk/package.json').license")\" (package.json)"
    echo "MIT License, Copyright (c) Crown Copyright (Government Digital Service); see https://github.com/alphagov/govuk-frontend"
    echo "The GDS Transport font and the GOV.UK crown are for services on GOV.UK only (GOV.UK Design System guidance)."
    echo
    sed -n '/^## Licence/,/^## /p' "$govuk/README.md" | sed '$d'
} > "$out/LICENCE"

axe="$pkg/node_modules/axe-core"
vendor=tests/portal/vendor
mkdir -p "$vendor"
cp "$axe/axe.min.js" "$vendor/"
node -p "require('./$axe/package.json').version" > "$vendor/axe-core.VERSION"
cp "$axe/LICENSE" "$vendor/axe-core.LICENCE"
echo "portal assets: govuk-frontend $(cat "$out/VERSION"), axe-core $(cat "$vendor/axe-core.VERSION")"
