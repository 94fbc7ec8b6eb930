#!/usr/bin/env bash
# Re-records the RTP fixtures read by engine/tests/codec_fixtures.rs from real encoders and
# payloaders (GStreamer), so the codec detectors are checked against bytes we did not write.
#
# Usage: scripts/record-fixtures.sh [name...]   (default: vp8 vp9 h264 h264-sets-once h265 av1)
#
# Needs gst-launch-1.0 with vpx, x264, x265 and the rtp plugins; on Debian/Ubuntu:
#   apt-get install gstreamer1.0-tools gstreamer1.0-plugins-{base,good,bad,ugly}
# AV1 needs av1enc (aom, in plugins-bad). Its RTP payloader, rtpav1pay, only exists in
# gst-plugins-rs, which Debian 12 does not package, so av1 records av1.obu: the encoder's temporal
# units as a raw OBU stream (AV1 spec section 5, "low overhead bitstream format"), and then
# packetizes it into av1.rtp with webrtc-rs's AV1 payloader (engine/examples/packetize_av1.rs).
# Without av1enc it packetizes the av1.obu already there.
#
# Every stream is 30 frames of 160x120 at 15 fps (2 s) with a keyframe every 12 frames, so each
# fixture holds exactly 3 keyframes (frames 0, 12, 24); the test relies on that GOP. A small MTU
# makes keyframes span several packets. Set RECORDER and AV1_PACKETIZER to prebuilt record_rtp
# and packetize_av1 binaries to skip the cargo build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out_dir=$root/engine/tests/fixtures
port=${PORT:-5004}
frames=30
fps=15
gop=12
mtu=400

src="videotestsrc num-buffers=$frames pattern=smpte horizontal-speed=2 \
  ! video/x-raw,format=I420,width=160,height=120,framerate=$fps/1"
sink="udpsink host=127.0.0.1 port=$port"
# libaom's CBR mode hits an assertion at this size (aom 3.6), and its VBR overshoots the target
# by far, so the quantizer floor is what keeps the fixture small.
av1enc="av1enc keyframe-max-dist=$gop usage-profile=realtime cpu-used=8 lag-in-frames=0 \
  end-usage=vbr target-bitrate=80 min-quantizer=40 max-quantizer=63"

declare -A pipelines=(
  [vp8]="vp8enc keyframe-max-dist=$gop deadline=1 cpu-used=8 lag-in-frames=0 target-bitrate=150000 \
    ! rtpvp8pay mtu=$mtu picture-id-mode=15-bit"
  [vp9]="vp9enc keyframe-max-dist=$gop deadline=1 cpu-used=8 lag-in-frames=0 target-bitrate=150000 \
    ! rtpvp9pay mtu=$mtu picture-id-mode=15-bit"
  [h264]="x264enc key-int-max=$gop bframes=0 speed-preset=ultrafast tune=zerolatency bitrate=150 \
    ! video/x-h264,profile=constrained-baseline \
    ! rtph264pay mtu=$mtu config-interval=-1 aggregate-mode=zero-latency"
  # Parameter sets only once, before the first keyframe, as many hardware encoders send them:
  # engine/tests/parameter_sets.rs checks that later keyframes get them from the cache.
  [h264-sets-once]="x264enc key-int-max=$gop bframes=0 speed-preset=ultrafast tune=zerolatency bitrate=150 \
    option-string=repeat-headers=0 ! video/x-h264,profile=constrained-baseline,stream-format=avc \
    ! rtph264pay mtu=$mtu config-interval=3600 aggregate-mode=zero-latency"
  # x265 writes VPS/SPS/PPS once, before the first keyframe (it does not repeat headers unless
  # asked), so this fixture's later keyframes lack them too.
  [h265]="x265enc key-int-max=$gop speed-preset=ultrafast tune=zerolatency bitrate=150 \
    ! rtph265pay mtu=$mtu config-interval=-1 aggregate-mode=zero-latency"
)

examples=$root/target/release/examples
recorder=${RECORDER:-$examples/record_rtp}
packetizer=${AV1_PACKETIZER:-$examples/packetize_av1}
if [[ -z ${RECORDER:-} || -z ${AV1_PACKETIZER:-} ]]; then
  cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p corecast-engine \
    --example record_rtp --example packetize_av1
fi

mkdir -p "$out_dir"
codecs=("$@")
[[ ${#codecs[@]} -gt 0 ]] || codecs=(vp8 vp9 h264 h264-sets-once h265 av1)

# have_elements WHAT ELEMENT...: true if every element is installed, else says what is skipped.
have_elements() {
  local what=$1 missing=""
  shift
  for element in "$@"; do
    gst-inspect-1.0 --exists "$element" || missing+=" $element"
  done
  [[ -z $missing ]] || echo "skipping $what: missing GStreamer element(s):$missing" >&2
  [[ -z $missing ]]
}

recorder_pid=""
trap '[[ -z $recorder_pid ]] || kill "$recorder_pid" 2>/dev/null || true' EXIT

for codec in "${codecs[@]}"; do
  if [[ $codec == av1 ]]; then
    if have_elements av1.obu av1enc av1parse; then
      # shellcheck disable=SC2086 # pipeline descriptions are meant to be word-split
      gst-launch-1.0 -q $src ! $av1enc ! av1parse \
        ! video/x-av1,stream-format=obu-stream,alignment=tu ! filesink location="$out_dir/av1.obu"
      echo "av1: $(stat -c %s "$out_dir/av1.obu") bytes -> $out_dir/av1.obu" >&2
    fi
    "$packetizer" "$out_dir/av1.obu" "$out_dir/av1.rtp.tmp" --mtu "$mtu" --fps "$fps"
    mv "$out_dir/av1.rtp.tmp" "$out_dir/av1.rtp"
    continue
  fi
  pipeline=${pipelines[$codec]:?unknown codec $codec}
  # Skip, not fail, when this machine lacks an element.
  # shellcheck disable=SC2046 # one element name per word
  have_elements "$codec.rtp" $(grep -oE '(^|! *)[a-z0-9]+( |$)' <<<"$pipeline" | tr -d '! ') || continue
  file=$out_dir/$codec.rtp
  "$recorder" "$port" "$file.tmp" --seconds 30 --idle-ms 1500 &
  recorder_pid=$!
  sleep 0.5 # let the recorder bind before the first packet is sent
  # shellcheck disable=SC2086
  gst-launch-1.0 -q $src ! $pipeline ! $sink
  wait "$recorder_pid"
  recorder_pid=""
  mv "$file.tmp" "$file"
  echo "$codec: $(stat -c %s "$file") bytes -> $file" >&2
done
