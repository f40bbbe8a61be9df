# What scripts/container-check.sh and scripts/aot-check.sh share: counted checks, and requests signed as the
# Durable Object signs them. Source it after setting CHECK_NAME (the prefix of the log lines and the totals);
# sign reads CHECK_USER and INTERNAL_SECRET.

passed=0 failed=0
script_start=$SECONDS
step_start=$SECONDS

log() { echo "$CHECK_NAME: $*"; }
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
step() { step_start=$SECONDS; echo; log "== $*"; }
took() { log "   $1 took $((SECONDS - step_start)) s"; }
# Prints the totals line that .ci/run reads; fails when a check failed.
finish() {
  log "total $((SECONDS - script_start)) s"
  echo "$CHECK_NAME: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Polls a URL until it answers 200 or the deadline ($2 seconds) passes.
wait_for_200() {
  local url=$1 deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)" = 200 ]; then return 0; fi
    sleep 1
  done
  return 1
}

# sign METHOD TARGET [METHOD_OVERRIDE]: sets $signed to curl's header arguments for that request
# (UploadService/Security/InternalSignature.cs).
sign() {
  local ts mac
  ts=$(date +%s)
  mac=$(python3 -c 'import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), "\n".join(["v1", *sys.argv[2:]]).encode(), hashlib.sha256).hexdigest())' \
    "$INTERNAL_SECRET" "$ts" "$1" "${3:-}" "$2" "$CHECK_USER")
  signed=(-H "X-User-Id: $CHECK_USER" -H "X-Internal-Timestamp: $ts" -H "X-Internal-Signature: v1=$mac")
}

# start_s3rver DIR BUCKET: the local S3-compatible server (tests/s3-server, `npm ci` there first) on a free port of
# 127.0.0.1, storing under DIR, with BUCKET; sets s3_port and s3_pid (the caller stops it). Fails when s3rver is
# not installed or does not answer within 10 s.
start_s3rver() {
  local script=tests/s3-server/node_modules/s3rver/bin/s3rver.js
  [ -f "$script" ] || return 1
  s3_port=$(free_port)
  node "$script" --directory "$1" --address 127.0.0.1 --port "$s3_port" --configure-bucket "$2" --no-vhost-buckets \
    --silent >"$1.log" 2>&1 &
  s3_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && return 0; sleep 0.1; done
  return 1
}

# The upload service's settings for the s3 backend on that server (s3rver's built-in account).
s3_settings() {
  s3_env=(Storage__Provider=s3 Storage__S3__ServiceUrl="http://127.0.0.1:$s3_port" Storage__S3__Bucket="$1"
    Storage__S3__AccessKeyId=S3RVER Storage__S3__SecretAccessKey=S3RVER Storage__S3__Region=auto)
}
