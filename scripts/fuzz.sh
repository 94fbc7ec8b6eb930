#!/usr/bin/env bash
# Builds the cargo-fuzz targets (fuzz/) with nightly and runs each for SECONDS (default 60),
# after replaying every input kept in fuzz/regressions/<target>/. Exits non-zero on any crash,
# failed invariant or hang, naming the input; prints executions per second and coverage per
# target. SECONDS=0 builds and replays the regressions only.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain (`rustup toolchain install nightly --profile minimal`) and
# cargo-fuzz (`cargo install cargo-fuzz --locked`); exits 2 with that message without them.
# Corpora grow under fuzz/corpus/<target>/ (seeded on every run from engine/tests/fixtures/,
# webrtc/tests/fixtures/, RFC 5769's STUN vectors, and fuzz/seeds/<target>/: dimpl DTLS client
# flights and corecast-srtp SRTCP, which `fuzz/seeds` (a small crate of its own) writes);
# crashes land in fuzz/artifacts/<target>/. CORECAST_FUZZ_JOBS targets run at once (default:
# one per core).
#
# A crash becomes a hand-written test (engine/tests/fuzz_regressions.rs) and its input a file in
# fuzz/regressions/<target>/. The structure-aware targets (parameter_sets, ingress, shard) read
# their input through `arbitrary`: changing their input types changes what a kept input means,
# so re-find or drop those inputs then; the test is the lasting record.
# Lint the fuzz crate with: cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
# (not run here: it would build every dependency once more).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all=(rtp_header codec_inspect rtcp_packets parameter_sets ingress shard api_json sdp_offer stun
  dtls_entry srtcp_unprotect)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
jobs=${CORECAST_FUZZ_JOBS:-$(nproc)}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain; install it with: rustup toolchain install nightly --profile minimal" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

echo "== fuzz: format, lock file, build (nightly, debug assertions on)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo +nightly fetch --locked --manifest-path fuzz/Cargo.toml -q
# Safe Rust: a bad index or an overflow panics without AddressSanitizer, which would only slow
# the runs (the engine has no `unsafe`; the project's is in udp/ (corecast-udp), which no target
# reaches).
cargo +nightly fuzz build --sanitizer none
# cargo puts the binaries under CARGO_TARGET_DIR when that is set.
bin=${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release

# Seed corpora: the recordings' packets (as datagrams, and as payloads behind the codec's
# index for codec_inspect), RTCP packets of each kind the parser reads, API bodies, WHEP offers,
# STUN test vectors, and what fuzz/seeds/ holds (made with real peers, committed). The
# structure-aware targets (parameter_sets, ingress, shard) draw from the recordings themselves.
python3 - <<'PY'
import os, struct
fixtures = "engine/tests/fixtures"
def put(target, name, data):
    d = os.path.join("fuzz/corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)
codec_index = {"vp8": 0, "vp9": 1, "h264": 2, "h264-sets-once": 2, "h265": 3}
for stem, index in codec_index.items():
    data = open(os.path.join(fixtures, stem + ".rtp"), "rb").read()
    at, n = 0, 0
    while at + 2 <= len(data):
        (size,) = struct.unpack_from(">H", data, at)
        packet = data[at + 2 : at + 2 + size]
        at += 2 + size
        # Every fourth packet: the recordings repeat themselves, and libFuzzer reads a smaller
        # corpus faster.
        if n % 4 == 0:
            put("rtp_header", f"{stem}-{n:04}", packet)
            put("codec_inspect", f"{stem}-{n:04}", bytes([index]) + packet[12:])
        n += 1
def rtcp(pt, count, body):
    return bytes([0x80 | count, pt]) + struct.pack(">H", len(body) // 4) + body
block = struct.pack(">IIIIII", 0x0BADCAFE, 0x40000003, 0x0002FFF0, 273, 0x9F36432A, 150137)
sr = rtcp(200, 1, struct.pack(">IQIII", 0x902F9E2E, 0xDA8BD1FCDDDDA05A, 0xAAF4EDD5, 1, 2) + block)
rr = rtcp(201, 1, struct.pack(">I", 0x902F9E2E) + block)
sdes = rtcp(202, 1, struct.pack(">I", 0x902F9E2E) + b"\x01\x04cast\x00\x00")
pli = rtcp(206, 1, struct.pack(">II", 1, 0xABC00001))
fir = rtcp(206, 4, struct.pack(">IIII", 1, 0, 0xABC00001, 0x07000000))
nack = rtcp(205, 1, struct.pack(">IIHH", 1, 0xABC00001, 100, 0x8001))
bye = rtcp(203, 1, struct.pack(">I", 0x902F9E2E))
for name, data in [("sr", sr), ("rr", rr), ("pli", pli), ("fir", fir), ("nack", nack),
                   ("compound", sr + sdes + pli + nack), ("rr-bye", rr + bye)]:
    put("rtcp_packets", name, data)
# api_json: route byte, flags byte (0: JSON, right token, id "1"), body.
bodies = [
    (0, b'{"name":"cam1","codec":"vp8"}'),
    (0, b'{"name":"cam2","codec":"h264","parameter_sets":"Z0LACw==,aM48gA==","clock_rate":90000}'),
    (0, b'{"name":"cam3","codec":"h265","parameter_sets":"QAEMAQ==,QgEBAQ==,RALBcg==",'
        b'"port":40002,"latch":false,"feedback":"127.0.0.1:5005"}'),
    (1, b'{"source":1,"dest":"127.0.0.1:5004"}'),
    (2, b'[{"source":1,"dest":"127.0.0.1:5004"},{"source":2,"dest":"[::1]:5006"}]'),
    (3, b'{"source":2}'),
    (4, b''), (5, b''), (6, b''),
    (10, b'{"name":"main","video":1,"audio":2}'), (11, b''),
]
for i, (route, body) in enumerate(bodies):
    put("api_json", f"{i:02}", bytes([route, 0]) + body)
# The WHEP routes: flags bit 7 picks the WHEP media types (0: application/sdp, 1: trickle ICE),
# bit 6 the viewer token; PATCH takes an If-Match byte (1: the right ETag) before its body.
offer = open("webrtc/tests/fixtures/chrome_recvonly.sdp", "rb").read()
fragment = b"a=ice-ufrag:brws\r\na=ice-pwd:0123456789abcdefghijklmn\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
whep = [
    (12, 0x80, offer), (12, 0xC0, offer), (12, 0x90, offer),
    (13, 0xC1, bytes([1]) + fragment), (13, 0x81, bytes([2]) + fragment),
    (14, 0x04, b''), (15, 0x00, b''), (16, 0x40, b''), (17, 0x40, b''),
    (3, 0x40, b'{"channel":1}'), (3, 0x40, b'{"source":1}'), (5, 0x40, b''),
]
for i, (route, flags, body) in enumerate(whep):
    put("api_json", f"whep-{i:02}", bytes([route, flags]) + body)
# stun: RFC 5769's sample request and responses (checked against their MESSAGE-INTEGRITY and
# FINGERPRINT), each as the first datagram after its two-octet length.
vectors = {
    "rfc5769-request": "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573"
        "7420636c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a683676"
        "59202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf",
    "rfc5769-response-ipv4": "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420"
        "766563746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06b"
        "e7d780280004c07d4c96",
    "rfc5769-response-ipv6": "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420"
        "766563746f7220002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be6"
        "7bf11784c97c8292c275bfe3ed4180280004c8fb0b4c",
}
for name, hexed in vectors.items():
    datagram = bytes.fromhex(hexed)
    put("stun", name, struct.pack(">H", len(datagram)) + datagram)
# dtls_entry, srtcp_unprotect: the committed seeds of fuzz/seeds/.
for target in ("dtls_entry", "srtcp_unprotect"):
    d = os.path.join("fuzz/seeds", target)
    for name in sorted(os.listdir(d)):
        put(target, name.removeprefix("seed-"), open(os.path.join(d, name), "rb").read())
# sdp_offer: the WHEP offers of webrtc/tests/fixtures/.
sdp_fixtures = "webrtc/tests/fixtures"
for name in sorted(os.listdir(sdp_fixtures)):
    if name.endswith(".sdp"):
        put("sdp_offer", name[:-4], open(os.path.join(sdp_fixtures, name), "rb").read())
PY

mkdir -p target/fuzz
failed=()
# One target: replay its regressions, then fuzz. Writes target/fuzz/<target>.log.
run_one() {
  local t=$1 log=target/fuzz/$1.log
  local regressions=(fuzz/regressions/"$t"/*)
  : >"$log"
  if [ -e "${regressions[0]}" ]; then
    if ! "$bin/$t" "${regressions[@]}" >>"$log" 2>&1; then
      echo "REGRESSION: $t fails on an input kept in fuzz/regressions/$t/ (see $log)" >>"$log"
      return 1
    fi
  fi
  [ "$seconds" -gt 0 ] || return 0
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  "$bin/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${dict[@]}" "fuzz/corpus/$t" >>"$log" 2>&1
}

echo "== fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
pids=()
names=()
flush() {
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      failed+=("${names[$i]}")
    fi
  done
  pids=()
  names=()
}
for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "fuzz.sh: no target $t (targets: ${all[*]})" >&2; exit 2; }
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  [ ${#pids[@]} -lt "$jobs" ] || flush
done
flush

kept=$(find fuzz/regressions -type f 2>/dev/null | wc -l)
echo "fuzz: replayed the $kept inputs kept in fuzz/regressions/"
[ "$seconds" -gt 0 ] && printf '%-16s %12s %8s %8s %8s\n' target runs exec/s cov ft
for t in "${targets[@]}"; do
  [ "$seconds" -gt 0 ] || break
  # libFuzzer's closing status line: "#N DONE cov: C ft: F corp: ... exec/s: E ...".
  line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "target/fuzz/$t.log" | tail -1 || true)
  if [ -n "$line" ]; then
    runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$line")
    cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$line")
    ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<<"$line")
    eps=$(sed -E 's/.* exec\/s: ([0-9]+).*/\1/' <<<"$line")
    printf '%-16s %12s %8s %8s %8s\n' "$t" "$runs" "$eps" "$cov" "$ft"
  else
    printf '%-16s %12s\n' "$t" "-"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo
    echo "== fuzz: $t FAILED; the end of target/fuzz/$t.log:"
    grep -E -A12 'panicked at|REGRESSION|ERROR: libFuzzer|SUMMARY' "target/fuzz/$t.log" | head -40 || true
    grep -E '^artifact_prefix|Test unit written' "target/fuzz/$t.log" || true
  done
  echo
  echo "Reproduce with: $bin/<target> fuzz/artifacts/<target>/<crash file>"
  echo "Keep the input in fuzz/regressions/<target>/ and write its regression test (engine/tests/fuzz_regressions.rs)."
  exit 1
fi
echo "fuzz: every target ran clean"
