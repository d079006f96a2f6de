#!/bin/sh
# The containers' entry point. `entry.sh init-keys` (the one-shot `keys` service) makes the signing
# key pair in $VIGIL_KEYS_DIR (default /keys, a volume) unless it is there; every other command runs
# with the key wired in: the learner (and `vigil models bootstrap`) signs with the private half, the
# scorer trusts the public half. An operator's own VIGIL_SCORER__TRUSTED_KEYS / VIGIL_LEARNER__SIGN_KEY
# win over the volume's.
set -eu
keys=${VIGIL_KEYS_DIR:-/keys}
if [ "${1:-}" = init-keys ]; then
  if [ -s "$keys/signing.key" ] && [ -s "$keys/public.hex" ]; then
    echo "entry: signing key already in $keys"
  else
    vigil models keygen --out "$keys/signing.key" > "$keys/public.hex"
    echo "entry: made a signing key in $keys (public half $(cat "$keys/public.hex"))"
  fi
  exit 0
fi
if [ -s "$keys/public.hex" ] && [ -z "${VIGIL_SCORER__TRUSTED_KEYS:-}" ]; then
  VIGIL_SCORER__TRUSTED_KEYS="[\"$(cat "$keys/public.hex")\"]"
  export VIGIL_SCORER__TRUSTED_KEYS
fi
if [ -s "$keys/signing.key" ] && [ -z "${VIGIL_LEARNER__SIGN_KEY:-}" ]; then
  export VIGIL_LEARNER__SIGN_KEY="$keys/signing.key"
fi
exec "$@"
