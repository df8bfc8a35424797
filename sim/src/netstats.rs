//! The message journal's statistics (spec 4.6): send, receive and distinct
//! message counts for all traffic, client traffic and server traffic, and
//! msgs-per-op. The network calls [`NetStats::record`] on every accepted send
//! and every delivery, so recording is a few integer operations.

/// Which journal event is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalKind {
    Send,
    Recv,
}

/// Running counts for one category of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    sends: u64,
    recvs: u64,
    messages: u64,
}

/// Running journal statistics. Message ids are the network's dense global
/// counter, so distinct ids are tracked in a bitset.
#[derive(Debug, Clone, Default)]
pub struct NetStats {
    clients: Counts,
    servers: Counts,
    seen_ids: Vec<u64>,
}

impl NetStats {
    /// Records one journal event. A message is client traffic when its
    /// source or destination is a client (an id starting with `c`); all of a
    /// message's events share its endpoints, hence its category.
    pub fn record(&mut self, kind: JournalKind, id: u64, src: &str, dest: &str) {
        let counts = if src.starts_with('c') || dest.starts_with('c') {
            &mut self.clients
        } else {
            &mut self.servers
        };
        match kind {
            JournalKind::Send => counts.sends += 1,
            JournalKind::Recv => counts.recvs += 1,
        }
        let word = (id / 64) as usize;
        let bit = 1u64 << (id % 64);
        if word >= self.seen_ids.len() {
            self.seen_ids
                .resize((word + 1).max(self.seen_ids.len() * 2), 0);
        }
        if self.seen_ids[word] & bit == 0 {
            self.seen_ids[word] |= bit;
            counts.messages += 1;
        }
    }

    /// The `:net` statistics, with msgs-per-op over `op_count` client
    /// invocations (all and servers only, and only when `op_count > 0`).
    pub fn summary(&self, op_count: u64) -> NetSummary {
        let all = Counts {
            sends: self.clients.sends + self.servers.sends,
            recvs: self.clients.recvs + self.servers.recvs,
            messages: self.clients.messages + self.servers.messages,
        };
        let per_op = |c: &Counts| (op_count > 0).then(|| ratio_f32(c.messages, op_count));
        NetSummary {
            all: NetCategory::new(&all, per_op(&all)),
            clients: NetCategory::new(&self.clients, None),
            servers: NetCategory::new(&self.servers, per_op(&self.servers)),
        }
    }
}

/// One category of the `:net` map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetCategory {
    pub send_count: u64,
    pub recv_count: u64,
    pub msg_count: u64,
    pub msgs_per_op: Option<f32>,
}

impl NetCategory {
    fn new(counts: &Counts, msgs_per_op: Option<f32>) -> Self {
        NetCategory {
            send_count: counts.sends,
            recv_count: counts.recvs,
            msg_count: counts.messages,
            msgs_per_op,
        }
    }
}

/// The `:net` checker's result (always valid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetSummary {
    pub all: NetCategory,
    pub clients: NetCategory,
    pub servers: NetCategory,
}

/// `numerator / denominator` rounded to the nearest f32, as Clojure's
/// `(float (/ a b))` of two longs. Below 2^24 both counts are exact f32s and
/// IEEE division rounds the exact ratio once.
pub fn ratio_f32(numerator: u64, denominator: u64) -> f32 {
    const EXACT: u64 = 1 << 24;
    if numerator < EXACT && denominator < EXACT {
        numerator as f32 / denominator as f32
    } else {
        (numerator as f64 / denominator as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_sanity_figures() {
        assert_eq!(ratio_f32(450, 55).to_bits(), 0x4102e8ba);
        assert_eq!(ratio_f32(320, 55).to_bits(), 0x40ba2e8c);
    }

    #[test]
    fn categories_and_distinct_ids() {
        let mut net = NetStats::default();
        net.record(JournalKind::Send, 0, "c1", "n0");
        net.record(JournalKind::Recv, 0, "c1", "n0");
        net.record(JournalKind::Send, 1, "n0", "n1");
        net.record(JournalKind::Send, 2, "n0", "n0");
        net.record(JournalKind::Recv, 2, "n0", "n0");
        net.record(JournalKind::Send, 1000, "n0", "lin-kv");
        let s = net.summary(2);
        assert_eq!(
            (
                s.clients.send_count,
                s.clients.recv_count,
                s.clients.msg_count
            ),
            (1, 1, 1)
        );
        assert_eq!(
            (
                s.servers.send_count,
                s.servers.recv_count,
                s.servers.msg_count
            ),
            (3, 1, 3)
        );
        assert_eq!(
            (s.all.send_count, s.all.recv_count, s.all.msg_count),
            (4, 2, 4)
        );
        assert_eq!(s.all.msgs_per_op, Some(2.0));
        assert_eq!(s.servers.msgs_per_op, Some(1.5));
        assert_eq!(s.clients.msgs_per_op, None);
        let s = net.summary(0);
        assert_eq!((s.all.msgs_per_op, s.servers.msgs_per_op), (None, None));
    }
}
