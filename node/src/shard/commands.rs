//! The control thread's commands, applied by a shard worker to its engine and its viewers
//! between packets.

use corecast_engine::{Nanos, Shard};

use super::repair::HeldSlot;
use super::viewers::Viewers;
use super::{ShardCommand, ShardEvent};

/// Apply one control command to the engine (and the viewers) at `now`; refusals and switch
/// outcomes go to `backlog` for the control thread.
pub(super) fn apply(
    engine: &mut Shard<HeldSlot>,
    viewers: &mut Viewers,
    backlog: &mut Vec<ShardEvent>,
    cmd: ShardCommand,
    now: Nanos,
    repair: bool,
) {
    let refused = match cmd {
        ShardCommand::AddSource(id, codec, join) => engine
            .add_source(id, codec)
            .and_then(|()| engine.set_join(id, join))
            .err(),
        ShardCommand::RemoveSource(id) => engine.remove_source(id).err(),
        ShardCommand::AddTracks(tracks) => {
            for (config, source) in tracks {
                match engine.add_track(config, source) {
                    // Every track answers NACKs while the shard keeps histories, and sends
                    // sender reports (RFC 3550 §6.4.1) to its subscriber's RTCP port.
                    Ok(()) => {
                        if repair {
                            let _ = engine.set_repair(config.id, true);
                        }
                        let _ = engine.set_sender_reports(config.id, true);
                    }
                    Err(e) => backlog.push(ShardEvent::Refused(e)),
                }
            }
            None
        }
        ShardCommand::RemoveTrack(id) => engine.remove_track(id).err(),
        ShardCommand::Switch(id, to) => {
            let r = engine.switch(id, to, now);
            backlog.push(ShardEvent::SwitchRequested(id, to, r));
            None
        }
        ShardCommand::SwitchTogether { lead, follower } => {
            match engine.switch_together(lead, follower, now) {
                Ok((a, b)) => {
                    backlog.push(ShardEvent::SwitchRequested(lead.0, lead.1, Ok(a)));
                    backlog.push(ShardEvent::SwitchRequested(follower.0, follower.1, Ok(b)));
                }
                Err(e) => {
                    backlog.push(ShardEvent::SwitchRequested(lead.0, lead.1, Err(e)));
                    backlog.push(ShardEvent::SwitchRequested(follower.0, follower.1, Err(e)));
                }
            }
            None
        }
        ShardCommand::CancelSwitch(id) => engine.cancel_switch(id).err(),
        ShardCommand::ExpectViewer {
            viewer,
            local,
            remote_ufrag,
        } => {
            viewers.expect(viewer, local, remote_ufrag, now);
            None
        }
        ShardCommand::SecureViewer {
            viewer,
            keys,
            tracks,
            rtx,
        } => {
            let mut ids = Vec::with_capacity(tracks.len());
            for (config, source) in tracks {
                // Viewers take RTCP on the media port (rtcp-mux): they get sender reports; and
                // their NACKs are answered as any subscriber's.
                match engine
                    .add_track(config, source)
                    .and_then(|()| engine.set_sender_reports(config.id, true))
                    .and_then(|()| match repair {
                        true => engine.set_repair(config.id, true),
                        false => Ok(()),
                    }) {
                    Ok(()) => ids.push(config.id),
                    Err(e) => backlog.push(ShardEvent::Refused(e)),
                }
            }
            viewers.secure(viewer, *keys, ids, rtx);
            None
        }
        ShardCommand::RemoveViewer(viewer) => {
            viewers.remove(viewer);
            None
        }
        ShardCommand::MoveViewer { tracks, dest } => {
            for track in tracks {
                if let Err(e) = engine.set_destination(track, dest) {
                    backlog.push(ShardEvent::Refused(e));
                }
            }
            None
        }
    };
    if let Some(e) = refused {
        backlog.push(ShardEvent::Refused(e));
    }
}
