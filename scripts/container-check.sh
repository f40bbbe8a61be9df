#!/usr/bin/env bash
# Same image, same TOML: builds the unchanged UploadService/Dockerfile with podman, checks the image the
# way the Durable Object uses it (HTTP on port 8000, as the non-root user), then runs the AppHost in
# container mode (a container of the image per user) and checks round trips, two users' containers and
# one of them sleeping, and what an instance's network reaches, through the Worker.
#
#   bash scripts/container-check.sh
#
# Made for machines with no Docker engine and no reachable image registry (like CI here): podman with
# runc, and stand-in base images built locally and tagged with the exact names of the Dockerfile's FROM
# lines, so the Dockerfile is built as it is. Everything the script writes lives outside the repo, in
# $CONTAINER_CHECK_CACHE (default ~/.cache/upload-container-check); the stand-ins are kept there and in
# podman's storage and reused by the next run. Prints one "PASS name" or "FAIL name" line per check,
# "container-check: N passed, N failed" at the end, and exits non-zero when a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKERFILE=UploadService/Dockerfile
CACHE=${CONTAINER_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-container-check}
MINBASE=localhost/container-check/minbase:bookworm
APP_IMAGE=localhost/container-check/upload-service:latest
CHECK_USER=container-check
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

WORK=$(mktemp -d)
app_container="" apphost_pid="" s3_pid=""

CHECK_NAME=container-check
source scripts/checks.sh

cleanup() {
  if [ -n "$app_container" ]; then podman rm -f "$app_container" >/dev/null 2>&1 || true; fi
  if [ -n "$s3_pid" ]; then kill -TERM "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; fi
  if [ -n "$apphost_pid" ] && kill -0 "$apphost_pid" 2>/dev/null; then
    kill -TERM "$apphost_pid" 2>/dev/null || true
    wait "$apphost_pid" 2>/dev/null || true
  fi
  rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # so that a timeout or Ctrl+C still runs the cleanup

# ---------------------------------------------------------------------------------------------------------
step "prerequisites: podman, runc, debootstrap, nftables"
if [ "$(id -u)" != 0 ]; then
  fail "runs as root" "apt-get, debootstrap and rootful podman need root"; finish; exit 1
fi
missing=()
for tool in podman:podman runc:runc debootstrap:debootstrap nft:nftables nsenter:util-linux ip:iproute2 curl:curl python3:python3 sha256sum:coreutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
mkdir -p "$CACHE"
# crun rejects this machine kind's hybrid cgroups and raising ulimits is not permitted: runc, explicit
# limits. CONTAINERS_CONF is inherited by everything started below, the AppHost's orchestrator included.
cat >"$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$CACHE/containers.conf
podman --version
took prerequisites

# ---------------------------------------------------------------------------------------------------------
step "stand-in base images for the Dockerfile's FROM lines"
mapfile -t from_images < <(sed -nE 's/^FROM +(--platform=[^ ]+ +)?([^ ]+).*/\2/p' "$DOCKERFILE" | sort -u)
log "the Dockerfile uses: ${from_images[*]}"
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
dotnet_sdk=$(dotnet --version)
standin_key="dotnet-$dotnet_sdk/v4"   # a new version when the recipes below change

has_image_with_key() {
  [ "$(podman image inspect --format '{{ index .Labels "container-check.key" }}' "$1" 2>/dev/null || true)" = "$standin_key" ]
}

if ! podman image exists "$MINBASE"; then
  # Debian minbase with what the .NET runtime loads (ICU, OpenSSL, zlib) and the CA bundle; the mirror is
  # this machine's own apt source.
  mirror=$(sed -nE 's/^URIs: *([^ ]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1 || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { fail "minbase rootfs" "no Debian mirror found in the apt sources"; finish; exit 1; }
  log "debootstrap --variant=minbase bookworm (about a minute)"
  mkdir -p "$WORK/rootfs"
  debootstrap --variant=minbase --include=ca-certificates,libicu72,libssl3,zlib1g \
    bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log"; fail "minbase rootfs" "debootstrap failed"; finish; exit 1; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | podman import --quiet - "$MINBASE" >/dev/null
  rm -rf "$WORK/rootfs"
  log "imported $MINBASE"
else
  log "cached: $MINBASE"
fi

# The runtime stand-in: like mcr.microsoft.com/dotnet/aspnet, the shared runtimes (here: the host's) and
# user "app" with uid 1654.
cat >"$CACHE/aspnet.Containerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN mkdir -p /usr/share/dotnet/shared \
 && cp -a /host-dotnet/dotnet /host-dotnet/host /host-dotnet/LICENSE.txt /usr/share/dotnet/ \
 && cp -a /host-dotnet/shared/Microsoft.NETCore.App /host-dotnet/shared/Microsoft.AspNetCore.App /usr/share/dotnet/shared/ \
 && ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && echo 'app:x:1654:1654::/home/app:/bin/sh' >>/etc/passwd \
 && echo 'app:x:1654:' >>/etc/group \
 && mkdir -p /home/app && chown 1654:1654 /home/app
ENV APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true
EOF
# The runtime-deps stand-in: like mcr.microsoft.com/dotnet/runtime-deps:*-chiseled-extra, only the files of
# the package slices its Dockerfile cuts (glibc, libgcc, libstdc++, OpenSSL, ICU, tzdata, the CA bundle,
# os-release, users root and app), taken from the minbase onto an empty image: no shell, no package manager,
# so a Dockerfile step or a check that needs one fails here as it would on the original, and the image's size
# stands in for the original's.
cat >"$CACHE/runtime-deps.Containerfile" <<'EOF'
ARG BASE
FROM $BASE AS slices
RUN set -e; cd /; mkdir -p /rootfs/tmp /rootfs/home/app /rootfs/etc/ssl/certs /rootfs/usr/bin \
 && chmod 1777 /rootfs/tmp && chown 1654:1654 /rootfs/home/app \
 && for dir in bin lib lib64 sbin; do ln -s usr/$dir /rootfs/$dir; done \
 && lib=usr/lib/x86_64-linux-gnu \
 && tar -cf /slices.tar usr/lib64 $lib/ld-linux-x86-64.so.* \
      $lib/libc.so.* $lib/libm.so.* $lib/libpthread.so.* $lib/libdl.so.* $lib/librt.so.* $lib/libresolv.so.* \
      $lib/libutil.so.* $lib/libanl.so.* $lib/libnss_*.so.* $lib/libgcc_s.so.* $lib/libstdc++.so.* \
      $lib/libssl.so.* $lib/libcrypto.so.* $lib/engines-3 $lib/ossl-modules $lib/libicu*.so.* \
      usr/share/zoneinfo etc/ssl/certs/ca-certificates.crt etc/os-release usr/lib/os-release \
 && tar -C /rootfs -xf /slices.tar \
 && { echo 'root:x:0:0:root:/root:/usr/sbin/nologin'; echo 'app:x:1654:1654::/home/app:/usr/sbin/nologin'; } >/rootfs/etc/passwd \
 && { echo 'root:x:0:'; echo 'app:x:1654:'; } >/rootfs/etc/group
FROM scratch
COPY --from=slices /rootfs /
ENV APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true
USER 1654
EOF
# The SDK stand-in: the host's whole dotnet root, and the host's extra CA certificates, because restore
# inside the build goes out through the same TLS-intercepting proxy the host trusts.
cat >"$CACHE/sdk.Containerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN cp -a /host-dotnet /usr/share/dotnet \
 && ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && { cp /host-ca/*.crt /usr/local/share/ca-certificates/ 2>/dev/null || true; } \
 && update-ca-certificates >/dev/null \
 && echo 'app:x:1654:1654::/home/app:/bin/sh' >>/etc/passwd \
 && echo 'app:x:1654:' >>/etc/group
ENV APP_UID=1654 DOTNET_RUNNING_IN_CONTAINER=true DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    NUGET_CERT_REVOCATION_MODE=offline
EOF

for image in "${from_images[@]}"; do
  case "$image" in
    */dotnet/aspnet:*) recipe=aspnet ;;
    */dotnet/runtime-deps:*) recipe=runtime-deps ;;
    */dotnet/sdk:*) recipe=sdk ;;
    *) fail "stand-in for $image" "no recipe for this base image"; continue ;;
  esac
  if has_image_with_key "$image"; then log "cached: $image ($recipe stand-in)"; continue; fi
  t0=$SECONDS
  podman build --quiet --pull=never --build-arg "BASE=$MINBASE" --label "container-check.key=$standin_key" \
    -v "$dotnet_root:/host-dotnet:ro" -v /usr/local/share/ca-certificates:/host-ca:ro \
    -f "$CACHE/$recipe.Containerfile" -t "$image" "$CACHE" >/dev/null \
    || { fail "stand-in for $image"; continue; }
  log "built $image ($recipe stand-in) in $((SECONDS - t0)) s"
done
took "base images"

# ---------------------------------------------------------------------------------------------------------
step "build the image from the unchanged $DOCKERFILE"
# The build context is the repository root, as in worker/wrangler.toml (image_build_context = "..").
# The label says which commit the image is (the bench reports its size with it).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit plus uncommitted changes"
if podman build --pull=never --label "container-check.commit=$commit" -f "$DOCKERFILE" -t "$APP_IMAGE" . \
  >"$WORK/build.log" 2>&1; then
  pass "image builds from the unchanged $DOCKERFILE ($((SECONDS - step_start)) s)"
else
  tail -n 30 "$WORK/build.log"
  fail "image builds from the unchanged $DOCKERFILE"
  finish; exit 1
fi
# The image's size as podman counts it (uncompressed): the base stand-in, the same files as the original, plus
# the service's own layers.
final_base=$(sed -nE 's/^FROM +(--platform=[^ ]+ +)?([^ ]+).*/\2/p' "$DOCKERFILE" | tail -n 1)
mb() { echo $(( ($(podman image inspect --format "{{.Size}}" "$1") + 500000) / 1000000 )); }
log "image size: $(mb "$APP_IMAGE") MB ($final_base stand-in: $(mb "$final_base") MB)"
took "image build"

# ---------------------------------------------------------------------------------------------------------
step "run the image: HTTP on port 8000 as the non-root user"
# The image has no shell (nor do the chiseled originals), so these look from the host: the process's uid in
# the host's /proc (rootful podman maps no user namespace), the files through the container's mounted root.
container_uid() {
  local pid
  pid=$(podman inspect --format '{{.State.Pid}}' "$1" 2>/dev/null) && awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
}
data_owners() {
  local root
  root=$(podman mount "$1" 2>/dev/null) || return 0
  find "$root/data" -type f -printf '%U\n' 2>/dev/null | sort -u | tr '\n' ' '
  podman unmount "$1" >/dev/null 2>&1 || true
}
port=$(free_port)
app_container=container-check-$$
# The service accepts only requests signed with this key, as the Durable Object signs them (sign, checks.sh).
INTERNAL_SECRET=$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)
if ! podman run -d --rm --name "$app_container" --platform linux/amd64 -p "127.0.0.1:$port:8000" \
  -e INTERNAL_SECRET="$INTERNAL_SECRET" "$APP_IMAGE" >/dev/null; then
  fail "the image starts"; finish; exit 1
fi
base=http://127.0.0.1:$port
if wait_for_200 "$base/health" 60; then
  pass "container answers GET /health on port 8000 ($((SECONDS - step_start)) s after start)"
else
  podman logs "$app_container" 2>&1 | tail -n 20
  fail "container answers GET /health on port 8000"
fi

# Round trip: the stored file's sha256 (in the 201 body and as the download) equals the sent file's.
head -c 3000000 /dev/urandom >"$WORK/sample.bin"
expected=$(sha256sum "$WORK/sample.bin" | cut -d' ' -f1)
sign PUT /files/check/sample.bin
status=$(curl -s -o "$WORK/put.json" -w '%{http_code}' "${signed[@]}" \
  -H 'Content-Type: application/octet-stream' -T "$WORK/sample.bin" "$base/files/check/sample.bin" || true)
if [ "$status" = 201 ] && grep -q "\"sha256\":\"$expected\"" "$WORK/put.json"; then
  pass "PUT /files/check/sample.bin -> 201 with the sent file's sha256"
else
  fail "PUT /files/check/sample.bin -> 201 with the sent file's sha256" "status $status, body $(head -c 300 "$WORK/put.json")"
fi
sign GET /files/check/sample.bin
status=$(curl -s -o "$WORK/get.bin" -w '%{http_code}' "${signed[@]}" "$base/files/check/sample.bin" || true)
if [ "$status" = 200 ] && [ "$(sha256sum "$WORK/get.bin" | cut -d' ' -f1)" = "$expected" ]; then
  pass "GET /files/check/sample.bin returns the same bytes (sha256)"
else
  fail "GET /files/check/sample.bin returns the same bytes (sha256)" "status $status"
fi

# Bad input is refused with problem details.
sign PUT /files/a//b
status=$(curl -s -o "$WORK/bad.json" -w '%{http_code}|%{content_type}' "${signed[@]}" \
  --data-binary x -X PUT "$base/files/a//b" || true)
if [ "${status%%|*}" = 400 ] && [[ "${status#*|}" == application/problem+json* ]]; then
  pass "PUT /files/a//b (empty segment) -> 400 application/problem+json"
else
  fail "PUT /files/a//b (empty segment) -> 400 application/problem+json" "got $status"
fi

# Straight to the port with a forged user id and no signature: refused, nothing read.
status=$(curl -s -o "$WORK/forged.json" -w '%{http_code}|%{content_type}' -H "X-User-Id: $CHECK_USER" \
  "$base/files/check/sample.bin" || true)
if [ "${status%%|*}" = 401 ] && [[ "${status#*|}" == application/problem+json* ]]; then
  pass "GET with a forged X-User-Id and no signature -> 401 application/problem+json"
else
  fail "GET with a forged X-User-Id and no signature -> 401 application/problem+json" "got $status"
fi

# The service process runs as the Dockerfile's user, and that user owns what it stored.
uid=$(container_uid "$app_container")
if [ "$uid" = 1654 ]; then pass "the service runs as uid 1654 (non-root)"; else fail "the service runs as uid 1654 (non-root)" "uid '$uid'"; fi
owners=$(data_owners "$app_container")
if [ "$owners" = "1654 " ]; then pass "files under /data belong to uid 1654"; else fail "files under /data belong to uid 1654" "owners '$owners'"; fi

podman rm -f "$app_container" >/dev/null 2>&1 || true
app_container=""
took "container checks"

# ---------------------------------------------------------------------------------------------------------
step "in 256 MiB, Cloudflare's smallest instance (lite): 1 GiB by PUT and by tus on both backends, read back"
gib=$((1024 * 1024 * 1024)) chunk=$((50 * 1024 * 1024))
head -c "$gib" /dev/urandom >"$WORK/big.bin"
big_sha=$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
# read_back NAME: GETs /files/NAME and compares its sha256 with the sent file's.
read_back() {
  sign GET "/files/$1"
  [ "$(curl -s "${signed[@]}" "$base/files/$1" | sha256sum | cut -d' ' -f1)" = "$big_sha" ]
}
# in_lite BACKEND [VAR=value...]: runs the image with --memory=256m (no swap) and the settings given, uploads the
# 1 GiB file by PUT and by tus, reads both back, and checks that the container was never killed for memory. On the
# host network, as the AppHost's container mode runs it: the s3 backend's server is on this machine's loopback.
in_lite() {
  local backend=$1; shift
  local settings=() setting
  for setting in "$@"; do settings+=(-e "$setting"); done
  port=$(free_port)
  base=http://127.0.0.1:$port
  app_container=container-check-lite-$$
  if ! podman run -d --rm --name "$app_container" --platform linux/amd64 --memory=256m --memory-swap=256m \
    --network host -e ASPNETCORE_URLS="$base" -e INTERNAL_SECRET="$INTERNAL_SECRET" "${settings[@]}" "$APP_IMAGE" >/dev/null; then
    fail "$backend: the image starts with --memory=256m"; return
  fi
  wait_for_200 "$base/health" 60 || fail "$backend: the 256 MiB container answers /health"
  sign PUT /files/lite/put.bin
  status=$(curl -s -o "$WORK/put.json" -w '%{http_code}' "${signed[@]}" -T "$WORK/big.bin" "$base/files/lite/put.bin" || true)
  if [ "$status" = 201 ] && grep -q "\"sha256\":\"$big_sha\"" "$WORK/put.json" && read_back lite/put.bin; then
    pass "$backend: 1 GiB PUT in 256 MiB -> 201, read back with the same sha256"
  else
    fail "$backend: 1 GiB PUT in 256 MiB, read back" "status $status $(head -c 200 "$WORK/put.json")"
  fi
  # tus: creation, then 50 MiB PATCHes, as the upload page sends them.
  sign POST /uploads
  upload=$(curl -s -D - -o /dev/null "${signed[@]}" -X POST -H "Tus-Resumable: 1.0.0" -H "Upload-Length: $gib" \
    -H "Upload-Metadata: filename $(printf 'lite/tus.bin' | base64)" "$base/uploads" \
    | sed -nE 's#^[Ll]ocation: *https?://[^/]+(/[^\r]*)\r?$#\1#p')
  offset=0
  while [ -n "$upload" ] && [ "$offset" -lt "$gib" ]; do
    sign PATCH "$upload"
    next=$(curl -s -D - -o /dev/null "${signed[@]}" -X PATCH -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: $offset" \
      -H "Content-Type: application/offset+octet-stream" --data-binary @<(tail -c +$((offset + 1)) "$WORK/big.bin" | head -c "$chunk") \
      "$base$upload" | sed -nE 's/^[Uu]pload-[Oo]ffset: *([0-9]+).*/\1/p')
    [ -n "$next" ] && [ "$next" -gt "$offset" ] || break
    offset=$next
  done
  if [ "$offset" = "$gib" ] && read_back lite/tus.bin; then
    pass "$backend: 1 GiB tus upload (50 MiB PATCHes) in 256 MiB, read back with the same sha256"
  else
    fail "$backend: 1 GiB tus upload in 256 MiB, read back" "upload '$upload' reached offset $offset"
  fi
  oom=$(podman inspect --format '{{.State.OOMKilled}}' "$app_container" 2>/dev/null || echo gone)
  # The service's own peak RSS (the cgroup's figure would count the page cache of the 2 GiB written too).
  pid=$(podman inspect --format '{{.State.Pid}}' "$app_container" 2>/dev/null || echo 0)
  peak=$(awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$pid/status" 2>/dev/null || true)
  if [ "$oom" = false ]; then pass "$backend: never killed for memory (the service's peak RSS: ${peak:-?} MiB of 256)"
  else fail "$backend: never killed for memory" "OOMKilled: $oom"; fi
  podman rm -f "$app_container" >/dev/null 2>&1 || true
  app_container=""
}
in_lite filesystem
if start_s3rver "$WORK/s3" lite; then
  s3_settings lite
  in_lite "s3 backend" "${s3_env[@]}"
  kill -TERM "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true
  s3_pid=""
else
  fail "s3 backend: the local S3-compatible server answers" "npm ci in tests/s3-server"
fi
rm -f "$WORK/big.bin"
took "256 MiB"

# ---------------------------------------------------------------------------------------------------------
step "wrangler deploy --dry-run builds the image from wrangler.toml's [[containers]] entry"
# Without --containers-rollout=none, the dry run builds the image itself: `docker build --load --platform
# linux/amd64 --provenance=false -f - CONTEXT` with the Dockerfile on stdin. Podman 4.3 knows neither flag
# and cannot read node's stdin socket, so a small docker stand-in drops the two flags and spools stdin.
cat >"$WORK/docker" <<'WRAPPER'
#!/usr/bin/env bash
args=() spool=""
for arg in "$@"; do
  case "$arg" in
    --load|--provenance=*) ;;
    -) spool=$(mktemp); cat >"$spool"; args+=("$spool") ;;
    *) args+=("$arg") ;;
  esac
done
echo "docker $*" >>"$(dirname "$0")/docker-calls.log"
status=0; podman "${args[@]}" || status=$?
[ -z "$spool" ] || rm -f "$spool"
exit "$status"
WRAPPER
chmod +x "$WORK/docker"
(cd worker && WRANGLER_DOCKER_BIN="$WORK/docker" npx --no-install wrangler deploy --dry-run --outdir "$WORK/dry-run") \
  </dev/null >"$WORK/dry-run.log" 2>&1 && dry_run=0 || dry_run=$?
if [ "$dry_run" = 0 ] && grep -q -- '--dry-run: exiting now' "$WORK/dry-run.log" \
  && grep -q '^docker build .*--platform linux/amd64' "$WORK/docker-calls.log" \
  && ! grep -q '\[WARNING\]' "$WORK/dry-run.log"; then
  pass "wrangler deploy --dry-run builds the image for linux/amd64 and validates the TOML ($((SECONDS - step_start)) s)"
  sed 's/^/container-check:    wrangler ran: /' "$WORK/docker-calls.log"
else
  tail -n 30 "$WORK/dry-run.log"
  fail "wrangler deploy --dry-run builds the image for linux/amd64 and validates the TOML" "exit $dry_run"
fi
took "wrangler dry run"

# ---------------------------------------------------------------------------------------------------------
step "AppHost in container mode: a container of the image per user, through the Worker"
# The local container runtime builds the image itself (podman build) from the same Dockerfile and context and
# runs each user's instance as a container of it on the internal network upload-instances, whose only way out
# is the runtime's relay to the Worker's outbound route (storage and telemetry through the Durable Object).
# Instances sleep after SLEEP_AFTER seconds without requests.
export ASPIRE_CONTAINER_RUNTIME=podman
SLEEP_AFTER=12
# Every process started below inherits this marker: what still carries it after the stop is a leftover.
export CONTAINER_CHECK_RUN="run-$$-$RANDOM"
marked_processes() {   # "pid command" of each, leaving out this script's own shell tools
  local environ pid cmd
  for environ in /proc/[0-9]*/environ; do
    grep -qsz "^CONTAINER_CHECK_RUN=$CONTAINER_CHECK_RUN\$" "$environ" 2>/dev/null || continue
    pid=${environ#/proc/}; pid=${pid%/environ}
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in ''|bash|sh|grep|sed|awk|tr|cut|sort|uniq|xargs|cat|sleep|curl|basename) continue ;; esac
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100) && [ -n "$cmd" ] && echo "$pid $cmd"
  done
  return 0
}
worker_port=$(free_port)
data_root=$WORK/data
dotnet build AppHost -nologo -v q >"$WORK/apphost-build.log" 2>&1 || { tail -n 20 "$WORK/apphost-build.log"; fail "AppHost builds"; finish; exit 1; }
dotnet run --project AppHost --no-build -- \
  --upload-service container \
  --Containers:SleepAfter="${SLEEP_AFTER}s" \
  --Worker:Port="$worker_port" \
  --LocalData:Root="$data_root" \
  --ASPNETCORE_URLS="http://127.0.0.1:$(free_port)" \
  --ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL="http://127.0.0.1:$(free_port)" \
  --ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL="http://127.0.0.1:$(free_port)" \
  --ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL="http://127.0.0.1:$(free_port)" \
  </dev/null >"$WORK/apphost.log" 2>&1 &
apphost_pid=$!
worker=http://127.0.0.1:$worker_port
# The Worker waits for the runtime, which builds the image first: its /health means both are up.
if wait_for_200 "$worker/health" 300; then
  pass "AppHost (container mode) builds the image and starts the Worker ($((SECONDS - step_start)) s)"
else
  tail -n 40 "$WORK/apphost.log"
  fail "AppHost (container mode) builds the image and starts the Worker"
fi
if grep -q "upload-service runs as a container, one per user" "$WORK/apphost.log"; then
  pass "AppHost says: $(grep -o 'upload-service runs as a container.*' "$WORK/apphost.log" | head -n 1)"
else
  fail "AppHost logs that upload-service runs as a container, one per user"
fi

user_a=$CHECK_USER-a user_b=$CHECK_USER-b
token_a=$(cd worker && npm run -s token -- "$user_a" | tail -n 1) || token_a=""
token_b=$(cd worker && npm run -s token -- "$user_b" | tail -n 1) || token_b=""
status=$(curl -s -o "$WORK/wput.json" -w '%{http_code}' -H "Authorization: Bearer $token_a" \
  -T "$WORK/sample.bin" "$worker/files/through-worker/sample.bin" || true)
if [ "$status" = 201 ] && grep -q "\"sha256\":\"$expected\"" "$WORK/wput.json"; then
  pass "PUT through the Worker (a user's first request starts their container) -> 201 with the sent file's sha256"
else
  fail "PUT through the Worker (a user's first request starts their container) -> 201 with the sent file's sha256" "status $status, body $(head -c 300 "$WORK/wput.json" 2>/dev/null)"
fi
status=$(curl -s -o "$WORK/wget.bin" -w '%{http_code}' -H "Authorization: Bearer $token_a" "$worker/files/through-worker/sample.bin" || true)
if [ "$status" = 200 ] && [ "$(sha256sum "$WORK/wget.bin" | cut -d' ' -f1)" = "$expected" ]; then
  pass "GET through the Worker returns the same bytes (sha256)"
else
  fail "GET through the Worker returns the same bytes (sha256)" "status $status"
fi
status=$(curl -s -o "$WORK/wput-b.json" -w '%{http_code}' -H "Authorization: Bearer $token_b" -T "$WORK/sample.bin" "$worker/files/b.bin" || true)
[ "$status" = 201 ] || fail "PUT through the Worker for a second user -> 201" "status $status"

# One container of the image per user, each running the service as the Dockerfile's user.
instance_a=upload-instance-$user_a-1 instance_b=upload-instance-$user_b-1
running=$(podman ps --filter label=upload-instance --format '{{.Names}} {{.Image}}' | sort)
if grep -qx "$instance_a localhost/upload-service-instance:dev" <<<"$running" && grep -qx "$instance_b localhost/upload-service-instance:dev" <<<"$running"; then
  pass "two users -> two podman containers of the image built from the unchanged Dockerfile"
else
  fail "two users -> two podman containers of the image built from the unchanged Dockerfile" "running: $(tr '\n' ';' <<<"$running")"
fi
uid=$(container_uid "$instance_a")
if [ "$uid" = 1654 ]; then pass "the instance's service runs as uid 1654 (non-root)"; else fail "the instance's service runs as uid 1654 (non-root)" "uid '$uid'"; fi

# What an instance reaches: from inside user A's instance's network namespace (nsenter, the host's curl), as
# a compromised service would. Its own storage through the relay on the gateway, and nothing else: not user B's
# prefix, not the relay outside the outbound route, not the host's loopback (the Worker), not a server on all
# the host's addresses, not the host's own address or its next hop, not user B's instance.
pid_a=$(podman inspect --format '{{.State.Pid}}' "$instance_a" 2>/dev/null || echo 0)
ip_b=$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$instance_b" 2>/dev/null || true)
storage_a=$(tr '\0' '\n' <"/proc/$pid_a/environ" 2>/dev/null | sed -n 's/^Storage__S3__ServiceUrl=//p' || true)
relay=${storage_a#http://}; relay=${relay%%/*}
from_a() { nsenter --net="/proc/$pid_a/ns/net" curl -s -m 3 -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
hash_a=$(printf '%s' "$user_a" | sha256sum | cut -d' ' -f1) hash_b=$(printf '%s' "$user_b" | sha256sum | cut -d' ' -f1)
networks_a=$(podman inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$instance_a" 2>/dev/null || true)
own=$(from_a "$storage_a/files?list-type=2&prefix=users/$hash_a/") other=$(from_a "$storage_a/files?list-type=2&prefix=users/$hash_b/")
if [ "$networks_a" = "upload-instances " ] && [ "$own" = 200 ] && [ "$other" = 403 ]; then
  pass "the instance is on the internal network only; through the relay ($relay) its own storage prefix -> 200, the other user's -> 403"
else
  fail "the instance is on the internal network only; through the relay its own storage prefix -> 200, the other user's -> 403" \
    "networks '$networks_a', storage '${storage_a:0:60}', own $own, other $other"
fi
outside=$(from_a "http://$relay/health")
if [ "$outside" = 404 ]; then pass "the relay answers the instance 404 outside the outbound route"; else fail "the relay answers the instance 404 outside the outbound route" "got $outside"; fi
listener_port=$(free_port)
mkdir -p "$WORK/empty"
python3 -m http.server --bind 0.0.0.0 "$listener_port" --directory "$WORK/empty" >/dev/null 2>&1 &
listener_pid=$!
wait_for_200 "http://127.0.0.1:$listener_port/" 20 || true
host_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p') next_hop=$(ip -4 route show default | awk '{print $3; exit}')
reached=""
for target in "http://127.0.0.1:$worker_port/health" "http://${relay%:*}:$listener_port/" "http://$host_ip:$listener_port/" \
  "http://$next_hop/" "http://$ip_b:8000/health"; do
  code=$(from_a "$target")
  [ "$code" = 000 ] || reached+=" $target -> $code"
done
host_code=$(curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$host_ip:$listener_port/" || true)
kill "$listener_pid" 2>/dev/null || true; wait "$listener_pid" 2>/dev/null || true
if [ -z "$reached" ] && [ "$host_code" = 200 ] && [ -n "$ip_b" ] && [ -n "$host_ip" ]; then
  pass "the instance cannot reach the Worker on loopback, a server on all the host's addresses (the host can: 200), the host's address, its next hop or the other user's instance"
else
  fail "the instance cannot reach the Worker on loopback, a server on all the host's addresses, the host's address, its next hop or the other user's instance" \
    "reached:${reached:- nothing}; host itself $host_code; B at '$ip_b', host '$host_ip'"
fi

# Sleep: the second user goes quiet, the first keeps making requests; the second's container is removed
# after sleepAfter (SIGTERM, --rm), the first's keeps running, and the second's file is still there (the
# bucket) when their next request starts a new container.
deadline=$((SECONDS + SLEEP_AFTER + 90))
while podman container exists "$instance_b" && [ $SECONDS -lt $deadline ]; do
  curl -s -o /dev/null -H "Authorization: Bearer $token_a" "$worker/files" || true
  sleep 2
done
if ! podman container exists "$instance_b" && podman container exists "$instance_a"; then
  pass "the idle user's container slept (removed) while the busy user's kept running"
else
  fail "the idle user's container slept (removed) while the busy user's kept running" "$(podman ps -a --filter label=upload-instance --format '{{.Names}} {{.Status}}' | tr '\n' ';')"
fi
status=$(curl -s -o "$WORK/wget-b.bin" -w '%{http_code}' -H "Authorization: Bearer $token_b" "$worker/files/b.bin" || true)
if [ "$status" = 200 ] && [ "$(sha256sum "$WORK/wget-b.bin" | cut -d' ' -f1)" = "$expected" ] && podman container exists "upload-instance-$user_b-2"; then
  pass "the next request wakes a new container, which finds the file in the bucket"
else
  fail "the next request wakes a new container, which finds the file in the bucket" "status $status"
fi
log "processes of this run while it is up:$(marked_processes | awk '{n = split($2, p, "/"); print p[n]}' | sort | uniq -c | awk '{printf " %s x%s", $2, $1}')"

# Stop it the way a developer does (SIGTERM): nothing it started may survive.
kill -TERM "$apphost_pid" 2>/dev/null || true
deadline=$((SECONDS + 60))
while kill -0 "$apphost_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
if kill -0 "$apphost_pid" 2>/dev/null; then
  fail "AppHost exits on SIGTERM within 60 s"
  kill -KILL "$apphost_pid" 2>/dev/null || true
fi
apphost_pid=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
  leftovers=$(marked_processes; podman ps -a --filter label=upload-instance --format '{{.Names}}'
    for family in inet bridge; do
      if nft list table "$family" upload_instances >/dev/null 2>&1; then echo "nft table $family upload_instances"; fi
    done)
  [ -z "$leftovers" ] && break
  sleep 1
done
if [ -z "$leftovers" ]; then
  pass "after SIGTERM no container, workerd, dcp or firewall rule of this run is left ($((SECONDS - step_start)) s)"
else
  fail "after SIGTERM no container, workerd, dcp or firewall rule of this run is left" "$(echo "$leftovers" | tr '\n' ';')"
fi
took "AppHost container mode"
finish
