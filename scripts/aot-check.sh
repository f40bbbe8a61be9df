#!/usr/bin/env bash
# The upload service compiled with Native AOT: publishes it (no warnings allowed), measures its start and
# idle memory, and checks that the native binary answers the whole API the way the Durable Object calls it
# (signed requests): PUT, multipart, list, GET with Range, HEAD, DELETE, tus creation, PATCH, HEAD and
# termination, problem+json errors, settings from the environment, and the s3 backend against the local
# S3-compatible server (tests/s3-server, `npm ci` there first).
#
#   bash scripts/aot-check.sh
#
# Native AOT needs clang and zlib's headers; run as root, the script installs them from Debian's packages.
# Prints one "PASS name" or "FAIL name" line per check, "aot-check: N passed, N failed" at the end, and
# exits non-zero when a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK_NAME=aot-check
CHECK_USER=aot-check
STARTS=10
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
source scripts/checks.sh

WORK=$(mktemp -d)
service_pid="" s3_pid=""
stop_service() {
  if [ -n "$service_pid" ]; then kill -TERM "$service_pid" 2>/dev/null || true; wait "$service_pid" 2>/dev/null || true; fi
  service_pid="" port=""
}
cleanup() {
  stop_service
  if [ -n "$s3_pid" ]; then kill -TERM "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; fi
  rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# ---------------------------------------------------------------------------------------------------------
step "prerequisites: clang, zlib"
clang=$(command -v clang || compgen -c clang- | grep -E '^clang-[0-9]+$' | sort -t- -k2 -n | tail -n 1 || true)
if [ -z "$clang" ] || [ ! -f /usr/include/zlib.h ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing clang and zlib1g-dev (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang zlib1g-dev >/dev/null
    clang=$(command -v clang || true)
  fi
fi
if [ -z "$clang" ] || [ ! -f /usr/include/zlib.h ]; then
  fail "clang and zlib's headers are installed" "apt-get install clang zlib1g-dev"; finish; exit 1
fi
log "clang: $clang"

# ---------------------------------------------------------------------------------------------------------
step "publish with Native AOT"
if dotnet publish UploadService -c Release -r linux-x64 -p:PublishAot=true -p:CppCompilerAndLinker="$clang" \
  -o "$WORK/native" -nologo >"$WORK/publish.log" 2>&1; then
  warnings=$(grep -cE ': warning [A-Z]+[0-9]+' "$WORK/publish.log" || true)
  if [ "$warnings" -eq 0 ]; then pass "dotnet publish -p:PublishAot=true, no warnings"
  else grep -E ': warning ' "$WORK/publish.log" | sort -u | head -n 20; fail "dotnet publish -p:PublishAot=true, no warnings" "$warnings warnings"; fi
else
  tail -n 30 "$WORK/publish.log"; fail "dotnet publish -p:PublishAot=true"; finish; exit 1
fi
binary=$WORK/native/UploadService
log "binary: $(du -h "$binary" | cut -f1)"
took "publish"

# start_service [VAR=value...]: runs the native binary on a free port with a fresh data directory.
INTERNAL_SECRET=$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)
start_service() {
  port=${port:-$(free_port)}
  base=http://127.0.0.1:$port
  rm -rf "$WORK/data" && mkdir "$WORK/data"
  # From its own folder, as in the image (WORKDIR /app): the content root, where appsettings.json is.
  (cd "$(dirname "$binary")" && exec env INTERNAL_SECRET="$INTERNAL_SECRET" ASPNETCORE_URLS="$base" Storage__Root="$WORK/data" \
    OTEL_EXPORTER_OTLP_ENDPOINT= "$@" "$binary") >"$WORK/service.log" 2>&1 &
  service_pid=$!
}

# ---------------------------------------------------------------------------------------------------------
step "start-up: exec → first /health 200, $STARTS starts"
starts=()
for _ in $(seq "$STARTS"); do
  port=$(free_port)
  t0=$(date +%s%N)
  start_service
  until curl -sf -o /dev/null "$base/health"; do
    sleep 0.02   # each curl costs a process start; polling without a pause takes CPU from the service
    kill -0 "$service_pid" 2>/dev/null || { tail -n 20 "$WORK/service.log"; fail "the native binary starts"; finish; exit 1; }
    [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 30 ] || { fail "the native binary answers /health within 30 s"; finish; exit 1; }
  done
  starts+=($(( ($(date +%s%N) - t0) / 1000000 )))
  rss=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$service_pid/status")
  stop_service
done
median=$(printf '%s\n' "${starts[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }')
pass "the native binary answers /health: median ${median} ms after exec (${starts[*]} ms; polled with curl), ${rss} MiB RSS"
took "start-up"

# ---------------------------------------------------------------------------------------------------------
step "the whole API, filesystem store"
start_service
wait_for_200 "$base/health" 30 || { fail "the native binary starts"; finish; exit 1; }

# check NAME EXPECTED_STATUS METHOD TARGET [curl args...]: a signed request; the body is in $WORK/body.
check() {
  local name=$1 expected=$2 method=$3 target=$4; shift 4
  sign "$method" "$target"
  # HEAD with --head: with -X HEAD curl would wait for the body that Content-Length announces.
  local how=(-X "$method"); [ "$method" = HEAD ] && how=(--head)
  response=$(curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}|%{content_type}' "${how[@]}" "${signed[@]}" "$@" "$base$target" || true)
  status=${response%%|*} content_type=${response#*|}
  if [ "$status" = "$expected" ]; then return 0; fi
  fail "$name" "status $status, expected $expected: $(head -c 300 "$WORK/body")"
  return 1
}
header() { grep -i "^$1:" "$WORK/headers" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }
problem() { [[ "$content_type" == application/problem+json* ]] && grep -q '"status":'"$1" "$WORK/body"; }

head -c 3000000 /dev/urandom >"$WORK/sample.bin"
sha=$(sha256sum "$WORK/sample.bin" | cut -d' ' -f1)
# expect NAME CONDITION: after a check's status matched, the answer's content decides.
expect() { if eval "$2"; then pass "$1"; else fail "$1" "$(head -c 300 "$WORK/body")"; fi; }
same_as_sample() { [ "$(sha256sum "$WORK/body" | cut -d' ' -f1)" = "$sha" ]; }

check "PUT a file" 201 PUT /files/aot/sample.bin -T "$WORK/sample.bin" \
  && expect "PUT /files/aot/sample.bin -> 201 with its sha256" 'grep -q "\"sha256\":\"$sha\"" "$WORK/body"'
check "GET the file" 200 GET /files/aot/sample.bin \
  && expect "GET returns the same bytes" same_as_sample
check "GET a range" 206 GET /files/aot/sample.bin -H "Range: bytes=1000-1999" \
  && expect "GET with Range -> 206 with those bytes and Content-Range" \
    'cmp -s "$WORK/body" <(tail -c +1001 "$WORK/sample.bin" | head -c 1000) && [ "$(header Content-Range)" = "bytes 1000-1999/3000000" ]'
check "HEAD the file" 200 HEAD /files/aot/sample.bin \
  && expect "HEAD -> 200 with Content-Length and ETag" '[ "$(header Content-Length)" = 3000000 ] && [ "$(header ETag)" = "\"$sha\"" ]'
printf 'one' >"$WORK/one.txt"; printf 'second' >"$WORK/two.txt"
check "multipart POST" 201 POST "/files?prefix=aot/multi" -F "file=@$WORK/one.txt" -F "file=@$WORK/two.txt" \
  && expect "multipart POST of two files -> 201 with both" \
    'grep -q "\"name\":\"aot/multi/one.txt\",\"size\":3" "$WORK/body" && grep -q "\"name\":\"aot/multi/two.txt\",\"size\":6" "$WORK/body"'
check "list" 200 GET "/files?prefix=aot/&limit=2" \
  && expect "GET /files?prefix=&limit= -> a page in name order with nextCursor" \
    'grep -q "\"files\":\[{\"name\":\"aot/multi/one.txt\"" "$WORK/body" && grep -q "\"nextCursor\":\"" "$WORK/body"'
check "DELETE the file" 204 DELETE /files/aot/sample.bin && pass "DELETE -> 204"
check "GET a deleted file" 404 GET /files/aot/sample.bin && expect "GET a deleted file -> 404 problem+json" 'problem 404'
check "a bad name" 400 PUT /files/a//b --data-binary x && expect "PUT /files/a//b -> 400 problem+json" 'problem 400'
status=$(curl -s -o "$WORK/body" -w '%{http_code}|%{content_type}' -H "X-User-Id: $CHECK_USER" "$base/files" || true)
content_type=${status#*|}
expect "an unsigned request -> 401 problem+json" '[ "${status%%|*}" = 401 ] && problem 401'
check "GET /" 404 GET / && expect "GET / -> 404 problem+json (no route: the Worker forwards only /files and /uploads)" 'problem 404'

# tus 1.0.0: creation, two PATCHes with a HEAD between them, and termination of a second upload.
tus=(-H "Tus-Resumable: 1.0.0")
chunk=(-H "Content-Type: application/offset+octet-stream")
half=1500000
if check "tus creation" 201 POST /uploads "${tus[@]}" -H "Upload-Length: 3000000" -H "Upload-Metadata: filename $(printf 'aot/tus.bin' | base64)"; then
  upload=$(header Location | sed -E 's#^https?://[^/]+##')
  pass "tus POST /uploads -> 201 with a Location ($upload)"
  check "tus PATCH" 204 PATCH "$upload" "${tus[@]}" "${chunk[@]}" -H "Upload-Offset: 0" --data-binary @<(head -c "$half" "$WORK/sample.bin") \
    && expect "tus PATCH of the first half -> 204, Upload-Offset $half" '[ "$(header Upload-Offset)" = "$half" ]'
  check "tus HEAD" 200 HEAD "$upload" "${tus[@]}" && expect "tus HEAD -> Upload-Offset $half" '[ "$(header Upload-Offset)" = "$half" ]'
  check "tus PATCH" 204 PATCH "$upload" "${tus[@]}" "${chunk[@]}" -H "Upload-Offset: $half" --data-binary @<(tail -c +$((half + 1)) "$WORK/sample.bin") \
    && pass "tus PATCH of the rest -> 204"
  check "the finished tus upload" 200 GET /files/aot/tus.bin && expect "the finished tus upload is a file with the same bytes" same_as_sample
fi
if check "tus creation" 201 POST /uploads "${tus[@]}" -H "Upload-Length: 10" -H "Upload-Metadata: filename $(printf 'aot/gone.bin' | base64)"; then
  upload=$(header Location | sed -E 's#^https?://[^/]+##')
  check "tus termination" 204 DELETE "$upload" "${tus[@]}" && pass "tus DELETE (termination) -> 204"
  check "tus HEAD after termination" 404 HEAD "$upload" "${tus[@]}" && pass "tus HEAD of a terminated upload -> 404"
fi
stop_service
took "the API"

# ---------------------------------------------------------------------------------------------------------
step "settings from the environment (configuration binding)"
start_service Upload__MaxFileBytes=1000
wait_for_200 "$base/health" 30 || { fail "the native binary starts"; finish; exit 1; }
check "a file over Upload:MaxFileBytes" 413 PUT /files/too-big.bin --data-binary @<(head -c 2000 /dev/zero) \
  && expect "Upload__MaxFileBytes=1000: a 2000-byte PUT -> 413 problem+json" 'problem 413'
stop_service

# ---------------------------------------------------------------------------------------------------------
step "the s3 backend (AWSSDK.S3) against the local S3-compatible server"
if start_s3rver "$WORK/s3" uploads; then
  s3_settings uploads
  start_service "${s3_env[@]}"
  if wait_for_200 "$base/health" 30; then
    check "PUT to the bucket" 201 PUT /files/aot/s3.bin -T "$WORK/sample.bin" \
      && expect "s3 backend: PUT -> 201 with its sha256" 'grep -q "\"sha256\":\"$sha\"" "$WORK/body"'
    check "GET from the bucket" 200 GET /files/aot/s3.bin && expect "s3 backend: GET returns the same bytes" same_as_sample
  else
    tail -n 20 "$WORK/service.log"; fail "the native binary starts on the s3 backend"
  fi
  stop_service
else
  fail "the local S3-compatible server answers" "npm ci in tests/s3-server"
fi
took "the s3 backend"

finish
