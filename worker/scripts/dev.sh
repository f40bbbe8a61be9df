#!/usr/bin/env bash
# Runs the Worker locally for the AppHost (`npm run dev`): wrangler dev, headless, with containers
# disabled, on the development entry point src/dev/index.ts, which gives the Durable Object a stand-in
# container: an instance of its own from the AppHost's container runtime (CONTAINER_RUNTIME_URL), or the
# one shared upload service (CONTAINER_ORIGIN).
# Settings arrive as environment variables and reach the Worker through an env file readable only by
# this user (--env-file), so nothing local-only is written into wrangler.toml, and no secret is on a
# command line, which every local user can read in the process list. `exec` (here and in the npm
# script) leaves no shell between the orchestrator and wrangler: npm forwards SIGTERM/SIGINT to
# wrangler itself, which takes its workerd down with it. (Without the npm script's `exec`, sh would
# die and orphan wrangler.)
set -euo pipefail
cd "$(dirname "$0")/.."
# Also runnable without npm: the local wrangler, and the Node 22 it needs (the `node` devDependency).
export PATH="$PWD/node_modules/.bin:$PATH"

# Don't phone home at start (metrics, the cf request-properties fetch).
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false

args=(
  --ip 127.0.0.1
  --port "${PORT:-8787}"
  --show-interactive-dev-session=false
  --enable-containers=false
)
if [[ -n "${INSPECTOR_PORT:-}" ]]; then args+=(--inspector-port "$INSPECTOR_PORT"); fi
if [[ -n "${WRANGLER_PERSIST_DIR:-}" ]]; then args+=(--persist-to "$WRANGLER_PERSIST_DIR"); fi

# The env file: beside the Durable Objects' state under the local data root when the AppHost runs this
# (WRANGLER_PERSIST_DIR), else in .wrangler/ (ignored by git); rewritten at every start, mode 0600.
vars_dir=${WRANGLER_PERSIST_DIR:-.wrangler}
mkdir -p "$vars_dir"
vars_file="$vars_dir/worker.env"
(umask 077 && : >"$vars_file")
chmod 600 "$vars_file"
for name in AUTH_SECRET AUTH_JWKS_URL AUTH_ISSUER AUTH_AUDIENCE AUTH_ADMIN_CLAIM INTERNAL_SECRET \
  FILE_STORAGE R2_ENDPOINT R2_ACCOUNT_ID R2_BUCKET R2_ACCESS_KEY_ID R2_SECRET_ACCESS_KEY \
  CONTAINER_RUNTIME_URL CONTAINER_RUNTIME_TOKEN CONTAINER_ORIGIN CONTAINERS_SLEEP_AFTER LOCAL_WORKER_URL \
  OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_HEADERS OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES; do
  value=${!name:-}
  [[ -n "$value" ]] || continue
  # Double-quoted dotenv values: wrangler expands $NAME in them unless escaped; a quote, a backslash or a
  # line break could not be written back exactly, so such a value is refused.
  if [[ "$value" == *[\"\\]* || "$value" == *$'\n'* ]]; then
    echo "dev.sh: $name contains a double quote, a backslash or a line break, which the env file cannot carry" >&2
    exit 1
  fi
  printf '%s="%s"\n' "$name" "${value//\$/\\\$}" >>"$vars_file"
done
args+=(--env-file "$(realpath "$vars_file")")

# No interactive input: the orchestrator provides none.
exec wrangler dev src/dev/index.ts "${args[@]}" "$@" </dev/null
