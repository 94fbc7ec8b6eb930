//! Each codec's `inspect` on any payload (the first byte picks the codec): the fields it points a
//! splicer at lie inside the payload and hold the values it reports, what it reports fits the
//! codec, and VP8's descriptor reads as the webrtc-rs depacketizer reads it.
#![no_main]

use bytes::Bytes;
use corecast_engine::codec::{self, PayloadInfo, MAX_REWRITE_LEN};
use corecast_engine::Codec;
use libfuzzer_sys::fuzz_target;
use rtp::packetizer::Depacketizer;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let codec = Codec::ALL[usize::from(which) % Codec::ALL.len()];
    let Ok(info) = codec::inspect(codec, payload) else {
        return;
    };
    assert!(info.rewrite_len() <= MAX_REWRITE_LEN.min(payload.len()));
    if let Some(p) = info.picture_id {
        let at = usize::from(p.offset);
        let value = if p.wide {
            assert!(payload[at] & 0x80 != 0, "a 15-bit picture ID has its M bit");
            u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]])
        } else {
            u16::from(payload[at] & 0x7f)
        };
        assert_eq!(value, p.value);
        assert!(u32::from(p.value) <= p.mask());
    }
    if let Some(t) = info.tl0picidx {
        assert_eq!(payload[usize::from(t.offset)], t.value);
        if let Some(p) = info.picture_id {
            let pic = usize::from(p.offset)..usize::from(p.offset) + 1 + usize::from(p.wide);
            assert!(!pic.contains(&usize::from(t.offset)), "fields overlap");
        }
    }
    match codec {
        Codec::Opus => assert_eq!(info, PayloadInfo::AUDIO),
        Codec::Vp8 | Codec::Vp9 => assert!(!info.parameter_sets),
        Codec::H264 | Codec::H265 | Codec::Av1 => {
            assert!(info.picture_id.is_none() && info.tl0picidx.is_none());
            assert!(codec != Codec::Av1 || !info.parameter_sets);
        }
    }
    if codec == Codec::Vp8 {
        let mut theirs = rtp::codecs::vp8::Vp8Packet::default();
        if theirs.depacketize(&Bytes::copy_from_slice(payload)).is_ok() {
            let picture_id = (theirs.x == 1 && theirs.i == 1).then_some(theirs.picture_id);
            assert_eq!(info.picture_id.map(|p| p.value), picture_id);
            let tl0 = (theirs.x == 1 && theirs.l == 1).then_some(theirs.tl0_pic_idx);
            assert_eq!(info.tl0picidx.map(|t| t.value), tl0);
            assert_eq!(
                info.frame_start,
                theirs.s == 1 && theirs.pid == 0,
                "S=1 with partition 0 starts a frame"
            );
        }
    }
});
