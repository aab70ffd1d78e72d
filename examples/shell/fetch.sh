#!/usr/bin/env bash
# fetch.sh — export the agent operation records of one time window from a CC-FS server
# (ccfs or any CC-FS compatible one): generate, wait, download, verify.
#
# Needs bash, curl, openssl and the usual POSIX tools (od, sed, grep, tr, date, mkdir, mv).
#
# Usage:
#   export CCFS_SERVER=https://127.0.0.1:28443   # the server's base URL
#   export CCFS_AK=<appId> CCFS_SK=<secretKey>    # the developer's credentials
#   export CCFS_CA_CERT=ccfs-data/tls/cert.pem    # optional: PEM of a self-signed server
#   ./fetch.sh "2024-05-01 00:00:00" "2024-05-02 00:00:00" exports
#
#   ./fetch.sh --self-test     # checks the signer against the test vectors of SPEC section 3
#
# Optional: CCFS_CALLBACK_URL (default https://127.0.0.1:9/unused: this script polls the status
# extension instead of receiving the callback), CCFS_TIMEOUT (seconds to wait for the export,
# default 600).
#
# Signing: auth-v2 over content-length;content-type;host with a SECONDS timestamp
# (yyyy-MM-ddTHH:mm:ssZ). See docs/integrating.md for the recipe.
#
# Prints, on success (stdout):
#   responseId  <32 hex>
#   file        <yyyyMMdd_responseId.zip>
#   size        <bytes>
#   recordCount <records in the export>
#   sha256      <hex> (verified)
#   saved       <path of the zip>
# Progress goes to stderr. Exit status: 0 done, 1 failed, 2 wrong usage.

set -euo pipefail

JSON_TYPE='application/json;charset=UTF-8'
BASE_PATH='/CCFS/resource/ccfs'

die() {
    printf 'fetch.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '7,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- auth-v2 ------------------------------------------------------------------------------

# NORM(s): every UTF-8 byte outside A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex).
norm() {
    local out='' b ch
    for b in $(printf '%s' "$1" | od -An -v -tx1 | tr 'a-f' 'A-F'); do
        case $b in
            3[0-9] | 4[1-9A-F] | 5[0-9A] | 6[1-9A-F] | 7[0-9A] | 2D | 2E | 5F | 7E)
                printf -v ch "\\x$b"
                out+=$ch
                ;;
            *) out+="%$b" ;;
        esac
    done
    printf '%s' "$out"
}

# HEX(HMAC-SHA256(key, message)); the key is used as the string given. openssl takes the key
# on its command line, visible in the process list while it runs: fine on your own machine, not
# on a shared one (see examples/README.md).
hmac_hex() {
    printf '%s' "$2" | openssl dgst -sha256 -hmac "$1" | sed 's/^.*= *//'
}

# auth_header AK SK TIMESTAMP METHOD PATH BODY NAME:VALUE...
# Prints the Authorization value. Header names must be lower case and given in sorted order;
# the request has no query, so the canonical request has no query line.
auth_header() {
    local ak=$1 sk=$2 ts=$3 method=$4 path=$5 body=$6
    shift 6
    local names='' lines='' h
    for h in "$@"; do
        names+="${names:+;}${h%%:*}"
        lines+="$(norm "${h%%:*}"):$(norm "${h#*:}")"$'\n'
    done
    local prefix="auth-v2/$ak/$ts/$names"
    # The signing key is the 64-character hex STRING, not the raw 32 bytes.
    local key
    key=$(hmac_hex "$sk" "$prefix")
    local canonical="$method"$'\n'"$path"$'\n'"$names"$'\n'"$lines"
    if [ -n "$body" ]; then
        canonical+=$(norm "$body")
    fi
    printf '%s/%s' "$prefix" "$(hmac_hex "$key" "$canonical")"
}

self_test() {
    local body='{"request":{"version":"2.0"},"msgBody":{"beginTime":"2024-05-01 00:00:00","endTime":"2024-05-02 00:00:00","callBackURL":"https://example.com/ccfs/cb"}}'
    local path="$BASE_PATH/queryAgentOprInfoData" ak=globalaktest
    local sk=1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p host=10.22.26.181:28080 got want
    got=$(auth_header "$ak" "$sk" 2021-08-31T09:38:50.872Z POST "$path" "$body" \
        content-length:151 "content-type:$JSON_TYPE" "host:$host")
    want='auth-v2/globalaktest/2021-08-31T09:38:50.872Z/content-length;content-type;host/0dced0b657b515e45538b8f6815a609265142fde2924e90f94c281b919924771'
    [ "$got" = "$want" ] || die "self-test V1: got $got"
    got=$(auth_header "$ak" "$sk" 2021-08-31T09:38:50Z POST "$path" "$body" "host:$host")
    want='auth-v2/globalaktest/2021-08-31T09:38:50Z/host/4f8d9f430bc4e9d50201e11eb6b2400f5a7ed4148752453b99c963519886c724'
    [ "$got" = "$want" ] || die "self-test V2: got $got"
    echo 'self-test: V1 and V2 signatures match SPEC section 3'
}

# ---- requests -----------------------------------------------------------------------------

CURL_TLS=()

# call INTERFACE MSGBODY_JSON: sends a signed request; prints the answer if it is a success
# envelope, else dies with its result code.
call() {
    local path="$BASE_PATH/$1"
    local body="{\"request\":{\"version\":\"2.0\"},\"msgBody\":$2}"
    local length ts auth answer status
    length=$(printf '%s' "$body" | wc -c | tr -d ' ')
    ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    auth=$(auth_header "$CCFS_AK" "$CCFS_SK" "$ts" POST "$path" "$body" \
        "content-length:$length" "content-type:$JSON_TYPE" "host:$HOST")
    answer=$(mktemp)
    status=$(curl -sS --max-time 60 ${CURL_TLS[@]+"${CURL_TLS[@]}"} -o "$answer" -w '%{http_code}' \
        -X POST "$SERVER$path" \
        -H "Host: $HOST" -H "Content-Type: $JSON_TYPE" -H "Authorization: $auth" \
        --data-binary "$body") || {
        rm -f "$answer"
        die "$1: no answer from $SERVER"
    }
    local text
    text=$(cat "$answer")
    rm -f "$answer"
    check_envelope "$1" "$status" "$text"
    printf '%s' "$text"
}

# check_envelope INTERFACE HTTP_STATUS TEXT: dies unless TEXT is a success envelope.
check_envelope() {
    local code desc
    code=$(printf '%s' "$3" | grep -o '"resultCode":"[^"]*"' | head -n 1 | sed 's/.*:"//; s/"$//') || true
    if [ -z "$code" ]; then
        die "$1: not a CC-FS answer (HTTP $2): $(printf '%s' "$3" | head -c 300)"
    fi
    if [ "$code" != 0 ]; then
        desc=$(printf '%s' "$3" | grep -o '"resultDesc":"[^"]*"' | head -n 1 | sed 's/.*:"//; s/"$//') || true
        die "$1: HTTP $2, resultCode $code: $desc"
    fi
}

# string_field NAME TEXT: the first "NAME":"value" in TEXT.
string_field() {
    printf '%s' "$2" | grep -o "\"$1\":\"[^\"]*\"" | head -n 1 | sed 's/.*:"//; s/"$//' || true
}

# number_field NAME TEXT: the first "NAME":123 in TEXT.
number_field() {
    printf '%s' "$2" | grep -o "\"$1\":[0-9]*" | head -n 1 | sed 's/.*://' || true
}

# ---- main ---------------------------------------------------------------------------------

if [ "${1:-}" = --self-test ]; then
    self_test
    exit 0
fi
[ $# -eq 3 ] || usage
BEGIN=$1 END=$2 OUT_DIR=$3
: "${CCFS_SERVER:?set CCFS_SERVER to the server URL, e.g. https://127.0.0.1:28443}"
: "${CCFS_AK:?set CCFS_AK to the appId}"
: "${CCFS_SK:?set CCFS_SK to the secret key}"
CALLBACK_URL=${CCFS_CALLBACK_URL:-https://127.0.0.1:9/unused}
TIMEOUT=${CCFS_TIMEOUT:-600}

for t in "$BEGIN" "$END"; do
    [[ $t =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] ||
        die "times are yyyy-MM-dd HH:mm:ss, not: $t"
done
case $CALLBACK_URL in *[\"\\]*) die "CCFS_CALLBACK_URL must not contain quotes or backslashes" ;; esac

SERVER=${CCFS_SERVER%/}
# The Host header is sent explicitly, so the value signed is the value sent.
HOST=${SERVER#*://}
HOST=${HOST%%/*}
if [ -n "${CCFS_CA_CERT:-}" ]; then
    [ -r "$CCFS_CA_CERT" ] || die "cannot read CCFS_CA_CERT $CCFS_CA_CERT"
    CURL_TLS=(--cacert "$CCFS_CA_CERT")
fi

# 1. Generate.
answer=$(call queryAgentOprInfoData \
    "{\"beginTime\":\"$BEGIN\",\"endTime\":\"$END\",\"callBackURL\":\"$CALLBACK_URL\"}")
ID=$(string_field responseId "$answer")
[ -n "$ID" ] || die "generate: no responseId in $answer"
echo "generated $ID, waiting" >&2

# 2. Wait: poll the status extension until the job is finished.
deadline=$((SECONDS + TIMEOUT))
while :; do
    answer=$(call queryAgentOprInfoStatus "{\"responseId\":\"$ID\"}")
    # The callback object has a "state" of its own: drop it before reading the job's state.
    job=$(printf '%s' "$answer" | sed 's/"callback":{[^}]*}//')
    state=$(string_field state "$job")
    case $state in
        succeeded) break ;;
        failed | expired | cancelled) die "export $ID $state: $(string_field error "$job")" ;;
        queued | running) ;;
        *) die "status: unexpected state '$state' in $answer" ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || die "export $ID still $state after ${TIMEOUT}s"
    sleep 0.3
done
NAME=$(string_field agentOprInfoFileName "$job")
RECORDS=$(number_field recordCount "$job")
[[ $NAME =~ ^[0-9]{8}_[0-9a-f]{32}\.zip$ ]] || die "status: bad file name '$NAME'"

# 3. Download: success is told by the Content-Type, an error is a JSON envelope.
mkdir -p "$OUT_DIR"
part="$OUT_DIR/$NAME.part"
headers=$(mktemp)
trap 'rm -f "$headers" "$part"' EXIT
path="$BASE_PATH/downloadAgentOprInfoFile"
body="{\"request\":{\"version\":\"2.0\"},\"msgBody\":{\"agentOprInfoFileName\":\"$NAME\"}}"
length=$(printf '%s' "$body" | wc -c | tr -d ' ')
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
auth=$(auth_header "$CCFS_AK" "$CCFS_SK" "$ts" POST "$path" "$body" \
    "content-length:$length" "content-type:$JSON_TYPE" "host:$HOST")
status=$(curl -sS --max-time 3600 ${CURL_TLS[@]+"${CURL_TLS[@]}"} -D "$headers" -o "$part" -w '%{http_code}' \
    -X POST "$SERVER$path" \
    -H "Host: $HOST" -H "Content-Type: $JSON_TYPE" -H "Authorization: $auth" \
    --data-binary "$body") || die "download: no answer from $SERVER"
header() {
    grep -i "^$1:" "$headers" | tail -n 1 | tr -d '\r' | sed 's/^[^:]*: *//' || true
}
ctype=$(header content-type)
case $(printf '%s' "$ctype" | tr 'A-Z' 'a-z') in
    application/octet-stream*) ;;
    *)
        check_envelope download "$status" "$(head -c 4096 "$part")"
        die "download: HTTP $status, Content-Type '$ctype'"
        ;;
esac
[ "$status" = 200 ] || die "download: HTTP $status"
want=$(header x-checksum-sha256 | tr 'A-F' 'a-f')
got=$(openssl dgst -sha256 -r "$part" | cut -d' ' -f1)
[ -n "$want" ] || die "download: no X-Checksum-Sha256 header"
[ "$got" = "$want" ] || die "download: SHA-256 $got does not match X-Checksum-Sha256 $want"
SIZE=$(wc -c <"$part" | tr -d ' ')
mv "$part" "$OUT_DIR/$NAME"

printf 'responseId  %s\nfile        %s\nsize        %s\nrecordCount %s\nsha256      %s (verified)\nsaved       %s\n' \
    "$ID" "$NAME" "$SIZE" "$RECORDS" "$got" "$OUT_DIR/$NAME"
