#!/usr/bin/env bash
# certbot deploy hook for roost: copies the renewed Let's Encrypt certificate to /etc/roost
# (where roost, running as user roost, can read it) and tells roost to reload it (SIGHUP).
#
# Install (the Debian package ships it as /usr/share/roost/certbot-deploy-hook.sh):
#   install -m 0755 /usr/share/roost/certbot-deploy-hook.sh /etc/letsencrypt/renewal-hooks/deploy/roost
#   certbot certonly --standalone -d example.org     # first certificate (port 80 free)
#   RENEWED_LINEAGE=/etc/letsencrypt/live/example.org /etc/letsencrypt/renewal-hooks/deploy/roost
# and in /etc/default/roost:
#   ROOST_ARGS="--domain example.org --cert /etc/roost/fullchain.pem --key /etc/roost/privkey.pem"
#
# certbot runs deploy hooks for every certificate it renews, with RENEWED_LINEAGE set to
# /etc/letsencrypt/live/<name>. When the machine has other certificates too, set ROOST_DOMAIN
# (here or in the environment) to the one roost serves; others are then ignored.
set -euo pipefail

ROOST_DOMAIN=${ROOST_DOMAIN:-}
DEST=${ROOST_CERT_DIR:-/etc/roost}
lineage=${RENEWED_LINEAGE:?RENEWED_LINEAGE is not set: run by certbot (--deploy-hook) or set it by hand}

if [ -n "$ROOST_DOMAIN" ] && [ "$(basename "$lineage")" != "$ROOST_DOMAIN" ]; then
    exit 0
fi
for f in fullchain.pem privkey.pem; do
    [ -r "$lineage/$f" ] || { echo "roost hook: $lineage/$f is missing" >&2; exit 1; }
done

install -d -m 0750 -o root -g roost "$DEST"
# Copy to temporary names, then rename: roost never reads a half-written file, and the key
# is never readable by others, not even for a moment. Key first, then the chain, then reload.
install -m 0640 -o root -g roost "$lineage/privkey.pem" "$DEST/.privkey.pem.new"
install -m 0644 -o root -g roost "$lineage/fullchain.pem" "$DEST/.fullchain.pem.new"
mv -f "$DEST/.privkey.pem.new" "$DEST/privkey.pem"
mv -f "$DEST/.fullchain.pem.new" "$DEST/fullchain.pem"

if systemctl is-active --quiet roost; then
    systemctl reload roost
fi
