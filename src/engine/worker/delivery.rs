//! The end of a pass: every touched connection reports what its core produced, forwarded
//! packets go to their subscribers' connections and feedback to their publishers' (or wait
//! for the worker that owns them), and the touched connections' datagrams are collected.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{EFFECT_ROUNDS, Worker, guarded};
use crate::ids::ConnectionId;
use crate::rtc::connection::UpstreamRequest;

impl Worker {
    /// Lets every touched connection report, delivers what crosses between connections, and
    /// collects their datagrams.
    pub(super) fn settle(&mut self, now: Instant) {
        for _ in 0..EFFECT_ROUNDS {
            let touched: Vec<ConnectionId> = self.touched.iter().copied().collect();
            for id in &touched {
                if let Some(peer) = self.peers.get_mut(id) {
                    let effects = &mut self.effects;
                    guarded(*id, &mut self.failed, || {
                        peer.connection.process(now, effects)
                    });
                    let notices = peer.connection.take_unsolicited();
                    if !notices.is_empty() {
                        let _ = peer.events.send(notices);
                    }
                }
            }
            if self.effects.is_empty() {
                break;
            }
            self.deliver(now);
        }
        for id in std::mem::take(&mut self.failed) {
            self.drop_failed(id);
        }
        for id in self.touched.drain() {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            self.egress.collect(&mut peer.connection);
            self.timers.schedule(id, peer.connection.poll_timeout());
        }
    }

    /// Writes forwarded packets into their subscribers' connections and feedback into their
    /// publishers'; what is for another worker's connections waits for the end of the pass.
    fn deliver(&mut self, now: Instant) {
        let mut effects = std::mem::take(&mut self.effects);
        let (mut written, mut bytes, mut dropped) = (0, 0, 0);
        for (down, packet) in effects.rtp.drain(..) {
            let outlet = down.outlet();
            if !self.crew.owns(outlet.connection) {
                self.crew.pass_rtp((down, packet));
                continue;
            }
            let Some(peer) = self.peers.get_mut(&outlet.connection) else {
                continue;
            };
            let size = packet.payload.len() as u64;
            let sent = guarded(outlet.connection, &mut self.failed, || {
                peer.connection.write_rtp(outlet.transceiver, packet, now)
            });
            if sent == Some(true) {
                written += 1;
                bytes += size;
            } else {
                dropped += 1;
            }
            self.touched.insert(outlet.connection);
        }
        // Counted once per pass: the counters are shared by every worker.
        self.metrics
            .packets_out
            .fetch_add(written, Ordering::Relaxed);
        self.metrics.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.metrics
            .packets_dropped
            .fetch_add(dropped, Ordering::Relaxed);
        for request in effects.upstream.drain(..) {
            let publisher = match &request {
                UpstreamRequest::Keyframe { publication, .. }
                | UpstreamRequest::Bitrate { publication, .. }
                | UpstreamRequest::ForgetSubscriber { publication, .. } => publication.publisher(),
            };
            if !self.crew.owns(publisher) {
                self.crew.pass_upstream(publisher, request);
                continue;
            }
            if let Some(peer) = self.peers.get_mut(&publisher) {
                guarded(publisher, &mut self.failed, || {
                    peer.connection.on_upstream_request(request, now);
                });
                self.touched.insert(publisher);
            }
        }
        // Keep the vectors' capacity for the next pass.
        self.effects.rtp = effects.rtp;
        self.effects.upstream = effects.upstream;
    }
}
